"""The node's model store: resumable uploads, verification, the active pointer, pruning."""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.deploy.pusher import PackedBundle, pack_bundle
from cloud.release import ReleaseScope
from cloud.signing import KeyPair
from edge.model_store import ModelStore, UnknownBundle
from edge.runtime.bundle import ModelBundle, file_sha256
from edge.runtime.errors import BundleCorrupt, BundleIncompatible, ConfigError
from edge.runtime.release import RELEASE_FILE, read_release
from edge.runtime.signing import BundleSignatureError, load_public_key
from edge.uploads import StagingFull, UploadCorrupt, UploadRejected
from tests.plugins.deploy import release_bundle


@pytest.fixture
def store(tmp_path: Path, signing_pair: KeyPair) -> ModelStore:
    return ModelStore(
        tmp_path / "models", trusted_key=load_public_key(signing_pair.public_key), keep_bundles=2
    )


def _pack(bundle: ModelBundle) -> PackedBundle:
    return pack_bundle(bundle.directory, bundle.directory.parent / f"{bundle.directory.name}.tar")


def _send(store: ModelStore, packed: PackedBundle, start: int = 0, end: int | None = None) -> int:
    data = packed.path.read_bytes()
    end = len(data) if end is None else end
    held = 0
    for offset in range(start, end, 700):
        chunk = data[offset : min(offset + 700, end)]
        held = store.write_chunk(
            packed.upload_id, offset, chunk, total_size=packed.size, sha256=packed.sha256
        )
    return held


def _stage(store: ModelStore, bundle: ModelBundle) -> ModelBundle:
    packed = _pack(bundle)
    _send(store, packed)
    return store.complete(packed.upload_id)


def test_upload_resumes_from_what_is_held(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker())
    half = packed.size // 2

    assert _send(store, packed, 0, half) == half
    assert store.received_bytes(packed.upload_id) == half
    # A chunk sent twice, straddling the end of what is held, adds only the new bytes.
    _send(store, packed, half - 300, half + 100)
    assert store.received_bytes(packed.upload_id) == half + 100
    _send(store, packed, half + 100)

    assert store.is_complete(packed.upload_id)
    staged = store.complete(packed.upload_id)
    assert staged.label == "tiny:1"
    assert [entry.label for entry in store.bundles()] == ["tiny:1"]
    assert store.received_bytes(packed.upload_id) == 0  # the upload files are gone


def test_chunk_past_what_is_held_is_rejected(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker())
    _send(store, packed, 0, 700)

    with pytest.raises(UploadRejected, match="holds 700 bytes"):
        store.write_chunk(
            packed.upload_id, 1400, b"x", total_size=packed.size, sha256=packed.sha256
        )
    with pytest.raises(UploadRejected, match="another file"):
        store.write_chunk(packed.upload_id, 700, b"x", total_size=packed.size, sha256="0" * 64)
    with pytest.raises(UploadRejected, match="upload id"):
        store.write_chunk("../etc", 0, b"x", total_size=1, sha256="0" * 64)


def test_corrupted_bytes_are_refused_and_removed(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker())
    data = bytearray(packed.path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    store.write_chunk(
        packed.upload_id, 0, bytes(data), total_size=packed.size, sha256=packed.sha256
    )

    with pytest.raises(UploadCorrupt, match="corrupted on the way"):
        store.complete(packed.upload_id)
    assert store.bundles() == []
    assert store.received_bytes(packed.upload_id) == 0


def test_unsigned_bundle_is_refused(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    with pytest.raises(BundleSignatureError, match="unsigned"):
        _stage(store, bundle_maker(key=None))
    assert store.bundles() == []


def test_a_store_that_could_check_nothing_does_not_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no trusted key.*--trusted-key.*--allow-unsigned"):
        ModelStore(tmp_path / "models")


def test_a_signed_bundle_without_a_release_is_refused_unless_unsigned_is_allowed(
    tmp_path: Path, bundle_maker: Callable[..., ModelBundle], signing_pair: KeyPair
) -> None:
    bundle = bundle_maker()
    (bundle.directory / RELEASE_FILE).unlink()
    strict = ModelStore(tmp_path / "strict", trusted_key=load_public_key(signing_pair.public_key))
    with pytest.raises(BundleSignatureError, match=r"carries no signed release\.json"):
        _stage(strict, bundle)
    lax = ModelStore(
        tmp_path / "lax", trusted_key=load_public_key(signing_pair.public_key), allow_unsigned=True
    )
    assert _stage(lax, bundle).label == "tiny:1"
    assert _stage(lax, bundle_maker(key=None, version="2")).label == "tiny:2"


def test_the_active_version_pushed_again_takes_the_newer_release_only_for_the_same_files(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle], signing_key: Ed25519PrivateKey
) -> None:
    first = bundle_maker(version="1")
    _stage(store, first)
    store.set_active("tiny", "1")
    later = release_bundle(first.directory, signing_key, ReleaseScope.any(), valid_for=timedelta(1))
    _stage(store, first)
    held = read_release(store.root / "bundles" / "tiny@1")
    assert held == later

    (first.directory / "notes.txt").write_text("another file")
    release_bundle(first.directory, signing_key, ReleaseScope.any())
    with pytest.raises(BundleIncompatible, match="active here with other files"):
        _stage(store, first)


def test_manifest_for_another_input_size_is_corrupt(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    with pytest.raises(BundleCorrupt, match="manifest says input 32x32, the graph takes 64x64"):
        _stage(store, bundle_maker(manifest_size=32))


def test_graph_without_uint8_input_is_incompatible(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    with pytest.raises(BundleIncompatible, match=r"tensor\(float\)"):
        _stage(store, bundle_maker(float_input=True))


def test_tar_reaching_outside_is_refused(store: ModelStore, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    size, digest = archive.stat().st_size, file_sha256(archive)
    store.write_chunk("evil", 0, archive.read_bytes(), total_size=size, sha256=digest)

    with pytest.raises(BundleCorrupt, match="not a safe, readable tar"):
        store.complete("evil")
    assert not (store.root / "staging" / "escaped.txt").exists()
    assert not (store.root / "escaped.txt").exists()


def test_upload_over_the_quota_is_staging_full(
    tmp_path: Path, bundle_maker: Callable[..., ModelBundle]
) -> None:
    store = ModelStore(tmp_path / "small", allow_unsigned=True, quota_bytes=1000)
    packed = _pack(bundle_maker())

    with pytest.raises(StagingFull, match="has room for"):
        _send(store, packed)
    assert store.received_bytes(packed.upload_id) == 0


def test_disk_full_while_writing_removes_the_upload(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker())
    # The partial file lives on /dev/full: every write fails with ENOSPC, as on a full disk.
    (store.root / "uploads" / f"{packed.upload_id}.part").symlink_to("/dev/full")
    (store.root / "uploads" / f"{packed.upload_id}.json").write_text(
        f'{{"total_size": {packed.size}, "sha256": "{packed.sha256}"}}'
    )

    with pytest.raises(StagingFull, match="is full; upload removed"):
        _send(store, packed)
    assert not (store.root / "uploads" / f"{packed.upload_id}.part").exists()


def test_active_survives_a_restart_and_rollback_walks_back(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle], signing_pair: KeyPair
) -> None:
    for version in ("1", "2"):
        _stage(store, bundle_maker(version=version))
        store.set_active("tiny", version)
    assert store.previous_ref() == ("tiny", "1")

    reopened = ModelStore(store.root, trusted_key=load_public_key(signing_pair.public_key))
    assert reopened.active_ref() == ("tiny", "2")
    assert reopened.open_bundle("tiny", "2").label == "tiny:2"

    reopened.set_active("tiny", "1", rollback=True)
    assert reopened.active_ref() == ("tiny", "1")
    assert reopened.previous_ref() is None


def test_only_the_last_bundles_are_kept(
    store: ModelStore, bundle_maker: Callable[..., ModelBundle]
) -> None:
    for version in ("1", "2", "3"):
        _stage(store, bundle_maker(version=version))
        store.set_active("tiny", version)

    assert sorted(entry.label for entry in store.bundles()) == ["tiny:2", "tiny:3"]
    assert not (store.root / "bundles" / "tiny@1").exists()
    with pytest.raises(UnknownBundle, match="push it first"):
        store.open_bundle("tiny", "1")


def test_announced_sizes_are_reserved_against_the_quota(tmp_path: Path) -> None:
    """Ten uploads announced at once cannot together outgrow a 5 MB quota."""
    store = ModelStore(tmp_path / "small", allow_unsigned=True, quota_bytes=5 << 20)
    accepted = 0
    for index in range(10):
        try:
            store.write_chunk(f"up-{index}", 0, b"x" * 100, total_size=1 << 20, sha256="a" * 64)
        except StagingFull:
            continue
        accepted += 1
    assert accepted == 2  # each reserves 2 MiB (the tar and its unpacked copy)
    held = sum(p.stat().st_size for p in (tmp_path / "small").rglob("*") if p.is_file())
    assert held < 5 << 20


def test_a_stalled_partial_upload_expires_with_its_reservation(tmp_path: Path) -> None:
    store = ModelStore(
        tmp_path / "small", allow_unsigned=True, quota_bytes=5 << 20, partial_ttl_s=60.0
    )
    store.write_chunk("stalled", 0, b"x" * 100, total_size=2 << 20, sha256="a" * 64)
    uploads = tmp_path / "small" / "uploads"
    long_ago = time.time() - 3600
    for path in uploads.iterdir():
        os.utime(path, (long_ago, long_ago))

    store.write_chunk("fresh", 0, b"y" * 100, total_size=2 << 20, sha256="b" * 64)
    assert store.received_bytes("stalled") == 0
    assert store.received_bytes("fresh") == 100


def test_a_compressed_tar_bomb_is_refused_before_unpacking(
    store: ModelStore, tmp_path: Path
) -> None:
    archive = tmp_path / "bomb.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 50 << 20
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    assert archive.stat().st_size < 2000
    size, digest = archive.stat().st_size, file_sha256(archive)
    store.write_chunk("bomb", 0, archive.read_bytes(), total_size=size, sha256=digest)

    with pytest.raises(BundleCorrupt, match="not a safe, readable tar"):
        store.complete("bomb")
    staged = sum(p.stat().st_size for p in (store.root / "staging").rglob("*") if p.is_file())
    assert staged == 0
