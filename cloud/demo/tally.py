"""False alarms and misses per model version, scored against the synthetic line's truth.

Every node keeps the verdict of each frame it judged in its local record
(``<record-dir>/record.sqlite3``, table ``verdicts``: frame id, verdict, model
name and version). The demo reads those rows and looks each frame up in the
sidecar labels of the video the node plays, so it can say what no product
counter can: how many flagged frames showed a good part, and how many frames
of a defective part were let through.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cloud.demo.reviewer import part_at, video_frame
from cloud.errors import ConfigError
from cloud.synth import LineVideoLabels

__all__ = ["VersionCounts", "before_after_lines", "count_verdicts"]

_PER_FRAMES = 1000


@dataclass(frozen=True)
class VersionCounts:
    """What one model version decided on the line's frames, against the truth, on every node.

    The line videos loop, so a version judges each video frame many times, and two
    watches cover different numbers of passes on each node. Counting distinct
    frames (node, frame of its video) makes two versions comparable: a frame is a
    false alarm when the version ever judged that good frame abnormal, a miss
    when it ever judged that defective frame normal.
    """

    label: str  # "metal:1"
    judged: int = 0  # verdicts, every pass
    frames: int = 0  # distinct frames of the line videos among them
    false_alarms: int = 0  # good frames judged abnormal (an operator is alerted)
    uncertain_good: int = 0  # good frames judged uncertain (sent for review, no alert)
    misses: int = 0  # defective frames judged normal

    def per_frames(self, count: int) -> float:
        """``count`` per ``_PER_FRAMES`` distinct frames (0 when there were none)."""
        return _PER_FRAMES * count / self.frames if self.frames else 0.0


@dataclass
class _Seen:
    judged: int = 0
    verdicts: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    defective: set[tuple[str, int]] = field(default_factory=set)

    def counts(self, label: str, frames: set[tuple[str, int]]) -> VersionCounts:
        kept = {key: v for key, v in self.verdicts.items() if key in frames}
        good = [v for key, v in kept.items() if key not in self.defective]
        bad = [v for key, v in kept.items() if key in self.defective]
        return VersionCounts(
            label,
            judged=self.judged,
            frames=len(kept),
            false_alarms=sum("abnormal" in verdicts for verdicts in good),
            uncertain_good=sum("uncertain" in verdicts for verdicts in good),
            misses=sum("normal" in verdicts for verdicts in bad),
        )


def _rows(record: Path, model_name: str) -> list[tuple[str, str, str]]:
    try:
        with sqlite3.connect(f"file:{record}?mode=ro", uri=True) as db:
            return [
                (str(frame_id), str(verdict), str(version))
                for frame_id, verdict, version in db.execute(
                    "SELECT frame_id, verdict, model_version FROM verdicts WHERE model_name = ?",
                    (model_name,),
                )
            ]
    except sqlite3.Error as exc:
        msg = f"demo: node record {record} cannot be read ({exc}); see the node's log"
        raise ConfigError(msg) from exc


def count_verdicts(
    records: Mapping[str, Path],
    videos: Mapping[str, LineVideoLabels],
    model_name: str,
    versions: Sequence[str],
) -> list[VersionCounts]:
    """Count the versions' false alarms and misses on the video frames they all judged.

    A short watch may not cover every frame of a video; counting only the frames
    every one of ``versions`` judged keeps "per 1000 frames" comparable.

    Args:
        records: each node's ``record.sqlite3``.
        videos: each node's video labels (the node names must match ``records``).
        model_name: the registered model; verdicts of other models are left out.
        versions: the model versions to count, such as ("1", "2").

    Returns:
        One ``VersionCounts`` per version, in order (``judged`` counts every verdict;
        the rest only the common frames). Frames the videos do not place are left out.

    Raises:
        ConfigError: a record cannot be read.
    """
    seen: dict[str, _Seen] = {}
    for node, record in records.items():
        labels = videos[node]
        for frame_id, verdict, version in _rows(record, model_name):
            frame = video_frame(labels, frame_id)
            part = None if frame is None else part_at(labels, frame)
            if frame is None or part is None:
                continue
            key = (node, frame)
            tally = seen.setdefault(version, _Seen())
            tally.judged += 1
            tally.verdicts.setdefault(key, set()).add(verdict)
            if part.defect_type is not None:
                tally.defective.add(key)
    tallies = [seen.get(version, _Seen()) for version in versions]
    common = set.intersection(*(set(tally.verdicts) for tally in tallies)) if tallies else set()
    return [
        tally.counts(f"{model_name}:{version}", common)
        for version, tally in zip(versions, tallies, strict=True)
    ]


def before_after_lines(before: VersionCounts, after: VersionCounts | None) -> list[str]:
    """The before/after table, one string per line (``after`` None: the "before" row only)."""
    lines = [
        f"{'':8}{'model':<12}{'judged':>8}{'frames':>8}{'false alarms':>14}"
        f"{f'per {_PER_FRAMES}':>10}{'uncertain':>11}{'misses':>8}{f'per {_PER_FRAMES}':>10}",
    ]
    rows = [("before", before)] + ([("after", after)] if after is not None else [])
    for when, counts in rows:
        lines.append(
            f"{when:<8}{counts.label:<12}{counts.judged:>8}{counts.frames:>8}{counts.false_alarms:>14}"
            f"{counts.per_frames(counts.false_alarms):>10.1f}{counts.uncertain_good:>11}"
            f"{counts.misses:>8}{counts.per_frames(counts.misses):>10.1f}"
        )
    return lines
