"""Shared pytest fixtures: deploy.

Real parts only: a real Ed25519 key pair, tiny real ONNX bundles that carry
golden images (so the parity gate really runs), real nodes with a model
directory on 127.0.0.1 port 0, node processes started as a user would, and a
migrated SQLite database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy.orm import Session, sessionmaker

from cloud.release import ReleaseScope, sign_release
from cloud.signing import KeyPair, generate_key_pair, load_private_key, sign_manifest
from edge.node import EdgeNode
from edge.runtime.bundle import GoldenImage, ModelBundle, file_sha256, load_bundle, write_manifest
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.golden import map_digest
from edge.runtime.release import RELEASE_FILE, ReleaseStatement, write_release
from edge.settings import EdgeSettings
from tests.tiny_bundle import make_tiny_bundle

__all__ = ["GOLDEN_GREYS", "NodeProcess", "make_pushable_bundle", "release_bundle"]

GOLDEN_GREYS = (128, 184, 255)  # normal, uncertain, abnormal for the tiny bundle
EDGE = Path(sys.executable).parent / "linewatch-edge"


def _float_input_graph(size: int) -> onnx.ModelProto:
    """The tiny graph's maths over float pixels: a model a node must refuse to feed."""
    weights = numpy_helper.from_array(np.full((3,), 1.0 / 3.0, dtype=np.float32), "weights")
    axes = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("MatMul", ["image", "weights"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map", "axes"], ["image_score"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "float_input",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", size, size, 3])],
        [
            helper.make_tensor_value_info("image_score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", size, size]),
        ],
        initializer=[weights, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def make_pushable_bundle(
    directory: Path,
    *,
    name: str = "tiny",
    version: str = "1",
    key: Ed25519PrivateKey | None = None,
    size: int = 64,
    score_offset: float = 0.0,
    manifest_size: int | None = None,
    float_input: bool = False,
    golden: bool = True,
    release: ReleaseScope | None = None,
) -> ModelBundle:
    """A tiny real bundle with golden images scored on ONNX Runtime's CPU, optionally signed.

    A signed bundle also carries a signed ``release.json`` for ``release`` (default: any
    node), as the deployer would pack it, so it can be pushed to a node with a key.

    Args:
        score_offset: added to every golden score after scoring (a parity failure).
        manifest_size: claim another input size than the graph has.
        float_input: replace the graph by one that takes float pixels.
        golden: leave the golden images out when False.
    """
    bundle = make_tiny_bundle(directory, name=name, version=version, size=size)
    manifest = bundle.manifest
    goldens: list[GoldenImage] = []
    if golden:
        (directory / "golden").mkdir(exist_ok=True)
        engine = InferenceEngine(
            bundle, EngineOptions(providers=("CPUExecutionProvider",), intra_op_threads=1)
        )
        for grey in GOLDEN_GREYS:
            image = np.full((size, size, 3), grey, dtype=np.uint8)
            image[size // 4 : size // 2, size // 4 : size // 2] = 255 - grey  # a hot patch
            relative = f"golden/grey_{grey}.png"
            assert cv2.imwrite(str(directory / relative), image)
            result = engine.infer_images([image])
            goldens.append(
                GoldenImage(
                    file=relative,
                    image_score=round(float(result.image_scores[0]) + score_offset, 6),
                    anomaly_map_digest=map_digest(result.anomaly_maps[0]),
                )
            )
    if float_input:
        onnx.save(_float_input_graph(size), str(directory / "model.onnx"))
    input_spec = manifest.input
    if manifest_size is not None:
        input_spec = input_spec.model_copy(update={"height": manifest_size, "width": manifest_size})
    manifest = manifest.model_copy(
        update={
            "golden": goldens,
            "files": {item.file: file_sha256(directory / item.file) for item in goldens},
            "model_sha256": file_sha256(directory / "model.onnx"),
            "input": input_spec,
        }
    )
    if key is not None:
        manifest = sign_manifest(manifest, key)
    write_manifest(manifest, directory)
    if key is not None:
        release_bundle(directory, key, release or ReleaseScope.any())
    return load_bundle(directory)


def release_bundle(
    directory: Path, key: Ed25519PrivateKey, scope: ReleaseScope, **options: object
) -> ReleaseStatement:
    """Sign a release of the bundle in ``directory`` and write it there as ``release.json``.

    ``options`` go to ``sign_release``: ``valid_for``, ``rollback``, ``issued_at``.
    """
    statement = sign_release(directory, key, scope, **options)  # type: ignore[arg-type]
    write_release(statement, directory / RELEASE_FILE)
    return statement


@pytest.fixture(scope="session")
def signing_pair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """The cloud's key pair, made once."""
    return generate_key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def signing_key(signing_pair: KeyPair) -> Ed25519PrivateKey:
    """The private half of ``signing_pair``."""
    return load_private_key(signing_pair.private_key)


@pytest.fixture
def bundle_maker(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Callable[..., ModelBundle]:
    """Make signed pushable bundles: ``bundle_maker(version="2", score_offset=1.0, …)``."""
    counter = iter(range(1_000_000))

    def make(**kwargs: object) -> ModelBundle:
        kwargs.setdefault("key", signing_key)
        folder = tmp_path / f"pushable-{next(counter)}"
        return make_pushable_bundle(folder, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def model_node_factory(
    tmp_path: Path, edge_settings: EdgeSettings, signing_pair: KeyPair
) -> Iterator[Callable[..., EdgeNode]]:
    """Start nodes with a model dir and the trusted key; each stopped at teardown."""
    started: list[EdgeNode] = []

    def start(name: str = "node", **overrides: object) -> EdgeNode:
        values = {
            "model_dir": tmp_path / f"models-{name}",
            "trusted_key": signing_pair.public_key,
            "node": name,
            "record_dir": tmp_path / f"record-{name}",
            **overrides,
        }
        node = EdgeNode(edge_settings.model_copy(update=values))
        node.start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop(grace_s=1.0)


@pytest.fixture
def model_node(model_node_factory: Callable[..., EdgeNode]) -> EdgeNode:
    """A started node with ModelService, no model yet."""
    return model_node_factory()


@pytest.fixture
def deploy_db(tmp_path: Path) -> tuple[str, sessionmaker[Session]]:
    """A migrated SQLite database: its URL and a session factory."""
    from cloud.db.migrate import upgrade
    from cloud.db.session import make_engine, make_session_factory

    url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    upgrade(url)
    return url, make_session_factory(make_engine(url))


@dataclass
class NodeProcess:
    """A ``linewatch-edge serve`` process and the address it printed."""

    process: subprocess.Popen[str]
    address: str = ""
    lines: list[str] = field(default_factory=list)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        rest, _ = self.process.communicate(timeout=timeout_s)  # drains and closes the pipe
        self.lines += (rest or "").splitlines()
        return self.process.returncode


def start_node_process(
    model_dir: Path,
    trusted_key: Path,
    record_dir: Path,
    *,
    timeout_s: float = 30.0,
    security: tuple[str, ...] = ("--insecure",),
) -> NodeProcess:
    """Start ``linewatch-edge serve --model-dir … --grpc 127.0.0.1:0``; wait for its address.

    Args:
        security: ``--insecure`` (plaintext), or the node's ``--tls-*`` flags and paths.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LINEWATCH_WARMUP_RUNS": "1"}
    env["PYTHONUNBUFFERED"] = "1"  # the address line must arrive while the node runs
    env["LINEWATCH_INTRA_OP_THREADS"] = "1"
    process = subprocess.Popen(
        [
            str(EDGE), "serve", "--grpc", "127.0.0.1:0",
            "--model-dir", str(model_dir), "--trusted-key", str(trusted_key),
            "--record-dir", str(record_dir), *security,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )  # fmt: skip
    node = NodeProcess(process)
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        node.lines.append(line.rstrip())
        found = re.search(r"serving grpc on (\S+:\d+)", line)
        if found:
            node.address = found.group(1)
        if node.address and ("restored" in line or "waiting for a push" in line):
            return node
    node.stop()
    pytest.fail(f"node process did not start: {node.lines}")
