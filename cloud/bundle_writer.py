"""Write a ModelBundle, and later change its manifest, in one place.

Every ``manifest.json`` the cloud produces comes from here. ``write_bundle``
makes a new bundle: the model file, the golden images scored on it, the sha256
of every file and the typed manifest sections. ``update_manifest`` changes
fields of an existing bundle: the evaluation metrics, the MLflow run id, the
registry's name and version; ``write_updated_copy`` does the same to a copy
written atomically elsewhere (``linewatch calibrate``'s new decision policy).
All sign last, once every field is final, because the signature covers the
whole manifest and any later change breaks it.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.errors import BundleError, TrainingError
from cloud.golden import make_golden_images
from cloud.signing import sign_manifest
from edge.runtime.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    DetectorInfo,
    InputSpec,
    Manifest,
    ModelBundle,
    ScoreCalibration,
    TrainingData,
    file_sha256,
    load_bundle,
    write_manifest,
)
from edge.runtime.imaging import ImageArray
from edge.runtime.policy import DecisionPolicy

__all__ = [
    "UNREGISTERED",
    "BundleSections",
    "update_manifest",
    "write_bundle",
    "write_updated_copy",
]

logger = logging.getLogger(__name__)

UNREGISTERED = "unregistered"
"""The version of a bundle the registry has not numbered yet."""


class BundleSections(BaseModel):
    """The manifest fields a trainer decides; the writer adds files, digests and signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    version: str = Field(default=UNREGISTERED, min_length=1)
    input: InputSpec
    calibration: ScoreCalibration
    decision: DecisionPolicy
    detector: DetectorInfo
    training_data: TrainingData
    metrics: dict[str, float] = Field(default_factory=dict)


def _prepare_out(out: Path) -> Path:
    """A fresh staging folder beside ``out``, so publishing it is one rename."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST_FILE).exists():
        msg = f"output {out}: exists, is not empty and is not a bundle; choose another --out"
        raise TrainingError(msg)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))


def _publish(staging: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    staging.replace(out)


def _sign_and_write(
    manifest: Manifest, directory: Path, signing_key: Ed25519PrivateKey | None
) -> None:
    """The last step of every write: sign the final fields, then write ``manifest.json``."""
    if signing_key is not None:
        manifest = sign_manifest(manifest, signing_key)
    write_manifest(manifest, directory)


def write_bundle(
    out: Path,
    sections: BundleSections,
    *,
    write_model: Callable[[Path], object],
    golden_images: Sequence[ImageArray],
    golden_seed: int = 0,
    signing_key: Ed25519PrivateKey | None = None,
) -> ModelBundle:
    """Write a complete bundle to ``out`` atomically and return it, verified.

    The bundle is built in a staging folder beside ``out`` and renamed into
    place, so a failure part-way leaves the previous bundle (if any) intact.

    Args:
        out: the bundle directory to (re)write; an existing one is replaced.
        sections: the manifest fields the trainer decided.
        write_model: writes the ONNX graph to the path it is given (e.g. ``export_onnx``).
        golden_images: held-out good images at the model's input size; they and a
            painted defect become the golden images, scored on the written graph.
        golden_seed: seed of the painted defect.
        signing_key: signs the manifest when given; else the bundle is unsigned.

    Returns:
        The bundle as ``load_bundle`` reads it back from ``out``.

    Raises:
        TrainingError: ``out`` is an unrelated non-empty folder, or a file cannot be written.
    """
    staging = _prepare_out(out)
    try:
        write_model(staging / MODEL_FILE)
        golden = make_golden_images(staging, golden_images, seed=golden_seed)
        manifest = Manifest(
            name=sections.name,
            version=sections.version,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            model_sha256=file_sha256(staging / MODEL_FILE),
            files={item.file: file_sha256(staging / item.file) for item in golden},
            input=sections.input,
            calibration=sections.calibration,
            decision=sections.decision,
            detector=sections.detector,
            training_data=sections.training_data,
            metrics=sections.metrics,
            golden=golden,
        )
        _sign_and_write(manifest, staging, signing_key)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("bundle written out=%s model=%s", out, f"{manifest.name}:{manifest.version}")
    return load_bundle(out)


def update_manifest(
    bundle: ModelBundle,
    *,
    name: str | None = None,
    version: str | None = None,
    metrics: Mapping[str, float] | None = None,
    training_data: TrainingData | None = None,
    decision: DecisionPolicy | None = None,
    signing_key: Ed25519PrivateKey | None = None,
) -> ModelBundle:
    """Change manifest fields of a bundle on disk, sign it again if asked, and reload it.

    A signature covers every field, so one made before the change would no
    longer hold: it is dropped, and the changed manifest is signed with
    ``signing_key`` when one is given (else the bundle is left unsigned).

    Args:
        bundle: the bundle whose ``manifest.json`` is rewritten in its directory.
        name: the model name, e.g. the registered model's.
        version: the version, e.g. the number the registry gave it.
        metrics: replace the metrics, e.g. with the evaluation's figures.
        training_data: replace the training data section, e.g. to add the MLflow run id.
        decision: replace the decision policy, e.g. with a recall-calibrated threshold.
        signing_key: signs the changed manifest.

    Returns:
        The bundle as ``load_bundle`` reads it back.

    Raises:
        BundleError: a value the manifest does not accept (e.g. an empty name); nothing
            is written. A caller's bug: names and versions from users are checked first.
        BundleCorrupt: files that changed on disk since the bundle was loaded.
    """
    changes: dict[str, Any] = {"signature": None, "signing_key_id": None}
    if name is not None:
        changes["name"] = name
    if version is not None:
        changes["version"] = version
    if metrics is not None:
        changes["metrics"] = dict(metrics)
    if training_data is not None:
        changes["training_data"] = training_data
    if decision is not None:
        changes["decision"] = decision
    # Validated again, so a stamped name or version obeys the same rules as a read one.
    try:
        manifest = Manifest.model_validate(bundle.manifest.model_dump() | changes)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        msg = (
            f"bundle {bundle.label}: cannot set {where} to {first['input']!r} "
            f"({first['msg']}); nothing was written, give a valid value"
        )
        raise BundleError(msg) from exc
    _sign_and_write(manifest, bundle.directory, signing_key)
    return load_bundle(bundle.directory)


def write_updated_copy(
    bundle: ModelBundle,
    out: Path,
    *,
    decision: DecisionPolicy | None = None,
    metrics: Mapping[str, float] | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    check: Callable[[ModelBundle], object] | None = None,
) -> ModelBundle:
    """Copy ``bundle`` to ``out`` with manifest fields changed, atomically.

    The copy is made and changed in a staging folder beside ``out``, checked, and
    renamed into place: ``out`` may be the bundle's own directory, and a failure
    leaves whatever was at ``out`` as it was.

    Args:
        bundle: the bundle to copy; its files are not changed.
        out: the bundle directory to (re)write.
        decision: replace the decision policy.
        metrics: replace the metrics.
        signing_key: signs the changed manifest; else the copy is unsigned.
        check: run on the staged copy before it is published; raise to stop.

    Returns:
        The copy as ``load_bundle`` reads it back from ``out``.

    Raises:
        TrainingError: ``out`` is an unrelated non-empty folder or a file.
        BundleError: a value the manifest does not accept.
    """
    if out.exists() and not out.is_dir():
        msg = f"output {out}: a file, not a folder; give a bundle directory as --out"
        raise TrainingError(msg)
    staging = _prepare_out(out)
    try:
        shutil.copytree(bundle.directory, staging, dirs_exist_ok=True)
        staged = update_manifest(
            load_bundle(staging), decision=decision, metrics=metrics, signing_key=signing_key
        )
        if check is not None:
            check(staged)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("bundle copy written out=%s model=%s", out, bundle.label)
    return load_bundle(out)
