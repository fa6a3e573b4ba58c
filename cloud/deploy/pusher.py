"""The deployer's gRPC client of one node's ModelService: push, activate, roll back, list.

A bundle travels as one deterministic tar in chunks. Before each attempt the
client asks the node how many bytes it holds (``UploadStatus``) and sends from
there, so a stream broken by the network, a restart or a deadline resumes
instead of starting over. Every call has a deadline. Bytes handed to gRPC are
counted, resends included, so the record shows what the link carried.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from linewatch.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

from cloud.errors import DeployError, NodeRefused, NodeUnreachable
from edge.runtime.bundle import file_sha256, load_bundle
from edge.runtime.release import RELEASE_FILE, ReleaseStatement
from edge.runtime.tls import TlsFiles, channel_credentials

__all__ = [
    "ClientOptions",
    "NodeClient",
    "NodeModels",
    "NodeRefused",
    "NodeUnreachable",
    "PackedBundle",
    "PushResult",
    "Switched",
    "pack_bundle",
]

logger = logging.getLogger(__name__)

# Worth another attempt: the link or the node went away, or the call ran out of time.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNKNOWN,
    }
)


@dataclass(frozen=True)
class PackedBundle:
    """A bundle as one tar, with what the node needs to check it."""

    path: Path
    sha256: str
    size: int
    name: str
    version: str
    model_sha256: str
    released: bool = False  # carries a signed release statement for its targets

    @property
    def label(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def upload_id(self) -> str:
        """The same for every push of these bytes, so any later push resumes this one."""
        return f"{self.name}-{self.version}-{self.sha256[:16]}"


def pack_bundle(
    bundle_dir: Path, dest: Path, *, release: ReleaseStatement | None = None
) -> PackedBundle:
    """Verify a bundle directory and write it as a reproducible tar (sorted, no owners, no times).

    Args:
        bundle_dir: the bundle to pack.
        dest: the tar to write.
        release: the signed release statement (``cloud.release.sign_release``), packed as
            ``release.json`` in place of any the folder holds; nodes with a trusted key
            refuse a bundle without one.

    Raises:
        BundleCorrupt: the bundle fails verification.
    """
    bundle = load_bundle(bundle_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(bundle_dir).as_posix()
            if release is not None and relative == RELEASE_FILE:
                continue
            info = tarfile.TarInfo(relative)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        if release is not None:
            _add_release(tar, release)
    digest = file_sha256(dest)
    manifest = bundle.manifest
    return PackedBundle(
        dest,
        digest,
        dest.stat().st_size,
        manifest.name,
        manifest.version,
        manifest.model_sha256,
        released=release is not None,
    )


def _add_release(tar: tarfile.TarFile, release: ReleaseStatement) -> None:
    data = json.dumps(release.model_dump(mode="json"), indent=1).encode() + b"\n"
    info = tarfile.TarInfo(RELEASE_FILE)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class ClientOptions:
    """Deadlines, chunking and retries of one node client."""

    timeout_s: float = 30.0  # unary calls, and the base of a push's deadline
    activate_timeout_s: float = 120.0  # load, warm up and parity check (TensorRT builds are slow)
    min_rate_bytes_s: float = 1_000_000.0  # a push slower than this is given up as stuck
    chunk_bytes: int = 1 << 20
    max_attempts: int = 4
    retry_delay_s: float = 0.2
    tls: TlsFiles | None = None  # the deployer's certificate; None: plaintext (--insecure)


@dataclass(frozen=True)
class PushResult:
    """What one push took: bytes handed to gRPC (resends included) and attempts."""

    bytes_sent: int
    attempts: int
    already_held: bool


@dataclass(frozen=True)
class Switched:
    """A node's answer to Activate or Rollback."""

    active: str
    previous: str
    detail: str


@dataclass(frozen=True)
class NodeModels:
    """What a node holds: its active model and stored bundles (``name:version``)."""

    active: str
    bundles: tuple[tuple[str, str], ...]  # (label, model_sha256), newest first


def _label(ref: common_pb2.ModelRef) -> str:
    return f"{ref.name}:{ref.version}" if ref.name else ""


def _handshake_failure(address: str, details: str) -> str | None:
    """What to do about a TLS handshake that failed, when gRPC's details tell which side."""
    if "Hostname Verification" in details or "not in peer certificate" in details:
        host = address.rpartition(":")[0].strip("[]")
        return (
            f"the node's TLS certificate does not name {host}; issue the node certificate with "
            f"`linewatch certs issue --node NAME --host {host}` (or dial it by a name it has)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in details:
        return (
            "the node's TLS certificate is not from the plant CA given as --tls-ca; "
            "give the node a certificate from `linewatch certs issue --node NAME`"
        )
    return None


class NodeClient:
    """One node's ModelService; use as a context manager to close the channel."""

    def __init__(self, address: str, options: ClientOptions | None = None) -> None:
        self.address = address
        self.options = options or ClientOptions()
        channel_options = [("grpc.max_send_message_length", self.options.chunk_bytes + 64 * 1024)]
        if self.options.tls is None:
            self._channel = grpc.insecure_channel(address, options=channel_options)
        else:  # reads the files: a missing one is a ConfigError naming it
            credentials = channel_credentials(self.options.tls)
            self._channel = grpc.secure_channel(address, credentials, options=channel_options)
        self._stub = model_service_pb2_grpc.ModelServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _error(self, exc: grpc.RpcError, action: str) -> DeployError:
        code: grpc.StatusCode = exc.code()
        handshake = _handshake_failure(self.address, str(exc.details()))
        if handshake is not None:
            return NodeUnreachable(f"node {self.address}: {action} failed, {handshake}")
        if code in _RETRYABLE:
            msg = f"node {self.address}: {action} failed, node unreachable ({code.name}: "
            return NodeUnreachable(msg + f"{exc.details()}); is it running and the address right?")
        return NodeRefused(f"node {self.address}: {action} refused: {exc.details()}", code.name)

    def models(self) -> NodeModels:
        """The node's active model and stored bundles.

        Raises:
            NodeUnreachable, NodeRefused: the call failed.
        """
        try:
            reply = self._stub.List(model_service_pb2.ListRequest(), timeout=self.options.timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc, "List") from exc
        held = tuple((_label(entry.model), entry.model.model_sha256) for entry in reply.bundles)
        return NodeModels(active=_label(reply.active), bundles=held)

    def received_bytes(self, upload_id: str) -> int:
        """Bytes of ``upload_id`` the node holds."""
        request = model_service_pb2.UploadStatusRequest(upload_id=upload_id)
        try:
            reply = self._stub.UploadStatus(request, timeout=self.options.timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc, "UploadStatus") from exc
        return int(reply.received_bytes)

    def push(
        self, packed: PackedBundle, *, progress: Callable[[int], None] | None = None
    ) -> PushResult:
        """Upload a packed bundle, resuming after broken streams, until the node staged it.

        An unreleased bundle the node already holds (same name, version and model sha256)
        is not sent. A released one always is: its statement (targets, expiry, a signed
        rollback) is new even when the files are not, and the node decides what to keep.

        Raises:
            NodeUnreachable: every attempt failed on the link.
            NodeRefused: the node refused the bundle (status code in ``code``).
        """
        if not packed.released and (packed.label, packed.model_sha256) in self.models().bundles:
            return PushResult(bytes_sent=0, attempts=0, already_held=True)
        sent = [0]
        for attempt in range(1, self.options.max_attempts + 1):
            try:
                self._attempt(packed, sent, progress)
            except NodeUnreachable as exc:
                if attempt == self.options.max_attempts:
                    raise
                logger.warning(
                    "push attempt failed node=%s attempt=%d reason=%s", self.address, attempt, exc
                )
                time.sleep(self.options.retry_delay_s * attempt)  # back off, then ask again
                continue
            logger.info(
                "pushed node=%s model=%s bytes_sent=%d attempts=%d",
                self.address, packed.label, sent[0], attempt,
            )  # fmt: skip
            return PushResult(bytes_sent=sent[0], attempts=attempt, already_held=False)
        msg = f"node {self.address}: push of {packed.label} never started (max_attempts < 1)"
        raise NodeUnreachable(msg)

    def _attempt(
        self, packed: PackedBundle, sent: list[int], progress: Callable[[int], None] | None
    ) -> None:
        """One Push stream from the offset the node holds; raises unless the node staged it."""
        offset = self.received_bytes(packed.upload_id)
        deadline_s = self.options.timeout_s + packed.size / self.options.min_rate_bytes_s
        try:
            chunks = self._chunks(packed, offset, sent, progress)
            reply = self._stub.Push(chunks, timeout=deadline_s)
        except grpc.RpcError as exc:
            raise self._error(exc, f"Push of {packed.label}") from exc
        if not reply.complete:
            held = reply.received_bytes
            msg = f"node {self.address}: Push of {packed.label} ended at byte {held}"
            raise NodeUnreachable(msg)

    def _chunks(
        self,
        packed: PackedBundle,
        offset: int,
        sent: list[int],
        progress: Callable[[int], None] | None,
    ) -> Iterator[model_service_pb2.PushChunk]:
        with packed.path.open("rb") as handle:
            handle.seek(offset)
            first = True
            while True:
                data = handle.read(self.options.chunk_bytes)
                if not data and not first:
                    return
                first = False  # one chunk even at the end: it lets the node finish a held upload
                yield model_service_pb2.PushChunk(
                    upload_id=packed.upload_id,
                    offset=offset,
                    data=data,
                    total_size=packed.size,
                    sha256=packed.sha256,
                )
                offset += len(data)
                sent[0] += len(data)
                if progress is not None:
                    progress(sent[0])

    def activate(self, name: str, version: str) -> Switched:
        """Ask the node to verify, warm up, parity-check and swap in a staged bundle.

        Raises:
            NodeUnreachable, NodeRefused: the call failed; the node keeps its old model.
        """
        request = model_service_pb2.ActivateRequest(
            model=common_pb2.ModelRef(name=name, version=version)
        )
        try:
            reply = self._stub.Activate(request, timeout=self.options.activate_timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc, f"Activate of {name}:{version}") from exc
        return Switched(_label(reply.active), _label(reply.previous), reply.detail)

    def rollback(self) -> Switched:
        """Ask the node to swap back to its previous bundle.

        Raises:
            NodeUnreachable, NodeRefused: the call failed.
        """
        try:
            reply = self._stub.Rollback(
                model_service_pb2.RollbackRequest(), timeout=self.options.activate_timeout_s
            )
        except grpc.RpcError as exc:
            raise self._error(exc, "Rollback") from exc
        return Switched(_label(reply.active), _label(reply.previous), reply.detail)
