"""Roll one packed bundle out to many nodes: canaries first, then the rest, a few at a time.

For each node: push (resumable), then activate (the node verifies, warms up and
parity-checks before it swaps). A node that refuses or cannot be reached keeps
its old model and is reported with the reason; the others carry on. With
canaries, the first ``canary`` nodes go first and any failure among them stops
the rollout: the remaining nodes are marked ``skipped`` and never touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from cloud.deploy.pusher import ClientOptions, NodeClient, PackedBundle
from cloud.deploy.record import DeploymentRecorder
from cloud.deploy.targets import Target
from cloud.errors import DeployError

__all__ = [
    "OutcomeCallback",
    "RolloutReport",
    "RolloutState",
    "TargetOutcome",
    "TargetState",
    "roll_out",
]

logger = logging.getLogger(__name__)


class TargetState(StrEnum):
    """Where one node stands in a rollout."""

    PENDING = "pending"
    PUSHING = "pushing"
    ACTIVATING = "activating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class RolloutState(StrEnum):
    """How a rollout ended."""

    SUCCEEDED = "succeeded"  # every node runs the new model
    PARTIAL = "partial"  # some nodes failed, the rest run it
    FAILED = "failed"  # no node runs it
    STOPPED = "stopped"  # a canary failed; the rest were not touched


@dataclass(frozen=True)
class TargetOutcome:
    """One node's result."""

    target: Target
    state: TargetState
    detail: str
    bytes_sent: int
    seconds: float


@dataclass(frozen=True)
class RolloutReport:
    """A rollout's result, node by node."""

    model: str
    state: RolloutState
    outcomes: list[TargetOutcome]
    seconds: float
    deployment_id: int | None = None

    @property
    def failed(self) -> list[TargetOutcome]:
        """The nodes that did not end up on the new model (failed or skipped)."""
        return [item for item in self.outcomes if item.state is not TargetState.SUCCEEDED]

    def raise_for_failures(self) -> None:
        """Raise when any node did not end up on the new model, naming them all.

        Raises:
            DeployError: one or more nodes failed or were skipped.
        """
        if not self.failed:
            return
        names = ", ".join(item.target.name for item in self.failed)
        msg = (
            f"deploy of {self.model}: {len(self.failed)} of {len(self.outcomes)} nodes not "
            f"updated ({names}); they keep their old model"
        )
        raise DeployError(msg)


OutcomeCallback = Callable[[TargetOutcome], None]  # each node as it finishes


def _deploy_one(
    target: Target,
    packed: PackedBundle,
    options: ClientOptions,
    recorder: DeploymentRecorder | None,
) -> TargetOutcome:
    started = time.perf_counter()
    sent = 0

    def note(state: TargetState, outcome: str = "") -> None:
        if recorder is not None:
            recorder.update(target, state, bytes_sent=sent, outcome=outcome)

    try:
        with NodeClient(target.address, options) as client:
            note(TargetState.PUSHING)
            pushed = client.push(packed)
            sent = pushed.bytes_sent
            note(TargetState.ACTIVATING)
            switched = client.activate(packed.name, packed.version)
    except DeployError as exc:
        logger.info("node failed node=%s model=%s reason=%s", target.name, packed.label, exc)
        note(TargetState.FAILED, str(exc))
        return TargetOutcome(
            target, TargetState.FAILED, str(exc), sent, time.perf_counter() - started
        )
    held = " (already held, not sent)" if pushed.already_held else ""
    was = switched.previous or "none"
    detail = f"{switched.active} active (was {was}){held}; {switched.detail}"
    note(TargetState.SUCCEEDED, detail)
    if recorder is not None:
        recorder.node_runs(target, packed.name, packed.version)
    logger.info("node updated node=%s model=%s bytes_sent=%d", target.name, packed.label, sent)
    return TargetOutcome(target, TargetState.SUCCEEDED, detail, sent, time.perf_counter() - started)


def _wave(
    targets: Sequence[Target],
    packed: PackedBundle,
    *,
    concurrency: int,
    options: ClientOptions,
    recorder: DeploymentRecorder | None,
    on_outcome: OutcomeCallback | None,
) -> list[TargetOutcome]:
    outcomes: list[TargetOutcome] = []
    with ThreadPoolExecutor(max(1, min(concurrency, len(targets))), "rollout") as pool:
        futures = [pool.submit(_deploy_one, t, packed, options, recorder) for t in targets]
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


def _overall(outcomes: Sequence[TargetOutcome], stopped: bool) -> RolloutState:
    good = sum(item.state is TargetState.SUCCEEDED for item in outcomes)
    if stopped:
        return RolloutState.STOPPED
    if good == len(outcomes):
        return RolloutState.SUCCEEDED
    return RolloutState.PARTIAL if good else RolloutState.FAILED


def roll_out(
    packed: PackedBundle,
    targets: Sequence[Target],
    *,
    canary: int = 0,
    concurrency: int = 4,
    options: ClientOptions | None = None,
    recorder: DeploymentRecorder | None = None,
    on_outcome: OutcomeCallback | None = None,
    run_id: str = "",
) -> RolloutReport:
    """Push and activate ``packed`` on every target; report (and record) each node.

    Args:
        packed: the bundle as a tar (``pack_bundle``).
        targets: nodes in order; the first ``canary`` of them are the canaries.
        canary: how many nodes go first; any failure among them stops the rollout.
        concurrency: nodes updated at the same time after the canaries.
        options: deadlines, chunk size and retries of each node client.
        recorder: keeps the deployment in the database when given.
        on_outcome: called as each node finishes (CLI progress).
        run_id: the MLflow run of the version, for the record.

    Raises:
        DeployError: no targets.
    """
    if not targets:
        msg = f"rollout of {packed.label}: no nodes to deploy to"
        raise DeployError(msg)
    options = options or ClientOptions()
    started = time.perf_counter()
    deployment_id = recorder.start(packed, list(targets), run_id=run_id) if recorder else None
    canaries, rest = list(targets[:canary]), list(targets[canary:])

    def wave(nodes: list[Target]) -> list[TargetOutcome]:
        return _wave(
            nodes,
            packed,
            concurrency=concurrency,
            options=options,
            recorder=recorder,
            on_outcome=on_outcome,
        )

    outcomes = wave(canaries) if canaries else []
    failed_canaries = [item.target.name for item in outcomes if item.state is TargetState.FAILED]
    stopped = bool(failed_canaries)
    if stopped:
        reason = f"not attempted: canary {', '.join(failed_canaries)} failed"
        for target in rest:
            if recorder is not None:
                recorder.update(target, TargetState.SKIPPED, outcome=reason)
            outcomes.append(TargetOutcome(target, TargetState.SKIPPED, reason, 0, 0.0))
        logger.warning("rollout stopped after canaries model=%s", packed.label)
    elif rest:
        outcomes += wave(rest)
    state = _overall(outcomes, stopped)
    if recorder is not None:
        recorder.finish(state)
    report = RolloutReport(
        packed.label, state, outcomes, time.perf_counter() - started, deployment_id
    )
    logger.info(
        "rollout finished model=%s state=%s nodes=%d failed=%d seconds=%.2f",
        packed.label, state, len(outcomes), len(report.failed), report.seconds,
    )  # fmt: skip
    return report
