"""What an attacker on the plant network tried against ModelService, each refused now.

Real nodes on loopback (in-process ``EdgeNode`` with gRPC, or the console script),
real signatures, real pushes. Each test is one row of issue 14's table: it was
accepted before release statements, and the node keeps its old model now.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc, model_service_pb2
from linewatch.v1 import model_service_pb2_grpc as ms_grpc

from cloud.deploy.pusher import NodeClient, NodeRefused, PackedBundle, Switched, pack_bundle
from cloud.release import ReleaseScope
from edge.node import EdgeNode
from edge.runtime.bundle import MANIFEST_FILE, ModelBundle
from tests.plugins.deploy import EDGE, release_bundle
from tests.plugins.edge import ABNORMAL_GREY, encode_png, grey_image

pytestmark = pytest.mark.integration

_TIMEOUT_S = 10.0
_LINE_A = ReleaseScope(lines=("line-a",))


def _address(node: EdgeNode) -> str:
    return f"127.0.0.1:{node.port}"


def _pack(bundle: ModelBundle | Path) -> PackedBundle:
    folder = bundle if isinstance(bundle, Path) else bundle.directory
    return pack_bundle(folder, folder.parent / f"{folder.name}-{os.urandom(4).hex()}.tar")


def _attacker_tar(folder: Path) -> PackedBundle:
    """A tar of a folder as an attacker packs it: no cloud-side check of what is inside."""
    path = folder.parent / f"{folder.name}-{os.urandom(4).hex()}.tar"
    with tarfile.open(path, "w") as tar:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                tar.add(item, item.relative_to(folder).as_posix())
    data = path.read_bytes()
    return PackedBundle(path, hashlib.sha256(data).hexdigest(), len(data), "tiny", "1", "0" * 64)


def _push_raw(address: str, packed: PackedBundle) -> None:
    """One Push stream with the whole tar, as any client can send it (no "already held" skip)."""
    chunk = model_service_pb2.PushChunk(
        upload_id=packed.upload_id,
        offset=0,
        data=packed.path.read_bytes(),
        total_size=packed.size,
        sha256=packed.sha256,
    )
    with grpc.insecure_channel(address) as channel:
        try:
            reply = ms_grpc.ModelServiceStub(channel).Push(iter([chunk]), timeout=_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise NodeRefused(str(exc.details()), exc.code().name) from exc
    assert reply.complete


def _deploy(
    node: EdgeNode, bundle: ModelBundle | Path, name: str = "tiny", version: str = "1"
) -> Switched:
    with NodeClient(_address(node)) as client:
        client.push(_pack(bundle))
        return client.activate(name, version)


def _refused(action: Callable[[], object]) -> NodeRefused:
    with pytest.raises(NodeRefused) as caught:
        action()
    return caught.value


def _verdict(node: EdgeNode) -> tuple[int, str]:
    """The verdict and model version for a frame every honest tiny model calls abnormal."""
    with grpc.insecure_channel(_address(node)) as channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(ABNORMAL_GREY)))
        response = stub.Inspect(request, timeout=_TIMEOUT_S)
    return response.verdict, response.model.version


def _edit_manifest(bundle: ModelBundle, **decision: float) -> None:
    path = bundle.directory / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["decision"].update(decision)
    path.write_text(json.dumps(raw))  # the signature stays as it was: a forgery


# Row 1: a node started without --trusted-key (the image's default command).


def test_a_node_with_a_model_dir_and_no_key_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(EDGE),
            "serve",
            "--grpc",
            "127.0.0.1:0",
            "--insecure",
            "--model-dir",
            str(tmp_path / "models"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: model store ")
    assert "--trusted-key keys/signing.pub" in result.stderr
    assert "--allow-unsigned" in result.stderr


def test_allow_unsigned_starts_with_a_warning(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(EDGE), "serve", "--grpc", "127.0.0.1:0", "--model-dir", str(tmp_path / "models"),
         "--record-dir", str(tmp_path / "rec"), "--allow-unsigned", "--insecure"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "waiting for a push" in line:
            break
    process.terminate()
    process.communicate(timeout=30)
    assert any("WARNING" in line and "--allow-unsigned" in line for line in lines), lines


def test_an_infinite_threshold_is_refused_even_where_unsigned_is_allowed(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    node = model_node_factory("dev", trusted_key=None, allow_unsigned=True)
    bundle = bundle_maker(key=None)
    _edit_manifest(bundle, threshold=float("inf"))

    refused = _refused(lambda: _push_raw(_address(node), _attacker_tar(bundle.directory)))

    assert refused.code == "INVALID_ARGUMENT"
    assert "decision threshold is inf" in str(refused)
    assert not node.slot.loaded


def test_a_golden_path_outside_the_bundle_is_never_read(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    node = model_node_factory("dev", trusted_key=None, allow_unsigned=True)
    bundle = bundle_maker(key=None)
    path = bundle.directory / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["golden"][0]["file"] = "/etc/hostname"
    raw["files"]["/etc/hostname"] = raw["files"].pop("golden/grey_128.png")
    path.write_text(json.dumps(raw))

    refused = _refused(lambda: _push_raw(_address(node), _attacker_tar(bundle.directory)))

    assert refused.code == "INVALID_ARGUMENT"
    assert "'/etc/hostname' points outside the bundle" in str(refused)


# Row 2: stage name:version first with the real model.onnx and a forged manifest.


def test_a_forged_manifest_staged_first_cannot_shadow_the_clouds_push(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    node = model_node_factory("cam-07", line="line-a")
    genuine = bundle_maker(release=_LINE_A)
    forged = bundle_maker(release=_LINE_A)  # the same real model, then a manifest edited
    _edit_manifest(forged, threshold=1e9, uncertain_low=1e9)
    unsigned = bundle_maker(key=None)
    _edit_manifest(unsigned, threshold=1e9, uncertain_low=1e9)
    extra = bundle_maker(release=_LINE_A)  # manifest intact, one file slipped in
    (extra.directory / "golden" / "payload.png").write_bytes(b"not in the signed release")

    for attempt in (forged, unsigned, extra):
        packed = _attacker_tar(attempt.directory)
        refused = _refused(partial(_push_raw, _address(node), packed))
        assert refused.code == "PERMISSION_DENIED", refused
    assert node.models is not None and node.models.store.bundles() == []

    switched = _deploy(node, genuine)

    assert switched.active == "tiny:1"
    assert _verdict(node) == (common_pb2.VERDICT_ABNORMAL, "1")


def test_the_node_replaces_a_held_copy_instead_of_calling_it_already_held(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    signing_key: Ed25519PrivateKey,
) -> None:
    """Held but not active: a new signed push of the version replaces it, files and all."""
    node = model_node_factory("cam-07", line="line-a")
    bundle = bundle_maker(release=_LINE_A)
    _push_raw(_address(node), _pack(bundle))
    (bundle.directory / "golden" / "notes.png").write_bytes(b"a file the cloud added")
    release_bundle(bundle.directory, signing_key, _LINE_A)

    _push_raw(_address(node), _pack(bundle))

    assert node.models is not None
    held = node.models.store.open_bundle("tiny", "1")
    assert (held.directory / "golden" / "notes.png").is_file()


# Row 3: rollback, downgrade, or a signed bundle made for another line.


def test_a_bundle_released_for_another_line_or_node_is_refused(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    node = model_node_factory("cam-07", line="line-a")
    for scope in (ReleaseScope(lines=("line-b",)), ReleaseScope(nodes=("cam-08",))):
        bundle = bundle_maker(release=scope)
        refused = _refused(partial(_deploy, node, bundle))
        assert refused.code == "INVALID_ARGUMENT"
        assert "not for node 'cam-07' on line 'line-a'" in str(refused)
    assert not node.slot.loaded


def test_an_expired_release_is_refused(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    signing_key: Ed25519PrivateKey,
) -> None:
    node = model_node_factory("cam-07", line="line-a")
    bundle = bundle_maker(release=_LINE_A)
    issued = datetime.now(UTC) - timedelta(days=8)
    release_bundle(bundle.directory, signing_key, _LINE_A, issued_at=issued)

    refused = _refused(lambda: _deploy(node, bundle))

    assert refused.code == "INVALID_ARGUMENT" and "release expired at" in str(refused)


def test_a_downgrade_needs_a_signed_rollback(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    signing_key: Ed25519PrivateKey,
) -> None:
    node = model_node_factory("cam-07", line="line-a")
    old = bundle_maker(version="1", release=_LINE_A)
    _deploy(node, old)
    _deploy(node, bundle_maker(version="2", release=_LINE_A), version="2")

    with NodeClient(_address(node)) as client:  # v1 is held: Activate alone tries the downgrade
        refused = _refused(lambda: client.activate("tiny", "1"))
    assert refused.code == "INVALID_ARGUMENT"
    assert "older than the active tiny:2 and not released as a rollback" in str(refused)
    release_bundle(old.directory, signing_key, _LINE_A)  # a fresh release, still no rollback
    refused = _refused(lambda: _push_raw(_address(node), _attacker_tar(old.directory)))
    assert "not released as a rollback" in str(refused)
    assert _verdict(node) == (common_pb2.VERDICT_ABNORMAL, "2")

    release_bundle(old.directory, signing_key, _LINE_A, rollback=True)
    _push_raw(_address(node), _pack(old))
    with NodeClient(_address(node)) as client:
        switched = client.activate("tiny", "1")

    assert (switched.active, switched.previous) == ("tiny:1", "tiny:2")
    assert _verdict(node) == (common_pb2.VERDICT_ABNORMAL, "1")


def test_the_rollback_rpc_still_walks_back_for_the_deployer(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    """Rollback returns to a bundle this node ran and verified; mTLS restricts who may call it."""
    node = model_node_factory("cam-07", line="line-a")
    _deploy(node, bundle_maker(version="1", release=_LINE_A))
    _deploy(node, bundle_maker(version="2", release=_LINE_A), version="2")

    with NodeClient(_address(node)) as client:
        switched = client.rollback()

    assert (switched.active, switched.previous) == ("tiny:1", "tiny:2")
