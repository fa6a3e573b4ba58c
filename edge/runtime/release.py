"""Release statements: the cloud's signed word that a bundle may run here, now.

A manifest signature says "the cloud made this model"; it says nothing about
where, when or in which order the model may run. A release statement
(``release.json``, packed next to the bundle by the deployer) binds one push:
the model name and version, the lines and nodes it may run on, when it was
issued and when it expires, whether it is a signed rollback, and the sha256
over every file of the bundle. It is signed with the cloud's Ed25519 key, so a
node can refuse a bundle made for another line, an expired push, a downgrade
nobody signed, and any file changed or added after signing.

Shape of ``release.json``::

    {"format_version": 1, "model_name": "metal", "model_version": "7",
     "lines": ["line1"], "nodes": ["cam-07"], "issued_at": "…Z", "expires_at": "…Z",
     "rollback": false, "files_sha256": "<64 hex>", "signing_key_id": "<16 hex>",
     "signature": "<base64 Ed25519 over the rest, canonical JSON>"}

No torch, no MLflow: pydantic and ``cryptography`` only, shared by both sides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.runtime.bundle import ModelBundle, file_sha256
from edge.runtime.errors import BundleCorrupt, BundleSignatureError, ReleaseRefused
from edge.runtime.signing import public_key_id

__all__ = [
    "ANY_TARGET",
    "CLOCK_SKEW",
    "RELEASE_FILE",
    "ReleaseStatement",
    "bundle_files_sha256",
    "check_fresh",
    "check_target",
    "check_version_order",
    "read_release",
    "release_signing_bytes",
    "verify_release",
    "write_release",
]

RELEASE_FILE = "release.json"
ANY_TARGET = "*"
# The cloud's and a node's clocks differ a little; a statement "from the future" within
# this much is accepted so a fresh push does not fail on skew.
CLOCK_SKEW = timedelta(minutes=5)


class ReleaseStatement(BaseModel):
    """One signed push: what may run, where, until when, and over which exact files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = 1
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    lines: tuple[str, ...] = Field(default=(), description="lines it may run on; '*' any")
    nodes: tuple[str, ...] = Field(default=(), description="nodes it may run on; '*' any")
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    rollback: bool = Field(default=False, description="may replace a newer active version")
    files_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signing_key_id: str = Field(min_length=1)
    signature: str | None = Field(default=None, description="base64 Ed25519 over the rest")

    @model_validator(mode="after")
    def _explicit_and_ordered(self) -> ReleaseStatement:
        if not self.lines and not self.nodes:
            msg = "names no line and no node; a release must say where it may run"
            raise ValueError(msg)
        if self.expires_at <= self.issued_at:
            msg = f"expires_at {self.expires_at} is not after issued_at {self.issued_at}"
            raise ValueError(msg)
        return self

    @property
    def label(self) -> str:
        """``name:version`` for messages."""
        return f"{self.model_name}:{self.model_version}"

    @property
    def scope(self) -> str:
        """Where it may run, for messages: ``lines line1; nodes cam-07``."""
        parts = [f"lines {','.join(self.lines)}"] if self.lines else []
        parts += [f"nodes {','.join(self.nodes)}"] if self.nodes else []
        return "; ".join(parts)


def bundle_files_sha256(directory: Path) -> str:
    """The sha256 over every file of a bundle: relative path and content, sorted by path.

    Everything but ``release.json`` itself counts, listed in the manifest or not,
    so no file can be swapped, added or renamed without breaking the statement.

    Raises:
        BundleCorrupt: a link or other non-regular file in the bundle.
    """
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            msg = f"bundle {directory}: {relative} is a link or special file; a bundle holds files"
            raise BundleCorrupt(msg)
        if path.is_dir() or relative == RELEASE_FILE:
            continue
        digest.update(f"{relative}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def release_signing_bytes(statement: ReleaseStatement) -> bytes:
    """The canonical bytes a statement's signature covers: every field but the signature."""
    payload = statement.model_dump(mode="json", exclude={"signature"})
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def write_release(statement: ReleaseStatement, path: Path) -> Path:
    """Write a statement as JSON to ``path`` and return it."""
    path.write_text(json.dumps(statement.model_dump(mode="json"), indent=1) + "\n")
    return path


def read_release(bundle_dir: Path) -> ReleaseStatement | None:
    """The bundle's ``release.json``, or None when it carries none.

    Raises:
        BundleSignatureError: a statement that is not valid JSON or misses a field.
    """
    path = bundle_dir / RELEASE_FILE
    if not path.is_file():
        return None
    try:
        return ReleaseStatement.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        msg = f"bundle {bundle_dir}: {RELEASE_FILE} is not a release statement ({detail})"
        raise BundleSignatureError(msg + "; deploy it again with `linewatch deploy`") from exc


def verify_release(
    statement: ReleaseStatement, bundle: ModelBundle, public_key: Ed25519PublicKey
) -> None:
    """Check the statement's signature, and that it names this bundle and its exact files.

    Raises:
        BundleSignatureError: unsigned, another key, a signature that does not match, a
            statement for another name or version, or files that differ from the signed ones.
    """
    label, trusted_id = bundle.label, public_key_id(public_key)
    if statement.signing_key_id != trusted_id:
        msg = (
            f"bundle {label}: release statement signed by key {statement.signing_key_id}, this "
            f"node trusts {trusted_id}; deploy with the matching --signing-key"
        )
        raise BundleSignatureError(msg)
    try:
        signature = base64.b64decode(statement.signature or "", validate=True)
        public_key.verify(signature, release_signing_bytes(statement))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        msg = (
            f"bundle {label}: the release statement's signature does not match (key "
            f"{trusted_id}); it was altered or forged, deploy it again from the cloud"
        )
        raise BundleSignatureError(msg) from exc
    if statement.label != label:
        msg = (
            f"bundle {label}: its release statement is for {statement.label}; the statement "
            "belongs to another bundle, deploy this one from the cloud"
        )
        raise BundleSignatureError(msg)
    actual = bundle_files_sha256(bundle.directory)
    if actual != statement.files_sha256:
        msg = (
            f"bundle {label}: its files hash to {actual[:12]}…, the signed release says "
            f"{statement.files_sha256[:12]}…; a file was changed or added after signing, "
            "deploy it again from the cloud"
        )
        raise BundleSignatureError(msg)


def check_target(statement: ReleaseStatement, *, line: str, node: str) -> None:
    """Refuse a statement that does not name this node's line (or ``*``) and node (or ``*``).

    An empty list does not restrict; a statement always names at least one of them.

    Raises:
        ReleaseRefused: the statement was made for other lines or nodes.
    """
    line_ok = not statement.lines or line in statement.lines or ANY_TARGET in statement.lines
    node_ok = not statement.nodes or node in statement.nodes or ANY_TARGET in statement.nodes
    if not (line_ok and node_ok):
        msg = (
            f"bundle {statement.label}: released for {statement.scope}, not for node {node!r} "
            f"on line {line!r}; deploy it to this line or node from the cloud"
        )
        raise ReleaseRefused(msg)


def check_fresh(statement: ReleaseStatement, now: datetime | None = None) -> None:
    """Refuse a statement outside its validity (expired, or issued in the future).

    Raises:
        ReleaseRefused: ``now`` is after ``expires_at`` or before ``issued_at``.
    """
    now = now or datetime.now(UTC)
    if now >= statement.expires_at:
        msg = (
            f"bundle {statement.label}: its release expired at "
            f"{statement.expires_at.isoformat()}; deploy it again for a fresh statement"
        )
        raise ReleaseRefused(msg)
    if now < statement.issued_at - CLOCK_SKEW:
        msg = (
            f"bundle {statement.label}: its release is issued at "
            f"{statement.issued_at.isoformat()}, in this node's future; check both clocks"
        )
        raise ReleaseRefused(msg)


def _older(candidate: str, active: str) -> bool:
    """Whether ``candidate`` would go back from ``active``: numerically for integers.

    Versions that are not both integers have no order this code can trust, so
    any change of version counts as going back.
    """
    if candidate.isdigit() and active.isdigit():
        return int(candidate) < int(active)
    return candidate != active


def check_version_order(statement: ReleaseStatement, active: tuple[str, str] | None) -> None:
    """Refuse going back from the active version of the same model unless signed as a rollback.

    Args:
        statement: the verified statement of the bundle about to stage or run.
        active: ``(name, version)`` active on the node, or None.

    Raises:
        ReleaseRefused: an older version without a signed rollback.
    """
    if active is None or statement.rollback or active[0] != statement.model_name:
        return
    if _older(statement.model_version, active[1]):
        msg = (
            f"bundle {statement.label}: older than the active {active[0]}:{active[1]} and not "
            "released as a rollback; roll back with `linewatch rollback`, or have the cloud "
            "sign a rollback release"
        )
        raise ReleaseRefused(msg)
