"""Deploy a registered version, or roll nodes back: the deployer's API, free of any CLI.

The CLI, a web app or a retrain loop call the same two operations and hear of
progress through callbacks they supply, so each shows it its own way. Both keep
their record in the database as they go (``DeploymentRecorder``).

The registry (and with it MLflow) is imported only when a version is fetched:
importing ``cloud.deploy`` stays light for code that only pushes bundles.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from cloud.deploy.pusher import ClientOptions, NodeClient, PackedBundle, pack_bundle
from cloud.deploy.record import DeploymentRecorder
from cloud.deploy.rollout import OutcomeCallback, RolloutReport, RolloutState, TargetState, roll_out
from cloud.deploy.targets import Target
from cloud.errors import DeployError
from cloud.release import DEFAULT_VALID_FOR, ReleaseScope, release_scope, sign_release
from cloud.signing import DEFAULT_SIGNING_KEY, load_private_key

if TYPE_CHECKING:
    from cloud.registry import RegistrySettings

__all__ = [
    "RollbackCallback",
    "RollbackReport",
    "RollbackResult",
    "StartCallback",
    "VersionDeployer",
    "roll_back",
]

logger = logging.getLogger(__name__)

StartCallback = Callable[[PackedBundle, Sequence[Target]], None]


class VersionDeployer:
    """Rolls versions of one registered model out to nodes, canaries first, recorded.

    Built once with where the registry and the record live and how hard to push;
    ``deploy`` then takes a version (or alias) and the nodes, as often as needed
    (the alias watcher calls it for each move).
    """

    def __init__(
        self,
        name: str,
        *,
        registry: RegistrySettings,
        session_factory: sessionmaker[Session],
        options: ClientOptions | None = None,
        canary: int = 0,
        concurrency: int = 4,
        requested_by: str = "",
        on_start: StartCallback | None = None,
        on_outcome: OutcomeCallback | None = None,
        signing_key: Path = DEFAULT_SIGNING_KEY,
        valid_for: timedelta = DEFAULT_VALID_FOR,
        any_target: bool = False,
    ) -> None:
        """Configure the deployer; nothing is contacted yet.

        Args:
            name: the registered model.
            registry: where MLflow lives.
            session_factory: the migrated database that keeps each rollout's record.
            options: deadlines, chunk size and retries of each node client.
            canary: how many targets go first; any failure among them stops the rollout.
            concurrency: nodes updated at the same time after the canaries.
            requested_by: who asked, for the record (``cli``, a user, a service).
            on_start: called once the bundle is packed, before the first node is touched.
            on_outcome: called as each node finishes.
            signing_key: the cloud's Ed25519 key; it signs each rollout's release statement.
            valid_for: how long nodes accept a release after it is made.
            any_target: release to any node (``*``) instead of naming the targets.
        """
        self.name = name
        self.registry = registry
        self.session_factory = session_factory
        self.options = options or ClientOptions()
        self.canary = canary
        self.concurrency = concurrency
        self.requested_by = requested_by
        self.on_start = on_start
        self.on_outcome = on_outcome
        self.signing_key = signing_key
        self.valid_for = valid_for
        self.any_target = any_target

    def current_version(self, alias: str) -> int:
        """The version number ``alias`` names right now.

        Raises:
            RegistryError: an unknown model or alias, or MLflow unreachable.
        """
        from cloud.registry import resolve_version  # MLflow only when it is needed

        return resolve_version(self.name, settings=self.registry, alias=alias)

    def deploy(
        self,
        targets: Sequence[Target],
        *,
        version: int | None = None,
        alias: str | None = None,
        rollback: bool = False,
    ) -> RolloutReport:
        """Download, pack and roll out one version; a node that fails keeps its old model.

        Args:
            targets: nodes in order; the first ``canary`` of them are the canaries.
            version: a version number; else ``alias``; else the latest version.
            alias: an alias such as ``production`` (it wins over ``version`` when both given).
            rollback: sign the release as a rollback, so nodes running a newer version
                of the model accept it.

        Returns:
            The rollout, node by node; ``raise_for_failures`` turns failed nodes into an error.

        Raises:
            RegistryError: an unknown model, version or alias, or MLflow unreachable.
            BundleCorrupt: a downloaded bundle that fails its checks, or whose manifest the
                signing key did not sign (``BundleSignatureError``).
            ConfigError: the signing key cannot be read.
            DeployError: no targets, or one the release cannot name.
            StoreError: the record could not be started.
        """
        from cloud.registry import download_version  # MLflow only when it is needed

        with tempfile.TemporaryDirectory(prefix="linewatch-deploy-") as workdir:
            bundle_dir = download_version(
                self.name,
                dest=Path(workdir) / "bundle",
                settings=self.registry,
                version=version,
                alias=alias,
            )
            release = sign_release(
                bundle_dir,
                load_private_key(self.signing_key),
                ReleaseScope.any()
                if self.any_target
                else release_scope(targets, session_factory=self.session_factory),
                valid_for=self.valid_for,
                rollback=rollback,
            )
            packed = pack_bundle(bundle_dir, Path(workdir) / "bundle.tar", release=release)
            if self.on_start is not None:
                self.on_start(packed, targets)
            return roll_out(
                packed,
                targets,
                canary=self.canary,
                concurrency=self.concurrency,
                options=self.options,
                recorder=DeploymentRecorder(self.session_factory, requested_by=self.requested_by),
                on_outcome=self.on_outcome,
            )


@dataclass(frozen=True)
class RollbackResult:
    """One node's rollback: ``succeeded`` or ``failed``, and what it now runs or why not."""

    target: Target
    state: TargetState
    detail: str
    active: str = ""  # ``name:version`` now active; empty when the node failed
    previous: str = ""  # ``name:version`` it ran before


RollbackCallback = Callable[[RollbackResult], None]


@dataclass(frozen=True)
class RollbackReport:
    """A rollback across nodes, node by node, under its deployment record."""

    deployment_id: int
    results: list[RollbackResult]

    @property
    def failed(self) -> list[RollbackResult]:
        """The nodes that were not rolled back."""
        return [item for item in self.results if item.state is not TargetState.SUCCEEDED]

    def raise_for_failures(self) -> None:
        """Raise when any node was not rolled back, naming them all.

        Raises:
            DeployError: one or more nodes failed.
        """
        if not self.failed:
            return
        names = ", ".join(item.target.name for item in self.failed)
        msg = f"rollback: {len(self.failed)} of {len(self.results)} nodes not rolled back ({names})"
        raise DeployError(msg)


def _roll_back_one(
    target: Target, options: ClientOptions, recorder: DeploymentRecorder
) -> RollbackResult:
    recorder.update(target, TargetState.ACTIVATING)
    try:
        with NodeClient(target.address, options) as client:
            switched = client.rollback()
    except DeployError as exc:
        logger.info("rollback failed node=%s reason=%s", target.name, exc)
        recorder.update(target, TargetState.FAILED, outcome=str(exc))
        return RollbackResult(target, TargetState.FAILED, str(exc))
    detail = f"rolled back to {switched.active} (was {switched.previous})"
    recorder.update(target, TargetState.SUCCEEDED, outcome=detail)
    name, _, version = switched.active.rpartition(":")
    if name:
        recorder.node_runs(target, name, version)
    logger.info("rolled back node=%s active=%s", target.name, switched.active)
    return RollbackResult(target, TargetState.SUCCEEDED, detail, switched.active, switched.previous)


def roll_back(
    targets: Sequence[Target],
    *,
    session_factory: sessionmaker[Session],
    options: ClientOptions | None = None,
    requested_by: str = "",
    on_result: RollbackCallback | None = None,
) -> RollbackReport:
    """Send each node back to the bundle it ran before its current one, recorded per node.

    Nodes go one at a time; one that fails keeps its current model and the rest
    carry on. The record is ``failed`` when any node failed.

    Args:
        targets: the nodes, in order.
        session_factory: the migrated database that keeps the record.
        options: deadlines and retries of each node client.
        requested_by: who asked, for the record.
        on_result: called as each node finishes.

    Returns:
        Each node's result; ``raise_for_failures`` turns failed nodes into an error.

    Raises:
        StoreError: the record could not be started.
    """
    options = options or ClientOptions()
    recorder = DeploymentRecorder(session_factory, requested_by=requested_by)
    deployment_id = recorder.start_rollback(list(targets))
    results: list[RollbackResult] = []
    for target in targets:
        result = _roll_back_one(target, options, recorder)
        results.append(result)
        if on_result is not None:
            on_result(result)
    report = RollbackReport(deployment_id, results)
    recorder.finish(RolloutState.FAILED if report.failed else RolloutState.SUCCEEDED)
    return report
