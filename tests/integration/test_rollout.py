"""Rollouts to real nodes on loopback, recorded in a real SQLite database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Deployment, DeploymentTarget, Node
from cloud.demo.processes import free_port
from cloud.deploy import (
    ClientOptions,
    DeploymentRecorder,
    RolloutState,
    Target,
    TargetState,
    deployment_status,
    pack_bundle,
    resolve_targets,
    roll_out,
)
from cloud.deploy.pusher import NodeClient, PackedBundle
from cloud.errors import DeployError
from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle

pytestmark = pytest.mark.integration

_FAST = ClientOptions(timeout_s=5.0, max_attempts=2, retry_delay_s=0.01)
Db = tuple[str, sessionmaker[Session]]


def _pack(bundle: ModelBundle) -> PackedBundle:
    return pack_bundle(bundle.directory, bundle.directory.parent / f"{bundle.directory.name}.tar")


def _target(node: EdgeNode) -> Target:
    return Target(name=node.settings.node, address=f"127.0.0.1:{node.port}")


def _dead_address() -> str:
    """A loopback port nobody listens on."""
    return f"127.0.0.1:{free_port()}"


def _active(node: EdgeNode) -> str | None:
    if not node.slot.loaded:
        return None
    return node.slot.current().identity.version


def test_unreachable_node_is_reported_and_the_rest_update(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    deploy_db: Db,
) -> None:
    nodes = [model_node_factory(f"cam-{i}") for i in (1, 2)]
    dead = Target(name="cam-3", address=_dead_address())
    packed = _pack(bundle_maker(version="1"))
    recorder = DeploymentRecorder(deploy_db[1], requested_by="test")

    report = roll_out(
        packed, [_target(nodes[0]), dead, _target(nodes[1])], options=_FAST, recorder=recorder
    )

    assert report.state is RolloutState.PARTIAL
    states = {item.target.name: item.state for item in report.outcomes}
    assert states == {"cam-1": "succeeded", "cam-2": "succeeded", "cam-3": "failed"}
    assert [_active(node) for node in nodes] == ["1", "1"]
    assert all(
        item.bytes_sent == packed.size for item in report.outcomes if item.state == "succeeded"
    )

    with deploy_db[1]() as session:
        view = deployment_status(session)
    assert view is not None and view.id == report.deployment_id
    assert (view.model_name, view.model_version, view.state) == ("tiny", "1", "partial")
    by_address = {target.address: target for target in view.targets}
    assert by_address[dead.address].state == "failed"
    assert "unreachable" in by_address[dead.address].outcome
    assert by_address[f"127.0.0.1:{nodes[0].port}"].bytes_sent == packed.size
    assert all(target.finished_at is not None for target in view.targets)


def test_failed_canary_stops_the_rollout(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    deploy_db: Db,
) -> None:
    canary = model_node_factory("canary", model_dir_quota_mb=0.001)  # no room for any bundle
    rest = [model_node_factory(f"cam-{i}") for i in (1, 2)]
    packed = _pack(bundle_maker(version="1"))

    report = roll_out(
        packed,
        [_target(canary), *map(_target, rest)],
        canary=1,
        options=_FAST,
        recorder=DeploymentRecorder(deploy_db[1]),
    )

    assert report.state is RolloutState.STOPPED
    assert [item.state for item in report.outcomes] == ["failed", "skipped", "skipped"]
    assert "room" in report.outcomes[0].detail
    assert [_active(node) for node in rest] == [None, None], "no node past the canary is touched"
    with deploy_db[1]() as session:
        states = session.scalars(select(DeploymentTarget.state).order_by(DeploymentTarget.id))
        assert list(states) == ["failed", "skipped", "skipped"]
        assert session.scalars(select(Deployment.state)).one() == "stopped"


def test_refusal_keeps_the_old_model_and_a_good_canary_lets_the_rest_go(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    nodes = [model_node_factory(f"cam-{i}") for i in (1, 2, 3)]
    first = roll_out(_pack(bundle_maker(version="1")), [_target(n) for n in nodes], canary=1)
    assert first.state is RolloutState.SUCCEEDED

    bad = roll_out(
        _pack(bundle_maker(version="2", score_offset=0.5)),
        [_target(n) for n in nodes],
        canary=1,
        options=_FAST,
    )

    assert bad.state is RolloutState.STOPPED
    assert "parity FAILED" in bad.outcomes[0].detail
    assert [_active(node) for node in nodes] == ["1", "1", "1"]


def test_line_and_names_resolve_from_the_database(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    deploy_db: Db,
) -> None:
    nodes = [model_node_factory(f"cam-0{i}") for i in (7, 8)]
    with deploy_db[1].begin() as session:
        for node in nodes:
            session.add(
                Node(
                    site="plant",
                    line="line3",
                    node=node.settings.node,
                    grpc_address=f"127.0.0.1:{node.port}",
                    online=True,
                    last_seen_at=datetime.now(UTC),
                )
            )
        session.add(Node(site="plant", line="line4", node="cam-99", grpc_address="127.0.0.1:1"))

    by_line = resolve_targets(line="line3", session_factory=deploy_db[1])
    by_name = resolve_targets(nodes=["cam-08", "cam-07"], session_factory=deploy_db[1])
    assert [t.name for t in by_line] == ["cam-07", "cam-08"]
    assert [t.name for t in by_name] == ["cam-08", "cam-07"]
    with pytest.raises(DeployError, match="not in the database"):
        resolve_targets(nodes=["cam-42"], session_factory=deploy_db[1])
    with pytest.raises(DeployError, match="need the database"):
        resolve_targets(line="line3")

    report = roll_out(
        _pack(bundle_maker(version="1")), by_line, recorder=DeploymentRecorder(deploy_db[1])
    )

    assert report.state is RolloutState.SUCCEEDED
    with deploy_db[1]() as session:
        rows = session.scalars(select(Node).where(Node.line == "line3").order_by(Node.node))
        assert [(row.model_name, row.model_version) for row in rows] == [("tiny", "1")] * 2
        assert session.scalars(select(Node).where(Node.node.like("127.0.0.1:%"))).first() is None


def test_a_bundle_the_node_holds_is_not_sent_again(
    model_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker(version="1"))
    roll_out(packed, [_target(model_node)])
    with NodeClient(f"127.0.0.1:{model_node.port}") as client:
        again = client.push(packed)

    assert again.already_held and again.bytes_sent == 0
    second = roll_out(packed, [_target(model_node)])
    assert second.outcomes[0].state is TargetState.SUCCEEDED
    assert "already active" in second.outcomes[0].detail
