"""The deploy service without the CLI: a real MLflow registry, real nodes, a real database.

One registry per module holds ``line3`` versions 1 and 2 (registered once: it is
the slow part); each test follows its own alias so that the order does not matter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Node
from cloud.demo.processes import free_port
from cloud.deploy import (
    ClientOptions,
    PackedBundle,
    RollbackResult,
    RolloutReport,
    RolloutState,
    Target,
    TargetOutcome,
    TargetState,
    VersionDeployer,
    deployment_status,
    roll_back,
    watch_alias,
)
from cloud.errors import DeployError, LinewatchError, RegistryError
from cloud.registry import RegistrySettings, promote, register_bundle
from cloud.signing import KeyPair
from edge.node import EdgeNode
from tests.plugins.deploy import make_pushable_bundle
from tests.plugins.edge import wait_until

pytestmark = [
    pytest.mark.integration,
    # MLflow's SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]

MODEL = "line3"
_FAST = ClientOptions(timeout_s=5.0, max_attempts=2, retry_delay_s=0.01)
Db = tuple[str, sessionmaker[Session]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, signing_pair: KeyPair) -> RegistrySettings:
    """MLflow on a temporary SQLite with ``line3`` versions 1 and 2, signed on registration."""
    root = tmp_path_factory.mktemp("deploy-service")
    settings = RegistrySettings(
        mlflow_root=root / "mlflow",
        tracking_uri=None,
        registry_uri=None,
        signing_key=signing_pair.private_key,
    )
    for version in ("1", "2"):
        bundle = make_pushable_bundle(root / f"bundle-{version}", version=version)
        register_bundle(bundle.directory, MODEL, settings=settings)
    return settings


@pytest.fixture
def deployer_factory(
    registry: RegistrySettings, deploy_db: Db, signing_pair: KeyPair
) -> Callable[..., VersionDeployer]:
    """Deployers of ``line3`` recording into ``deploy_db``, signing releases; overridable."""

    def make(**overrides: object) -> VersionDeployer:
        values: dict[str, object] = {
            "registry": registry,
            "signing_key": signing_pair.private_key,
            "session_factory": deploy_db[1],
            "options": _FAST,
            "requested_by": "test",
            **overrides,
        }
        return VersionDeployer(MODEL, **values)  # type: ignore[arg-type]

    return make


def _target(node: EdgeNode) -> Target:
    return Target(name=node.settings.node, address=f"127.0.0.1:{node.port}")


def _dead(name: str = "cam-dead") -> Target:
    """A loopback port nobody listens on."""
    return Target(name=name, address=f"127.0.0.1:{free_port()}")


def _active(node: EdgeNode) -> str | None:
    if not node.slot.loaded:
        return None
    identity = node.slot.current().identity
    return f"{identity.name}:{identity.version}"


def test_a_version_by_alias_reaches_the_node_and_comes_back_as_a_typed_report(
    model_node: EdgeNode,
    registry: RegistrySettings,
    deployer_factory: Callable[..., VersionDeployer],
    deploy_db: Db,
) -> None:
    promote(MODEL, 1, settings=registry, alias="service-deploy")
    started: list[tuple[str, int]] = []
    heard: list[TargetOutcome] = []

    def on_start(packed: PackedBundle, targets: Sequence[Target]) -> None:
        started.append((packed.label, len(targets)))

    deployer = deployer_factory(on_start=on_start, on_outcome=heard.append)
    live, dead = _target(model_node), _dead()

    report = deployer.deploy([live, dead], alias="service-deploy")

    assert isinstance(report, RolloutReport)
    assert (report.model, report.state) == ("line3:1", RolloutState.PARTIAL)
    assert started == [("line3:1", 2)]
    assert heard == report.outcomes
    assert [(item.target, item.state) for item in report.outcomes] == [
        (live, TargetState.SUCCEEDED),
        (dead, TargetState.FAILED),
    ]
    assert _active(model_node) == "line3:1"
    with pytest.raises(DeployError) as raised:
        report.raise_for_failures()
    assert str(raised.value) == (
        "deploy of line3:1: 1 of 2 nodes not updated (cam-dead); they keep their old model"
    )
    with deploy_db[1]() as session:
        view = deployment_status(session)
    assert view is not None and view.id == report.deployment_id
    assert (view.kind, view.model_name, view.model_version) == ("rollout", MODEL, "1")
    assert (view.state, view.requested_by) == ("partial", "test")
    assert {target.address: target.state for target in view.targets} == {
        live.address: "succeeded",
        dead.address: "failed",
    }


def test_the_watcher_rolls_out_each_move_and_stops_when_told(
    model_node: EdgeNode,
    registry: RegistrySettings,
    deployer_factory: Callable[..., VersionDeployer],
) -> None:
    promote(MODEL, 1, settings=registry, alias="service-watch")
    moves: list[int] = []
    reports: list[RolloutReport] = []
    errors: list[LinewatchError] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_alias,
        args=(deployer_factory(), "service-watch", lambda: [_target(model_node)], stop),
        kwargs={
            "interval_s": 0.2,
            "on_move": moves.append,
            "on_rollout": reports.append,
            "on_error": errors.append,
        },
        name="watch-test",
    )
    watcher.start()
    try:
        wait_until(lambda: len(reports) == 1, 60, "the rollout of version 1", poll_s=0.02)
        assert _active(model_node) == "line3:1"
        promote(MODEL, 2, settings=registry, alias="service-watch")
        wait_until(lambda: len(reports) == 2, 60, "the rollout after the move", poll_s=0.02)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert _active(model_node) == "line3:2"
    assert moves == [1, 2], "one rollout per move, not per check"
    assert [(item.model, item.state) for item in reports] == [
        ("line3:1", RolloutState.SUCCEEDED),
        ("line3:2", RolloutState.SUCCEEDED),
    ]
    assert errors == []


def test_the_watcher_reports_an_error_keeps_watching_and_stops_at_once(
    deployer_factory: Callable[..., VersionDeployer],
) -> None:
    errors: list[LinewatchError] = []
    errored = threading.Event()

    def on_error(exc: LinewatchError) -> None:
        errors.append(exc)
        errored.set()

    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_alias,
        args=(deployer_factory(), "no-such-alias", list, stop),
        kwargs={"interval_s": 600.0, "on_error": on_error},
        name="watch-test",
    )
    watcher.start()
    try:
        assert errored.wait(60), "the unknown alias is reported"
        assert watcher.is_alive(), "an error does not end the watch"
    finally:
        stop.set()
        asked = time.monotonic()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert time.monotonic() - asked < 5.0, "the wait ends when stop is set, not after 600 s"
    [error] = errors
    assert isinstance(error, RegistryError) and "no alias 'no-such-alias'" in str(error)


def test_rollback_through_the_service_returns_each_node_and_records_it(
    model_node: EdgeNode,
    deployer_factory: Callable[..., VersionDeployer],
    deploy_db: Db,
) -> None:
    deployer = deployer_factory()
    live, dead = _target(model_node), _dead()
    for version in (1, 2):
        deployed = deployer.deploy([live], version=version)
        deployed.raise_for_failures()  # all nodes updated: nothing to raise
    assert _active(model_node) == "line3:2"
    heard: list[RollbackResult] = []

    report = roll_back(
        [live, dead],
        session_factory=deploy_db[1],
        options=_FAST,
        requested_by="test",
        on_result=heard.append,
    )

    assert heard == report.results
    first, second = report.results
    assert (first.target, first.state) == (live, TargetState.SUCCEEDED)
    assert first.detail == "rolled back to line3:1 (was line3:2)"
    assert (first.active, first.previous) == ("line3:1", "line3:2")
    assert (second.target, second.state) == (dead, TargetState.FAILED)
    assert dead.address in second.detail
    assert report.failed == [second]
    assert _active(model_node) == "line3:1"
    with pytest.raises(DeployError, match=r"^rollback: 1 of 2 nodes not rolled back \(cam-dead\)$"):
        report.raise_for_failures()
    with deploy_db[1]() as session:
        view = deployment_status(session)
        row = session.scalars(select(Node).where(Node.grpc_address == live.address)).one()
        runs = (row.model_name, row.model_version)
    assert view is not None and view.id == report.deployment_id
    assert (view.kind, view.state, view.requested_by) == ("rollback", "failed", "test")
    assert [(target.address, target.state) for target in view.targets] == [
        (live.address, "succeeded"),
        (dead.address, "failed"),
    ]
    assert view.targets[0].outcome == first.detail
    assert runs == (MODEL, "1")
