"""Release statements: signed by the cloud, checked by the node (signature, files, target, time)."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Node
from cloud.deploy import Target, pack_bundle
from cloud.errors import BundleSignatureError, ConfigError, DeployError
from cloud.release import ReleaseScope, parse_validity, release_scope, sign_release
from cloud.signing import sign_manifest
from edge.runtime.bundle import ModelBundle, load_bundle, write_manifest
from edge.runtime.errors import ReleaseRefused
from edge.runtime.release import (
    RELEASE_FILE,
    ReleaseStatement,
    bundle_files_sha256,
    check_fresh,
    check_target,
    check_version_order,
    read_release,
    verify_release,
)
from tests.tiny_bundle import make_tiny_bundle

Db = tuple[str, sessionmaker[Session]]
_LINE_A = ReleaseScope(lines=("line-a",), nodes=("cam-07",))


@pytest.fixture
def signed_bundle(tmp_path: Path, signing_key: Ed25519PrivateKey) -> ModelBundle:
    bundle = make_tiny_bundle(tmp_path / "bundle", name="metal", version="7")
    write_manifest(sign_manifest(bundle.manifest, signing_key), bundle.directory)
    return load_bundle(bundle.directory)


def _statement(bundle: ModelBundle, key: Ed25519PrivateKey, **options: object) -> ReleaseStatement:
    scope = options.pop("scope", _LINE_A)
    return sign_release(bundle.directory, key, scope, **options)  # type: ignore[arg-type]


def test_a_signed_release_verifies_and_round_trips_through_its_file(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey
) -> None:
    statement = _statement(signed_bundle, signing_key)
    (signed_bundle.directory / RELEASE_FILE).write_text(
        json.dumps(statement.model_dump(mode="json"))
    )

    reread = read_release(signed_bundle.directory)

    assert reread == statement
    assert (reread.label, reread.lines, reread.nodes) == ("metal:7", ("line-a",), ("cam-07",))
    assert reread.expires_at - reread.issued_at == timedelta(days=7)
    verify_release(reread, signed_bundle, signing_key.public_key())


def test_another_key_or_an_altered_field_breaks_the_signature(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey
) -> None:
    statement = _statement(signed_bundle, signing_key)
    widened = statement.model_copy(update={"lines": ("*",)})
    with pytest.raises(BundleSignatureError, match="signature does not match"):
        verify_release(widened, signed_bundle, signing_key.public_key())
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(BundleSignatureError, match="this node trusts"):
        verify_release(statement, signed_bundle, other)


def test_the_digest_covers_every_file_not_only_the_listed_ones(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey
) -> None:
    before = bundle_files_sha256(signed_bundle.directory)
    statement = _statement(signed_bundle, signing_key)
    (signed_bundle.directory / RELEASE_FILE).write_text("{}")  # the statement itself is not hashed
    assert bundle_files_sha256(signed_bundle.directory) == before

    (signed_bundle.directory / "notes.txt").write_text("added after signing")

    assert bundle_files_sha256(signed_bundle.directory) != before
    with pytest.raises(BundleSignatureError, match="changed or added after signing"):
        verify_release(statement, signed_bundle, signing_key.public_key())


def test_renaming_a_file_changes_the_digest(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"x")
    first = bundle_files_sha256(folder)
    (folder / "a.png").rename(folder / "b.png")
    assert bundle_files_sha256(folder) != first


def test_a_statement_for_another_bundle_is_refused(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    other = make_tiny_bundle(tmp_path / "other", name="metal", version="8")
    write_manifest(sign_manifest(other.manifest, signing_key), other.directory)
    statement = _statement(load_bundle(other.directory), signing_key)
    with pytest.raises(BundleSignatureError, match="is for metal:8"):
        verify_release(statement, signed_bundle, signing_key.public_key())


def test_the_cloud_refuses_to_release_a_manifest_it_did_not_sign(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    unsigned = make_tiny_bundle(tmp_path / "unsigned")
    with pytest.raises(BundleSignatureError, match="deploy refused: bundle tiny:1: unsigned"):
        sign_release(unsigned.directory, signing_key, _LINE_A)
    foreign = Ed25519PrivateKey.generate()
    write_manifest(sign_manifest(unsigned.manifest, foreign), unsigned.directory)
    with pytest.raises(BundleSignatureError, match="signed by key"):
        sign_release(unsigned.directory, signing_key, _LINE_A)


@pytest.mark.parametrize(
    ("lines", "nodes", "allowed"),
    [
        (("line-a",), (), True),
        (("line-b",), (), False),
        ((), ("cam-07",), True),
        ((), ("cam-08",), False),
        (("line-a",), ("cam-08",), False),  # both sides must allow
        (("*",), ("cam-07",), True),
        ((), ("*",), True),
    ],
)
def test_target_match(
    signed_bundle: ModelBundle,
    signing_key: Ed25519PrivateKey,
    lines: tuple[str, ...],
    nodes: tuple[str, ...],
    allowed: bool,
) -> None:
    statement = _statement(signed_bundle, signing_key, scope=ReleaseScope(lines, nodes))
    if allowed:
        check_target(statement, line="line-a", node="cam-07")
        return
    with pytest.raises(ReleaseRefused, match="not for node 'cam-07' on line 'line-a'"):
        check_target(statement, line="line-a", node="cam-07")


def test_a_release_that_names_nothing_cannot_be_made(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(DeployError, match="names no line and no node"):
        _statement(signed_bundle, signing_key, scope=ReleaseScope())


def test_expiry_and_a_statement_from_the_future(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey
) -> None:
    issued = datetime(2030, 1, 1, tzinfo=UTC)
    statement = _statement(
        signed_bundle, signing_key, issued_at=issued, valid_for=timedelta(hours=2)
    )
    check_fresh(statement, now=issued + timedelta(hours=1))
    check_fresh(statement, now=issued - timedelta(minutes=1))  # within the clock skew
    with pytest.raises(ReleaseRefused, match="expired at 2030-01-01T02:00:00"):
        check_fresh(statement, now=issued + timedelta(hours=2))
    with pytest.raises(ReleaseRefused, match="in this node's future"):
        check_fresh(statement, now=issued - timedelta(hours=1))
    with pytest.raises(DeployError, match="must be positive"):
        _statement(signed_bundle, signing_key, valid_for=timedelta(0))


@pytest.mark.parametrize(
    ("version", "active", "rollback", "allowed"),
    [
        ("8", ("metal", "7"), False, True),
        ("7", ("metal", "7"), False, True),
        ("6", ("metal", "7"), False, False),
        ("9", ("metal", "10"), False, False),  # numerically, not as text
        ("6", ("metal", "7"), True, True),
        ("6", ("other", "7"), False, True),  # another model has no order with this one
        ("v2", ("metal", "v1"), False, False),  # no trusted order: a change needs a rollback
        ("v2", ("metal", "v1"), True, True),
        ("1", None, False, True),
    ],
)
def test_version_order(
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    version: str,
    active: tuple[str, str] | None,
    rollback: bool,
    allowed: bool,
) -> None:
    bundle = make_tiny_bundle(tmp_path / "b", name="metal", version=version)
    write_manifest(sign_manifest(bundle.manifest, signing_key), bundle.directory)
    statement = _statement(load_bundle(bundle.directory), signing_key, rollback=rollback)
    if allowed:
        check_version_order(statement, active)
        return
    with pytest.raises(ReleaseRefused, match="not released as a rollback"):
        check_version_order(statement, active)


def test_a_broken_release_file_is_a_signature_error(signed_bundle: ModelBundle) -> None:
    (signed_bundle.directory / RELEASE_FILE).write_text('{"model_name": "metal"}')
    with pytest.raises(BundleSignatureError, match="is not a release statement"):
        read_release(signed_bundle.directory)
    (signed_bundle.directory / RELEASE_FILE).unlink()
    assert read_release(signed_bundle.directory) is None


def test_pack_bundle_carries_the_release_and_replaces_a_stale_one(
    signed_bundle: ModelBundle, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    (signed_bundle.directory / RELEASE_FILE).write_text("stale")
    statement = _statement(signed_bundle, signing_key)

    packed = pack_bundle(signed_bundle.directory, tmp_path / "b.tar", release=statement)

    with tarfile.open(packed.path) as tar:
        names = tar.getnames()
        member = tar.extractfile(RELEASE_FILE)
        assert member is not None
        carried = ReleaseStatement.model_validate_json(member.read())
    assert names.count(RELEASE_FILE) == 1 and carried == statement
    other = pack_bundle(
        signed_bundle.directory,
        tmp_path / "c.tar",
        release=_statement(signed_bundle, signing_key, scope=ReleaseScope(nodes=("cam-09",))),
    )
    assert other.sha256 != packed.sha256  # one tar per target set


def test_scope_names_targets_and_looks_addresses_up(deploy_db: Db) -> None:
    _, sessions = deploy_db
    with sessions() as session:
        session.add(Node(site="s", line="line-a", node="cam-07", grpc_address="10.0.0.7:50051"))
        session.commit()
    by_name = [Target("cam-07", "10.0.0.7:50051", line="line-a"), Target("cam-08", "h:1", "line-a")]
    assert release_scope(by_name) == ReleaseScope(("line-a",), ("cam-07", "cam-08"))
    no_line = [Target("bench-0", "127.0.0.1:5000")]
    assert release_scope(no_line) == ReleaseScope((), ("bench-0",))
    by_address = [Target("10.0.0.7:50051", "10.0.0.7:50051")]
    assert release_scope(by_address, session_factory=sessions) == ReleaseScope(
        ("line-a",), ("cam-07",)
    )
    unknown = [Target("10.0.0.9:50051", "10.0.0.9:50051")]
    with pytest.raises(DeployError, match=r"10\.0\.0\.9:50051 is known only by its address"):
        release_scope(unknown, session_factory=sessions)
    assert ReleaseScope.any() == ReleaseScope((), ("*",))


def test_validity_flag_values() -> None:
    assert parse_validity("7d") == timedelta(days=7)
    assert parse_validity("90m") == timedelta(minutes=90)
    assert parse_validity("1.5h") == timedelta(minutes=90)
    for bad in ("0d", "7", "-1h", "1w"):
        with pytest.raises(ConfigError, match="positive duration"):
            parse_validity(bad)
