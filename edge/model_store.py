"""The node's model store: resumable uploads, verified bundles on disk, the active one.

Layout under ``--model-dir``::

    uploads/<upload_id>.part   bytes received so far (its size is the resume offset)
    uploads/<upload_id>.json   what the upload promised: total size and sha256
    staging/<upload_id>/       a tar being unpacked and checked
    bundles/<name>@<version>/  verified bundles, the last ``keep_bundles`` of them
    state.json                 the active bundle and the ones before it, for rollback

An upload becomes a bundle only when the whole tar matches its sha256, unpacks
safely, passes ``load_bundle`` (sha256 of every file), the signature checks
against the trusted key (the manifest's, and the release statement's: this
node's line and name, not expired, its exact files, no older version than the
active one unless signed as a rollback; ``edge.runtime.release``) and the input
check (the ONNX input is uint8 NHWC with 3 channels and the size the manifest
states). Anything that fails is removed and the active model is never touched.
A full disk is reported as such. Without a trusted key the store runs only when
told ``allow_unsigned``: a development mode that checks no signature.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnxruntime as ort
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.release_gate import ReleaseGate
from edge.runtime.bundle import ModelBundle, load_bundle
from edge.runtime.errors import BundleCorrupt, BundleIncompatible, UnknownBundle
from edge.runtime.release import RELEASE_FILE, ReleaseStatement, bundle_files_sha256
from edge.uploads import (
    DEFAULT_PARTIAL_TTL_S,
    StagingFull,
    UploadArea,
    UploadCorrupt,
    UploadRejected,
    check_safe_name,
)

__all__ = [
    "ModelStore",
    "StagingFull",
    "StoredBundle",
    "UnknownBundle",
    "UploadCorrupt",
    "UploadRejected",
    "check_graph_input",
]

logger = logging.getLogger(__name__)

_STATE_FILE = "state.json"


@dataclass(frozen=True)
class StoredBundle:
    """One verified bundle on disk."""

    name: str
    version: str
    model_sha256: str
    staged_at: str
    active: bool

    @property
    def label(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


def _key(name: str, version: str) -> str:
    return f"{name}@{version}"


def _ref(key: str) -> tuple[str, str]:
    name, _, version = key.partition("@")
    return name, version


def check_graph_input(bundle: ModelBundle) -> None:
    """Refuse a graph whose input is not uint8 NHWC 3-channel of the manifest's size.

    A light CPU session with optimisations off reads the graph's declared input,
    before any expensive provider (TensorRT) is asked to build an engine.

    Raises:
        BundleCorrupt: the manifest's input size is not the graph's.
        BundleIncompatible: the graph's input is not uint8 NHWC with 3 channels.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(bundle.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises untyped errors for a bad graph
        msg = f"bundle {bundle.label}: ONNX Runtime cannot read {bundle.model_path.name} ({exc})"
        raise BundleCorrupt(msg) from exc
    graph_input = session.get_inputs()[0]
    shape = list(graph_input.shape)
    if graph_input.type != "tensor(uint8)" or len(shape) != 4 or shape[3] != 3:
        msg = (
            f"bundle {bundle.label}: graph input {graph_input.name!r} is {graph_input.type} "
            f"{shape}; a node runs uint8 NHWC images with 3 channels, export the model again"
        )
        raise BundleIncompatible(msg)
    spec = bundle.manifest.input
    declared = [dim for dim in shape[1:3] if isinstance(dim, int)]
    if declared and declared != [spec.height, spec.width][: len(declared)]:
        msg = (
            f"bundle {bundle.label}: manifest says input {spec.height}x{spec.width}, the graph "
            f"takes {shape[1]}x{shape[2]}; the manifest does not belong to this graph"
        )
        raise BundleCorrupt(msg)


class ModelStore:
    """Uploads, verified bundles and the active pointer under one directory; thread-safe."""

    def __init__(
        self,
        root: Path,
        *,
        trusted_key: Ed25519PublicKey | None = None,
        allow_unsigned: bool = False,
        line: str = "line",
        node: str = "node",
        keep_bundles: int = 3,
        quota_bytes: int | None = None,
        partial_ttl_s: float = DEFAULT_PARTIAL_TTL_S,
    ) -> None:
        """Open (or create) the store under ``root``.

        Args:
            root: the model directory.
            trusted_key: the cloud's public key; pushes need its signed release statement.
            allow_unsigned: accept bundles without signature or statement (development).
            line: this node's line, matched against a statement's lines.
            node: this node's name, matched against a statement's nodes.
            keep_bundles: bundles kept on disk, the active one included (at least 2).
            quota_bytes: the most the model directory may hold; None: the disk's size.
            partial_ttl_s: how long an unfinished upload is kept for a resume.

        Raises:
            ConfigError: neither a trusted key nor ``allow_unsigned``.
        """
        self.root = root
        self.gate = ReleaseGate(
            trusted_key, allow_unsigned=allow_unsigned, line=line, node=node, where=str(root)
        )
        self.keep_bundles = max(2, keep_bundles)  # the active one and one to roll back to
        self.uploads = UploadArea(
            root / "uploads",
            root / "staging",
            quota_root=root,
            quota_bytes=quota_bytes,
            partial_ttl_s=partial_ttl_s,
        )
        self._bundles = root / "bundles"
        self._bundles.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._state = self._read_state()

    # Uploads (the bytes live in ``self.uploads``; the lock serialises chunks).

    def received_bytes(self, upload_id: str) -> int:
        """Bytes held for ``upload_id``: where a resumed upload continues (0 if unknown)."""
        with self._lock:
            return self.uploads.received_bytes(upload_id)

    def write_chunk(
        self, upload_id: str, offset: int, data: bytes, *, total_size: int, sha256: str
    ) -> int:
        """Store one chunk and return the bytes held (see ``UploadArea.write_chunk``)."""
        with self._lock:
            return self.uploads.write_chunk(
                upload_id, offset, data, total_size=total_size, sha256=sha256
            )

    def is_complete(self, upload_id: str) -> bool:
        """Whether every byte of ``upload_id`` has arrived."""
        with self._lock:
            return self.uploads.is_complete(upload_id)

    def complete(self, upload_id: str) -> ModelBundle:
        """Verify a fully received upload and keep it as a bundle; the upload is removed.

        Raises:
            UploadCorrupt: the bytes do not match the announced sha256.
            BundleCorrupt: an unsafe or broken tar, a file that fails its sha256, a manifest
                that does not fit its graph, or a bad signature (``BundleSignatureError``).
            BundleIncompatible: a graph input a node cannot feed.
            StagingFull: the disk filled while unpacking.
        """
        with self._lock:
            try:
                return self._stage(upload_id, self.uploads.unpack(upload_id))
            finally:
                self.uploads.discard(upload_id)

    def _stage(self, upload_id: str, source: Path) -> ModelBundle:
        bundle = load_bundle(source)
        statement = self._verify(bundle)
        self.gate.check_release(statement, self.active_ref())
        name, version = bundle.manifest.name, bundle.manifest.version
        key = _key(name, version)
        target = self._bundles / key
        if key in self._state["bundles"] and self._state["active"] == key:
            self._keep_active(bundle, target, upload_id)
            return load_bundle(target)
        # Not active: a held copy is replaced, so what runs is always the last signed push.
        shutil.rmtree(target, ignore_errors=True)
        source.rename(target)
        self._state["bundles"][key] = {
            "staged_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "model_sha256": bundle.manifest.model_sha256,
        }
        self._write_state()
        logger.info("bundle staged model=%s upload_id=%s", bundle.label, upload_id)
        return load_bundle(target)

    def _keep_active(self, bundle: ModelBundle, target: Path, upload_id: str) -> None:
        """A push of the active version: the same files take its newer statement, others fail."""
        held, pushed = bundle_files_sha256(target), bundle_files_sha256(bundle.directory)
        if held != pushed:
            msg = (
                f"bundle {bundle.label}: this version is active here with other files "
                f"(bundle sha256 {held[:12]}…, pushed {pushed[:12]}…); register a new version"
            )
            raise BundleIncompatible(msg)
        release = bundle.directory / RELEASE_FILE
        if release.is_file():
            release.replace(target / RELEASE_FILE)
        logger.info("bundle already held model=%s upload_id=%s", bundle.label, upload_id)

    def _verify(self, bundle: ModelBundle) -> ReleaseStatement | None:
        """Names, signatures and target of a bundle; its verified statement, if it has one.

        Raises:
            BundleCorrupt: an unsafe name, or a graph that does not fit its manifest.
            BundleSignatureError: unsigned without ``allow_unsigned``, or a signature,
                key or file digest that does not check out.
            ReleaseRefused: a statement for another line or node.
            BundleIncompatible: a graph input a node cannot feed.
        """
        manifest = bundle.manifest
        for value, what in ((manifest.name, "name"), (manifest.version, "version")):
            try:
                check_safe_name(value, f"bundle {bundle.label}: {what}")
            except UploadRejected as exc:
                raise BundleCorrupt(str(exc)) from exc
        statement = self.gate.verify(bundle)
        check_graph_input(bundle)
        return statement

    def check_activation(self, bundle: ModelBundle) -> None:
        """Refuse to activate a stored bundle whose release expired or that goes back unsigned.

        A rollback RPC and a restart skip this: they return to a bundle this node ran
        before. An unsigned bundle passes only where ``allow_unsigned`` let it in.

        Raises:
            ReleaseRefused: an expired statement, or an older version than the active one
                without a signed rollback.
            BundleSignatureError: a statement that no longer parses.
        """
        with self._lock:
            self.gate.check_release(self.gate.statement_of(bundle), self.active_ref())

    # Bundles and the active pointer.

    def open_bundle(self, name: str, version: str) -> ModelBundle:
        """Load a stored bundle, verifying its files, signatures and target again.

        Expiry and version order are not checked here (``check_activation`` does for
        Activate), so a restart or a rollback can return to a bundle that ran before.

        Raises:
            UnknownBundle: not in the store.
            BundleCorrupt: the files on disk changed since they were staged.
            ReleaseRefused: its statement names another line or node.
        """
        key = _key(name, version)
        with self._lock:
            if key not in self._state["bundles"]:
                held = ", ".join(b.label for b in self.bundles()) or "none"
                msg = f"bundle {name}:{version} is not on this node (held: {held}); push it first"
                raise UnknownBundle(msg)
        bundle = load_bundle(self._bundles / key)
        self._verify(bundle)
        return bundle

    def bundles(self) -> list[StoredBundle]:
        """Every stored bundle, newest staged first."""
        with self._lock:
            entries = [
                StoredBundle(
                    name=_ref(key)[0],
                    version=_ref(key)[1],
                    model_sha256=info["model_sha256"],
                    staged_at=info["staged_at"],
                    active=key == self._state["active"],
                )
                for key, info in self._state["bundles"].items()
            ]
        return sorted(entries, key=lambda entry: entry.staged_at, reverse=True)

    def active_ref(self) -> tuple[str, str] | None:
        """``(name, version)`` of the bundle that was active last, or None."""
        with self._lock:
            active = self._state["active"]
        return _ref(active) if active else None

    def previous_ref(self) -> tuple[str, str] | None:
        """``(name, version)`` a rollback would return to, or None."""
        with self._lock:
            history = [key for key in self._state["history"] if key in self._state["bundles"]]
        return _ref(history[-1]) if history else None

    def set_active(self, name: str, version: str, *, rollback: bool = False) -> None:
        """Record ``name:version`` as active (persisted) and prune old bundles.

        A normal activation pushes the old active bundle onto the rollback history;
        a rollback pops it instead, so repeated rollbacks walk back in time.
        """
        key = _key(name, version)
        with self._lock:
            state = self._state
            old = state["active"]
            history = list(state["history"])
            if rollback and key in history:
                history = history[: history.index(key)]
            else:
                history = [item for item in history if item != key]
                if old and old != key:
                    history.append(old)
            state["active"], state["history"] = key, history
            self._prune()
            self._write_state()

    def _prune(self) -> None:
        state = self._state
        ranked = [state["active"], *reversed(state["history"])]
        staged_only = sorted(
            (key for key in state["bundles"] if key not in ranked),
            key=lambda key: state["bundles"][key]["staged_at"],
            reverse=True,
        )
        keep = [key for key in [*ranked, *staged_only] if key in state["bundles"]]
        for key in keep[self.keep_bundles :]:
            shutil.rmtree(self._bundles / key, ignore_errors=True)
            del state["bundles"][key]
            logger.info("bundle pruned model=%s", key.replace("@", ":"))
        state["history"] = [key for key in state["history"] if key in state["bundles"]]

    # State file.

    def _read_state(self) -> dict[str, Any]:
        path = self.root / _STATE_FILE
        empty: dict[str, Any] = {"active": None, "history": [], "bundles": {}}
        if not path.is_file():
            return empty
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            logger.error(
                "model store state unreadable path=%s reason=%s; starting empty", path, exc
            )
            return empty
        state["bundles"] = {
            key: info for key, info in state["bundles"].items() if (self._bundles / key).is_dir()
        }
        if state["active"] not in state["bundles"]:
            state["active"] = None
        return state

    def _write_state(self) -> None:
        _write_json(self.root / _STATE_FILE, self._state)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically and durably: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
