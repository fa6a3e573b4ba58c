"""Release statements on the cloud side: who the deployer releases a bundle to, signed.

The deployer knows at deploy time which lines and nodes a version goes to, so it
signs one ``release.json`` per rollout (``edge.runtime.release`` holds the format
and the node's checks). Before it signs, it checks the bundle's manifest
signature with the same key: the cloud never releases a bundle it did not sign.
A target known only by its address is looked up in the nodes table (the
heartbeats give its line and name); ``*`` is written only when the caller asks
for any node explicitly.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Node
from cloud.errors import BundleSignatureError, ConfigError, DeployError
from edge.runtime.bundle import load_bundle
from edge.runtime.release import (
    ANY_TARGET,
    ReleaseStatement,
    bundle_files_sha256,
    release_signing_bytes,
)
from edge.runtime.signing import public_key_id, verify_manifest

__all__ = [
    "DEFAULT_VALID_FOR",
    "ReleaseScope",
    "parse_validity",
    "release_scope",
    "sign_release",
]

logger = logging.getLogger(__name__)

DEFAULT_VALID_FOR = timedelta(days=7)
_VALIDITY = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}


def parse_validity(text: str) -> timedelta:
    """Turn ``90m``, ``12h`` or ``7d`` into a positive duration.

    Raises:
        ConfigError: anything else, or zero.
    """
    found = _VALIDITY.match(text.strip())
    if found is None or float(found.group(1)) <= 0:
        msg = f"validity {text!r} is not a positive duration like 90m, 12h or 7d"
        raise ConfigError(msg)
    return timedelta(**{_UNIT[found.group(2)]: float(found.group(1))})


class _Place(Protocol):
    """What a deploy target tells about where it stands (``cloud.deploy.Target``)."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def line(self) -> str: ...


@dataclass(frozen=True)
class ReleaseScope:
    """The lines and nodes a release names; an empty side does not restrict."""

    lines: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()

    @classmethod
    def any(cls) -> ReleaseScope:
        """Every node, everywhere: only when the deployer asks for it explicitly."""
        return cls(nodes=(ANY_TARGET,))


def _known_place(target: _Place, session_factory: sessionmaker[Session] | None) -> tuple[str, str]:
    """``(line, node)`` of a target; one known by address only is looked up by address."""
    if target.name != target.address:
        return target.line, target.name
    rows: list[Node] = []
    if session_factory is not None:
        with session_factory() as session:
            query = select(Node).where(Node.grpc_address == target.address, Node.line != "")
            rows = list(session.scalars(query))
    if len(rows) != 1:
        why = "no node with a heartbeat" if not rows else f"{len(rows)} nodes"
        msg = (
            f"deploy: {target.address} is known only by its address ({why} on record there), "
            "so the signed release cannot name its line or node; deploy by node name or "
            "--line once it has reported, or ask the deployer for any node"
        )
        raise DeployError(msg)
    return rows[0].line, rows[0].node


def release_scope(
    targets: Sequence[_Place], *, session_factory: sessionmaker[Session] | None = None
) -> ReleaseScope:
    """The narrowest scope that covers every target: their node names and, if known, lines.

    Raises:
        DeployError: no targets, or a target known only by an address the database
            cannot name.
    """
    if not targets:
        msg = "deploy: no targets to release to; choose --nodes or --line"
        raise DeployError(msg)
    places = [_known_place(target, session_factory) for target in targets]
    lines = sorted({line for line, _ in places})
    nodes = sorted({node for _, node in places})
    # A line is named only when every target's line is known; else nodes alone bind it.
    return ReleaseScope(lines=tuple(lines) if all(lines) else (), nodes=tuple(nodes))


def sign_release(
    bundle_dir: Path,
    private_key: Ed25519PrivateKey,
    scope: ReleaseScope,
    *,
    valid_for: timedelta = DEFAULT_VALID_FOR,
    rollback: bool = False,
    issued_at: datetime | None = None,
) -> ReleaseStatement:
    """Check the bundle's manifest signature, then sign a release of its exact files.

    Args:
        bundle_dir: the bundle as it will be packed (``release.json`` itself is not hashed).
        private_key: the cloud's signing key; its public half must verify the manifest.
        scope: the lines and nodes it may run on.
        valid_for: how long nodes accept it after ``issued_at``.
        rollback: allow it to replace a newer active version of the same model.
        issued_at: when it is issued (UTC); default now.

    Raises:
        BundleCorrupt: the bundle fails its sha256 checks.
        BundleSignatureError: its manifest is unsigned or signed by another key.
        DeployError: a scope that names nothing, or a validity that is not positive.
    """
    bundle = load_bundle(bundle_dir)
    try:
        verify_manifest(bundle.manifest, private_key.public_key())
    except BundleSignatureError as exc:
        msg = f"deploy refused: {exc}"
        raise BundleSignatureError(msg) from exc
    if not scope.lines and not scope.nodes:
        msg = f"deploy of {bundle.label}: the release names no line and no node"
        raise DeployError(msg)
    if valid_for <= timedelta(0):
        msg = f"deploy of {bundle.label}: --valid-for {valid_for} must be positive"
        raise DeployError(msg)
    issued = (issued_at or datetime.now(UTC)).replace(microsecond=0)
    unsigned = ReleaseStatement(
        model_name=bundle.manifest.name,
        model_version=bundle.manifest.version,
        lines=scope.lines,
        nodes=scope.nodes,
        issued_at=issued,
        expires_at=issued + valid_for,
        rollback=rollback,
        files_sha256=bundle_files_sha256(bundle.directory),
        signing_key_id=public_key_id(private_key.public_key()),
    )
    signature = private_key.sign(release_signing_bytes(unsigned))
    statement = unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})
    logger.info(
        "release signed model=%s scope=%r expires_at=%s rollback=%s",
        statement.label, statement.scope, statement.expires_at.isoformat(), rollback,
    )  # fmt: skip
    return statement
