"""Which nodes a rollout goes to: names or a line from the database, or plain addresses.

The collector keeps ``nodes`` current from the nodes' MQTT heartbeats, each of
which carries the node's gRPC address. ``host:port`` entries need no database,
so a node can be reached before it ever sent a heartbeat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Node
from cloud.errors import DeployError

__all__ = ["Target", "is_address", "parse_node_list", "resolve_targets"]

logger = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


@dataclass(frozen=True)
class Target:
    """One node to deploy to: its name (the address when it has none) and gRPC address."""

    name: str
    address: str
    line: str = ""
    online: bool | None = None  # None: not known to the database


def is_address(text: str) -> bool:
    """Whether ``text`` is ``host:port`` rather than a node name."""
    return bool(_ADDRESS.match(text))


def parse_node_list(text: str | None) -> list[str]:
    """Split ``cam-07,cam-08`` or ``10.0.0.7:50051,…`` into entries, dropping blanks."""
    if not text:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def _from_row(row: Node) -> Target:
    if not row.grpc_address:
        msg = (
            f"node {row.site}/{row.line}/{row.node} has no gRPC address on record; start it "
            "with MQTT so its heartbeat carries one, or pass --nodes host:port"
        )
        raise DeployError(msg)
    return Target(name=row.node, address=row.grpc_address, line=row.line, online=row.online)


def _by_name(session: Session, name: str) -> Target:
    rows = list(session.scalars(select(Node).where(Node.node == name)))
    if not rows:
        known = ", ".join(sorted(session.scalars(select(Node.node)))) or "none yet"
        msg = f"node {name!r} is not in the database (known: {known}); pass --nodes host:port"
        raise DeployError(msg)
    if len(rows) > 1:
        places = ", ".join(f"{row.site}/{row.line}" for row in rows)
        msg = f"node name {name!r} is used at {places}; pass its address instead"
        raise DeployError(msg)
    return _from_row(rows[0])


def _by_line(session: Session, line: str) -> list[Target]:
    rows = list(session.scalars(select(Node).where(Node.line == line).order_by(Node.node)))
    if not rows:
        lines = ", ".join(sorted(set(session.scalars(select(Node.line))))) or "none yet"
        msg = f"line {line!r} has no nodes in the database (lines: {lines})"
        raise DeployError(msg)
    return [_from_row(row) for row in rows]


def resolve_targets(
    *,
    nodes: Sequence[str] = (),
    line: str | None = None,
    session_factory: sessionmaker[Session] | None = None,
) -> list[Target]:
    """Turn ``--nodes`` and ``--line`` into targets, in the order given, without duplicates.

    Raises:
        DeployError: nothing chosen, a name or line the database does not know, a node
            without an address, or names given without a database.
    """
    if not nodes and line is None:
        msg = "deploy: choose nodes with --nodes cam-07,cam-08 (or host:port,…) or --line LINE"
        raise DeployError(msg)
    names = [entry for entry in nodes if not is_address(entry)]
    if (names or line is not None) and session_factory is None:
        msg = "deploy: node names and --line need the database (--db); or pass host:port"
        raise DeployError(msg)
    found: list[Target] = []
    if session_factory is not None and (names or line is not None):
        with session_factory() as session:
            found += [_by_name(session, name) for name in names]
            found += _by_line(session, line) if line is not None else []
    by_name = {target.name: target for target in found}
    ordered = [by_name[e] if e in by_name else Target(name=e, address=e) for e in nodes]
    ordered += [target for target in found if target not in ordered]
    unique: dict[str, Target] = {}
    for target in ordered:
        unique.setdefault(target.address, target)
    for target in unique.values():
        if target.online is False:
            logger.warning(
                "node offline at last report node=%s address=%s", target.name, target.address
            )
    return list(unique.values())
