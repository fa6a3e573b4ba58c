"""The demo's closing act: review what the line sent back, retrain, roll out, compare.

After the first watch, a simulated reviewer labels the collected samples from
the synthetic line's truth (through the real review code), ``linewatch retrain
--promote`` fits, gates and registers version 2, the deployer that follows
``production`` rolls it out, and a second watch on the same line videos gives
the "after" half of a before/after table of false alarms and misses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from cloud.db import make_engine, make_session_factory
from cloud.demo.live import node_view
from cloud.demo.processes import LogFollower, run_step, tool
from cloud.demo.reviewer import review_collected
from cloud.demo.tally import VersionCounts, before_after_lines, count_verdicts
from cloud.errors import ConfigError
from cloud.synth import LineVideoLabels

__all__ = ["Fleet", "LoopSettings", "RetrainSummary", "await_rollout", "close_the_loop"]

Echo = Callable[[str], None]
Watch = Callable[[float], None]
_POLL_S = 0.5


@dataclass(frozen=True)
class Fleet:
    """The demo's nodes: each one's metrics URL, local record and video labels, by name."""

    metrics_urls: Mapping[str, str]
    records: Mapping[str, Path]
    videos: Mapping[str, LineVideoLabels]


@dataclass(frozen=True)
class LoopSettings:
    """What the loop retrains and where the demo keeps things."""

    name: str
    work: Path
    data: Path
    db_url: str
    tracking_uri: str
    signing_key: Path
    after_s: float = 30.0
    rollout_timeout_s: float = 180.0


class _HeldOut(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    n_test_good: int
    false_alarms_test_good_before: int
    false_alarms_test_good_after: int


class RetrainSummary(BaseModel):
    """The fields of ``linewatch retrain --json`` the demo shows (that report is the contract)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    gate: Literal["passed", "failed"]
    candidate_version: int
    production_version: int
    promoted: bool
    reasons: list[str]
    report: _HeldOut


def await_rollout(
    fleet: Fleet, label: str, deployer_log: LogFollower, echo: Echo, timeout_s: float
) -> None:
    """Wait until every node reports ``label`` (``name:version``), showing the deployer's lines.

    Raises:
        ConfigError: some node did not report it within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        for line in deployer_log.new_lines():
            echo(f"  deployer | {line}")
        running = {node: node_view(url) for node, url in fleet.metrics_urls.items()}
        lagging = {n: v.model if v else "not answering" for n, v in running.items()}
        lagging = {n: model for n, model in lagging.items() if model != label}
        if not lagging:
            echo(f"every node runs {label}: {', '.join(fleet.metrics_urls)}")
            return
        if time.monotonic() > deadline:
            still = ", ".join(f"{node} ({model})" for node, model in lagging.items())
            msg = (
                f"demo: {label} did not reach every node within {timeout_s:.0f}s: still {still}; "
                f"see {deployer_log.path} and the nodes' logs"
            )
            raise ConfigError(msg)
        time.sleep(_POLL_S)  # polling interval of a condition with a deadline


def _retrain(settings: LoopSettings, echo: Echo) -> RetrainSummary:
    report = settings.work / "retrain.json"
    report.unlink(missing_ok=True)
    run_step(
        [tool("linewatch"), "retrain", "--name", settings.name, "--promote",
         "--data", str(settings.data), "--db", settings.db_url,
         "--store", str(settings.work / "samples"), "--state-dir", str(settings.work / "retrain"),
         "--tracking-uri", settings.tracking_uri, "--signing-key", str(settings.signing_key),
         "--json", str(report)],
        echo,
        # One torch thread: beside two busy nodes, threads that meet at a barrier in each
        # step of the coreset search wait out the scheduler (minutes instead of seconds).
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        return RetrainSummary.model_validate_json(report.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        msg = f"demo: retrain report {report} missing or unreadable ({exc})"
        raise ConfigError(msg) from exc


def _counts(fleet: Fleet, name: str, versions: tuple[int, ...]) -> list[VersionCounts]:
    return count_verdicts(fleet.records, fleet.videos, name, [str(v) for v in versions])


def _show_table(
    fleet: Fleet, before: VersionCounts, after: VersionCounts | None, echo: Echo
) -> None:
    echo(
        "\nbefore/after on the line: the frames of the line videos both versions judged on "
        f"{', '.join(fleet.records)}, against the videos' labels"
    )
    for line in before_after_lines(before, after):
        echo("  " + line)
    echo(
        "  judged: verdicts over every pass of the looped videos; frames: distinct video "
        "frames judged by both; false alarm: a good frame judged abnormal (an operator alert); "
        "uncertain: a good frame sent for review; miss: a defective frame judged normal"
    )


def _compare(fleet: Fleet, name: str, summary: RetrainSummary, echo: Echo) -> None:
    before, after = _counts(fleet, name, (summary.production_version, summary.candidate_version))
    _show_table(fleet, before, after, echo)
    held_out = summary.report
    echo(
        f"  held-out good test images (gate report): false alarms "
        f"{held_out.false_alarms_test_good_before} -> {held_out.false_alarms_test_good_after} "
        f"of {held_out.n_test_good}"
    )
    echo(
        "  note: the second watch replays the same line videos, so the good parts the "
        "reviewer labelled come round again; the held-out line is the unseen-data check"
    )
    misses_before, misses_after = before.per_frames(before.misses), after.per_frames(after.misses)
    if misses_after > misses_before:
        echo(f"WARNING: misses rose from {misses_before:.1f} to {misses_after:.1f} per 1000 frames")
        return
    echo(
        f"false alarms per 1000 frames: {before.per_frames(before.false_alarms):.1f} on "
        f"{before.label} -> {after.per_frames(after.false_alarms):.1f} on {after.label}; "
        "misses did not rise"
    )


def close_the_loop(
    settings: LoopSettings,
    fleet: Fleet,
    production_version: int,
    deployer_log: LogFollower,
    echo: Echo,
    watch: Watch,
) -> RetrainSummary | None:
    """Review, retrain with promote, wait for the rollout, watch again, print before/after.

    A gate that fails ends the loop with its reasons and the "before" row; the
    nodes keep the version they run. Returns the retrain's summary, or None when
    there was nothing to retrain.

    Raises:
        DeployError: ``linewatch retrain`` failed.
        ConfigError: the new version did not reach every node in time.
    """
    echo("\nclosing the loop: review, retrain, roll out, watch again")
    started = time.monotonic()
    sessions = make_session_factory(make_engine(settings.db_url))
    tally = review_collected(sessions, fleet.videos)
    echo(
        f"[1/4] simulated reviewer (the synthetic line's truth) labelled {tally.normals} "
        f"samples normal and {tally.defects} defect in {time.monotonic() - started:.1f}s; "
        f"{tally.repeats} repeats of an image already labelled left in the queue"
    )
    if tally.normals == 0:
        echo("nothing to retrain: no good part was flagged, so there is no false alarm to learn")
        _show_table(fleet, _counts(fleet, settings.name, (production_version,))[0], None, echo)
        return None
    echo("[2/4] retraining from the reviews; the gate decides whether it becomes production")
    started = time.monotonic()
    summary = _retrain(settings, echo)
    echo(f"retrain took {time.monotonic() - started:.0f}s")
    if not summary.promoted:
        echo(f"gate FAILED for {settings.name}:{summary.candidate_version}:")
        for reason in summary.reasons:
            echo(f"  - {reason}")
        echo(
            f"production stays {settings.name}:{summary.production_version} and the nodes keep "
            "it; the loop ends here, without a second watch"
        )
        before = _counts(fleet, settings.name, (summary.production_version,))[0]
        _show_table(fleet, before, None, echo)
        return summary
    label = f"{settings.name}:{summary.candidate_version}"
    echo(f"[3/4] the deployer follows {settings.name}@production: waiting for {label} on each node")
    await_rollout(fleet, label, deployer_log, echo, settings.rollout_timeout_s)
    echo(f"[4/4] watching the line on {label}")
    watch(settings.after_s)
    _compare(fleet, settings.name, summary, echo)
    return summary
