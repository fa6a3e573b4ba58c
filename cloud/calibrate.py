"""Lower a bundle's threshold to catch a share of labelled defects (``linewatch calibrate``).

The trainer chose the threshold from good images alone: a quantile of their
calibrated scores. A user with labelled defects (``DATA/test/<defect>``) can do
better for them: score the defects with the bundle's own graph through the
edge's ``InferenceEngine`` (what the line will see), and lower the threshold
until ``recall`` of them is caught. The good-image quantile stays the ceiling,
so a calibrated model never lets through more than the quantile one did. Only
the manifest changes; the calibrated bundle is written as a checked, re-signed
copy, with a record of how the threshold was chosen.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundle_writer import write_updated_copy
from cloud.calibration import (
    RecallCalibration,
    check_recall,
    good_quantile_policy,
    lowered_policy,
    recall_threshold,
)
from cloud.dataset import DatasetLayout, data_digest, load_layout
from cloud.errors import BundleCorrupt, BundleSignatureError, DatasetError, ImageDecodeError
from cloud.evaluation.metrics import OperatingPoint, operating_point
from cloud.types import StageProgress
from edge.runtime.bundle import ModelBundle, load_bundle
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.golden import check_golden
from edge.runtime.imaging import ImageArray, read_image
from edge.runtime.policy import DecisionPolicy, RecallCalibrationRecord
from edge.runtime.signing import public_key_id, verify_manifest

__all__ = ["CalibrationOutcome", "calibrate_bundle"]

logger = logging.getLogger(__name__)

DEFECTS = "labelled defects"


@dataclass(frozen=True)
class CalibrationOutcome:
    """The written bundle and the figures before and after calibration."""

    bundle: ModelBundle
    found: RecallCalibration
    before: OperatingPoint
    after: OperatingPoint
    n_good: int
    skipped: tuple[str, ...]
    signing_key_id: str | None


@dataclass(frozen=True)
class _Scored:
    scores: list[float]
    paths: list[Path]


def _trusted_key(
    bundle: ModelBundle, signing_key: Ed25519PrivateKey | None, *, allow_unsigned: bool
) -> Ed25519PrivateKey | None:
    """The key to sign the calibrated copy with, once the bundle's own signature holds.

    A signed bundle is checked with the public half of ``signing_key`` and its copy
    signed again; an unsigned one passes only with ``allow_unsigned`` and its copy
    stays unsigned: calibrating never makes a bundle look more trusted than it was.

    Raises:
        BundleSignatureError: unsigned without ``allow_unsigned``, signed with no key
            to check it, by another key, or altered after signing.
    """
    manifest = bundle.manifest
    if not manifest.signature:
        if not allow_unsigned:
            msg = (
                f"bundle {bundle.label}: unsigned, so nothing shows it is the model the cloud "
                "made; calibrate a registered (signed) version, or pass --allow-unsigned for "
                "a bundle straight from `linewatch train` (the copy stays unsigned)"
            )
            raise BundleSignatureError(msg)
        logger.info("calibrating an unsigned bundle model=%s", bundle.label)
        return None
    if signing_key is None:
        msg = (
            f"bundle {bundle.label}: signed by key {manifest.signing_key_id}; give that key as "
            "--signing-key (default keys/signing.key) to check it and sign the calibrated copy"
        )
        raise BundleSignatureError(msg)
    key_id = public_key_id(signing_key.public_key())
    if manifest.signing_key_id and manifest.signing_key_id != key_id:
        msg = (
            f"bundle {bundle.label}: signed by key {manifest.signing_key_id}, --signing-key is "
            f"key {key_id}; give the key that signed it"
        )
        raise BundleSignatureError(msg)
    verify_manifest(manifest, signing_key.public_key())
    return signing_key


def _read_all(paths: Sequence[Path], skipped: list[str]) -> tuple[list[ImageArray], list[Path]]:
    """Decode every path; one that does not decode is named in ``skipped`` and left out."""
    images: list[ImageArray] = []
    kept: list[Path] = []
    for path in paths:
        try:
            images.append(read_image(path))
        except ImageDecodeError as exc:
            logger.warning("skipping unreadable image path=%s", path)
            skipped.append(str(exc))
            continue
        kept.append(path)
    return images, kept


def _score(
    engine: InferenceEngine,
    paths: Sequence[Path],
    batch_size: int,
    skipped: list[str],
    progress: StageProgress,
    stage: str,
) -> _Scored:
    scores: list[float] = []
    kept: list[Path] = []
    for start in range(0, len(paths), batch_size):
        images, batch_kept = _read_all(paths[start : start + batch_size], skipped)
        if images:
            result = engine.infer_images(images)
            scores.extend(float(score) for score in result.image_scores)
            kept.extend(batch_kept)
        progress(stage, min(start + batch_size, len(paths)), len(paths))
    return _Scored(scores, kept)


def _operating_point(threshold: float, defects: _Scored, good: _Scored) -> OperatingPoint:
    """Recall and false-alarm rate where ``score >= threshold`` alarms, as ``evaluate`` reports."""
    labels = [True] * len(defects.scores) + [False] * len(good.scores)
    return operating_point(labels, defects.scores + good.scores, threshold)


def _labelled_layout(data_root: Path) -> DatasetLayout:
    """The dataset, refused in one line when it holds no labelled defect images."""
    no_defects = (
        f"dataset {data_root}: no labelled defect images in test/<defect>/; calibration needs "
        "labelled defects. Without them keep the good-image quantile threshold that "
        "`linewatch train` chose (its --target-false-alarm-rate sets it)"
    )
    if not data_root.is_dir():
        msg = f"dataset {data_root}: no such folder"
        raise DatasetError(msg)
    try:
        layout = load_layout(data_root, require_test=True)
    except DatasetError as exc:  # a folder without test images: no defects either
        raise DatasetError(no_defects) from exc
    if not any(item.is_anomalous for item in layout.test):
        raise DatasetError(no_defects)
    return layout


def _check_written(
    bundle: ModelBundle, key: Ed25519PrivateKey | None, options: EngineOptions | None
) -> None:
    """The copy verifies and loads in the edge engine, its golden images reproduced."""
    if key is not None:
        verify_manifest(bundle.manifest, key.public_key())
    engine = InferenceEngine(bundle, options)
    if bundle.manifest.golden:
        golden = check_golden(engine, bundle)
        if not golden.passed:
            msg = (
                f"bundle {bundle.label}: the calibrated copy does not reproduce its golden "
                f"scores (max error {golden.max_score_error:.4f}); nothing was written"
            )
            raise BundleCorrupt(msg)


def _updated_metrics(
    bundle: ModelBundle, decision: DecisionPolicy, after: OperatingPoint
) -> dict[str, float]:
    """The manifest's figures that depend on the threshold, moved to the new one."""
    metrics = dict(bundle.manifest.metrics)
    policy_after = {
        "threshold": decision.threshold,
        "uncertain_low": decision.uncertain_low,
        "recall_at_threshold": after.recall,
        "false_alarm_rate_at_threshold": after.false_alarm_rate,
    }
    for key, value in policy_after.items():
        if key not in metrics:
            continue
        if value is None:
            del metrics[key]  # stale, and nothing to replace it (no good test images)
        else:
            metrics[key] = value
    return metrics


def calibrate_bundle(
    bundle_path: Path,
    data_root: Path,
    out: Path,
    *,
    recall: float,
    signing_key: Ed25519PrivateKey | None = None,
    allow_unsigned: bool = False,
    batch_size: int = 8,
    engine_options: EngineOptions | None = None,
    progress: StageProgress | None = None,
) -> CalibrationOutcome:
    """Set the threshold that catches ``recall`` of DATA's defects; write the bundle to ``out``.

    Args:
        bundle_path: a bundle directory or tar; its sha256 and signature are checked.
        data_root: a dataset in the MVTec AD layout with ``test/<defect>`` images
            (``test/good`` too, to measure false alarms).
        out: the calibrated bundle's directory; may be ``bundle_path`` itself.
        recall: share of the defects to catch, in (0, 1].
        signing_key: checks a signed bundle and signs the calibrated copy.
        allow_unsigned: accept an unsigned bundle (its copy stays unsigned).
        batch_size: images per ONNX Runtime call.
        engine_options: ONNX Runtime providers and threads.
        progress: told ``(stage, done, total)`` while images are scored.

    Returns:
        The written bundle, the chosen threshold and the figures before and after.

    Raises:
        LinewatchError: a recall outside (0, 1].
        BundleCorrupt: a bundle failing its sha256, or a copy that does not load.
        BundleSignatureError: an unsigned bundle without ``allow_unsigned``, or a
            signature that does not hold.
        DatasetError: no labelled defect images (or every one unreadable).
    """
    check_recall(recall)
    report = progress or (lambda stage, done, total: None)
    bundle = load_bundle(bundle_path)
    key = _trusted_key(bundle, signing_key, allow_unsigned=allow_unsigned)
    layout = _labelled_layout(data_root)
    engine = InferenceEngine(bundle, engine_options)
    skipped: list[str] = []
    defect_paths = [item.path for item in layout.test if item.is_anomalous]
    good_paths = [item.path for item in layout.test if not item.is_anomalous]
    defects = _score(engine, defect_paths, batch_size, skipped, report, "scoring defects")
    good = _score(engine, good_paths, batch_size, skipped, report, "scoring good test images")
    if not defects.scores:
        msg = (
            f"dataset {data_root}: none of the {len(defect_paths)} defect images decodes; "
            "calibration needs labelled defects, fix the files"
        )
        raise DatasetError(msg)
    floor = good_quantile_policy(bundle.manifest.decision)
    found = recall_threshold(defects.scores, recall=recall, ceiling=floor.threshold)
    after = _operating_point(found.threshold, defects, good)
    record = RecallCalibrationRecord(
        target_recall=recall,
        recall=found.recall,
        n_defects=found.n_defects,
        limited_by=found.limited_by,
        false_alarm_rate=after.false_alarm_rate,
        n_good=len(good.scores),
        good_quantile_threshold=floor.threshold,
        good_quantile_uncertain_low=floor.uncertain_low,
        good_quantile_method=floor.method,
        data_root=str(layout.root.resolve()),
        data_digest=data_digest(defects.paths + good.paths, layout.root),
        calibrated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    band_margin = (
        floor.band_margin
        if floor.band_margin is not None
        else floor.threshold - floor.uncertain_low
    )
    decision = lowered_policy(
        floor, found, band_margin=band_margin, defects=f"{DEFECTS} in {layout.root}", record=record
    )
    written = write_updated_copy(
        bundle,
        out,
        decision=decision,
        metrics=_updated_metrics(bundle, decision, after),
        signing_key=key,
        check=lambda staged: _check_written(staged, key, engine_options),
    )
    logger.info(
        "calibrated model=%s threshold=%.4f recall=%.3f limited_by=%s out=%s",
        bundle.label,
        found.threshold,
        found.recall,
        found.limited_by,
        out,
    )
    return CalibrationOutcome(
        bundle=written,
        found=found,
        before=_operating_point(bundle.manifest.decision.threshold, defects, good),
        after=after,
        n_good=len(good.scores),
        skipped=tuple(skipped),
        signing_key_id=written.manifest.signing_key_id,
    )
