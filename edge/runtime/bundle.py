"""The ModelBundle: ``model.onnx`` plus ``manifest.json``, everything a node needs.

A bundle is a directory or a ``.tar`` of one. The manifest names the model, its
input contract, the score calibration, the decision policy, the golden images
a node must reproduce, and the sha256 of every file. This module reads and
verifies bundles without torch or MLflow, so the edge and the cloud share it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from edge.runtime.errors import BundleCorrupt, BundleIncompatible
from edge.runtime.policy import DecisionPolicy

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "DetectorInfo",
    "GoldenImage",
    "InputSpec",
    "Manifest",
    "ModelBundle",
    "ScoreCalibration",
    "TrainingData",
    "TrainingImage",
    "check_bundle_path",
    "file_sha256",
    "load_bundle",
    "manifest_signing_bytes",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
BUNDLE_FORMAT_VERSION = 1
_CHUNK_BYTES = 1 << 20


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputSpec(_Frozen):
    """What the graph takes: decoded, resized uint8 pixels; the rest happens inside."""

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[3] = 3
    layout: Literal["NHWC"] = "NHWC"
    dtype: Literal["uint8"] = "uint8"
    color_order: Literal["BGR"] = "BGR"
    resize: Literal["area_or_bilinear"] = "area_or_bilinear"
    # Normalisation runs inside the graph; recorded here so people can see it.
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)


class ScoreCalibration(_Frozen):
    """How raw nearest-neighbour distances became the calibrated scores in the graph."""

    method: str
    raw_location: float
    raw_scale: float = Field(gt=0.0)
    n_images: int = Field(ge=1)


class GoldenImage(_Frozen):
    """An image the trainer scored; a node must reproduce the result before activating."""

    file: str
    image_score: float
    anomaly_map_digest: list[list[float]] = Field(
        description="the anomaly map mean-pooled to a small grid, row major"
    )

    @field_validator("file")
    @classmethod
    def _inside_bundle(cls, value: str) -> str:
        return check_bundle_path(value, "golden image")

    @field_validator("image_score")
    @classmethod
    def _finite_score(cls, value: float) -> float:
        return _finite(value, "golden image_score")

    @field_validator("anomaly_map_digest")
    @classmethod
    def _finite_digest(cls, value: list[list[float]]) -> list[list[float]]:
        for row in value:
            for cell in row:
                _finite(cell, "golden anomaly_map_digest value")
        return value


class _RecordSection(BaseModel):
    """A descriptive manifest section that older trainers wrote as a free-form object.

    Keys this code does not know are kept (``extra="allow"``), every field is
    optional, and only the keys a manifest carried (or a writer set) are written
    back. So a bundle written before a key existed loads, and dumping it gives the
    same JSON, hence the same signing bytes: an older signature still verifies.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    @model_serializer(mode="wrap")
    def _only_given_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        given = self.model_fields_set | set(self.model_extra or {})
        return {key: value for key, value in dumped.items() if key in given}


class DetectorInfo(_RecordSection):
    """What the graph inside the bundle is, for people and tools; a node does not need it."""

    kind: str | None = None
    preset: str | None = Field(default=None, description="train --preset: fast or accurate")
    input_budget_side: int | None = Field(
        default=None, description="the input holds about this side squared pixels"
    )
    backbone: str | None = None
    feature_blocks: tuple[int, ...] | None = None
    feature_dims: tuple[int, ...] | None = None
    memory_bank_size: int | None = Field(default=None, description="patches, all levels")
    memory_bank_sizes: tuple[int, ...] | None = None
    coreset_ratio: float | None = None
    smoothing_sigma_patches: float | None = None
    colour_contrast_weight: float | None = None
    patch_normalisation: str | None = Field(default=None, description="how, or 'none'")


class TrainingImage(_RecordSection):
    """One image a version learnt from, so a retrain can start from exactly that set.

    ``role`` says where the trainer put it: ``fit`` (the memory bank) or
    ``calibration`` (held out to set the scale). ``sample_id`` names the reviewed
    sample an image came from; dataset images have none.
    """

    path: str | None = None
    sha256: str | None = None
    role: str | None = None
    sample_id: str | None = None


class TrainingData(_RecordSection):
    """Which images trained the model and how; the digest ties a version to its data."""

    digest: str | None = Field(default=None, description="sha256 over the training images")
    # Early bundles named the digest this way; read it through ``dataset_digest``.
    data_digest: str | None = None
    n_train_good: int | None = None
    n_memory_bank_images: int | None = None
    n_calibration_images: int | None = None
    # The trainer's settings as they were; their class evolves, so they stay a record.
    settings: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    # The dataset folder and every image used, so ``retrain`` knows what a version learnt.
    data_root: str | None = None
    images: tuple[TrainingImage, ...] | None = None
    # Set by ``retrain``: the version it started from and how it fitted.
    base_version: str | None = None
    fit_method: str | None = None

    @property
    def dataset_digest(self) -> str:
        """The training data digest under its current or its early name; ``""`` if none."""
        return self.digest or self.data_digest or ""


class Manifest(_Frozen):
    """Validated ``manifest.json``."""

    format_version: int = BUNDLE_FORMAT_VERSION
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    created_at: str
    model_file: str = MODEL_FILE
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    files: dict[str, str] = Field(default_factory=dict, description="other files: sha256")
    input: InputSpec
    outputs: tuple[str, str] = ("image_score", "anomaly_map")
    calibration: ScoreCalibration
    decision: DecisionPolicy
    detector: DetectorInfo = Field(default_factory=DetectorInfo)
    training_data: TrainingData = Field(default_factory=TrainingData)
    metrics: dict[str, float] = Field(default_factory=dict)
    golden: list[GoldenImage] = Field(default_factory=list)
    signature: str | None = Field(default=None, description="base64 Ed25519 over the rest")
    signing_key_id: str | None = None

    @field_validator("model_file")
    @classmethod
    def _model_inside_bundle(cls, value: str) -> str:
        return check_bundle_path(value, "model_file")

    @field_validator("files")
    @classmethod
    def _files_inside_bundle(cls, value: dict[str, str]) -> dict[str, str]:
        for relative in value:
            check_bundle_path(relative, "file")
        return value

    @field_validator("decision")
    @classmethod
    def _finite_policy(cls, value: DecisionPolicy) -> DecisionPolicy:
        # inf/nan pass every comparison the wrong way: an infinite threshold passes all parts.
        _finite(value.threshold, "decision threshold")
        _finite(value.uncertain_low, "decision uncertain_low")
        return value

    @field_validator("calibration")
    @classmethod
    def _finite_calibration(cls, value: ScoreCalibration) -> ScoreCalibration:
        _finite(value.raw_location, "calibration raw_location")
        _finite(value.raw_scale, "calibration raw_scale")
        return value

    @model_validator(mode="after")
    def _golden_files_are_checked(self) -> Manifest:
        # A golden image outside ``files`` would be read without its sha256 being checked.
        for golden in self.golden:
            if golden.file not in self.files:
                msg = (
                    f"golden image {golden.file!r} is not listed in files, so its sha256 is "
                    "never checked; export the bundle again"
                )
                raise ValueError(msg)
        return self


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        msg = f"{what} is {value}; it must be a finite number, export the bundle again"
        raise ValueError(msg)
    return value


def check_bundle_path(relative: str, what: str) -> str:
    """Refuse a path a manifest names unless it stays inside the bundle.

    Checked on the text, before any file is opened, so a manifest cannot make a
    node read ``/etc/…`` or ``../…`` (a later ``resolve`` check catches links).

    Raises:
        ValueError: empty, absolute, with a backslash or drive, or with a ``..`` or ``.`` part.
    """
    path = PurePosixPath(relative)
    unsafe = (
        not relative
        or path.is_absolute()
        or "\\" in relative
        or ":" in relative
        or any(part in {"..", "."} for part in relative.split("/"))
        or "" in relative.split("/")
    )
    if unsafe:
        msg = (
            f"{what} path {relative!r} points outside the bundle or is not a plain relative "
            "path (no leading /, no .., no empty parts); export the bundle again"
        )
        raise ValueError(msg)
    return relative


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_signing_bytes(manifest: Manifest) -> bytes:
    """Return the canonical bytes a signature covers: the manifest without its signature."""
    payload = manifest.model_dump(mode="json", exclude={"signature", "signing_key_id"})
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def write_manifest(manifest: Manifest, bundle_dir: Path) -> Path:
    """Write ``manifest.json`` atomically into ``bundle_dir`` and return its path."""
    path = bundle_dir / MANIFEST_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle on disk."""

    directory: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        """Path of the ONNX graph."""
        return self.directory / self.manifest.model_file

    @property
    def label(self) -> str:
        """``name:version`` for logs and messages."""
        return f"{self.manifest.name}:{self.manifest.version}"


def _read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_FILE
    if not path.is_file():
        msg = f"bundle {bundle_dir}: no {MANIFEST_FILE}; is this a Linewatch bundle directory?"
        raise BundleCorrupt(msg)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"bundle {bundle_dir}: {MANIFEST_FILE} is not valid JSON ({exc}); export it again"
        raise BundleCorrupt(msg) from exc
    if isinstance(raw, dict) and raw.get("format_version", 1) > BUNDLE_FORMAT_VERSION:
        msg = (
            f"bundle {bundle_dir}: format_version {raw['format_version']} is newer than this "
            f"node understands ({BUNDLE_FORMAT_VERSION}); upgrade linewatch on the node"
        )
        raise BundleIncompatible(msg)
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        field = f" field {where!r}" if where else ""
        msg = f"bundle {bundle_dir}: {MANIFEST_FILE}{field}: {first['msg']}"
        raise BundleCorrupt(msg) from exc


def _verify_file(bundle_dir: Path, relative: str, expected_sha256: str, label: str) -> None:
    path = bundle_dir / relative
    if not path.resolve().is_relative_to(bundle_dir.resolve()):
        msg = f"bundle {label}: file {relative!r} points outside the bundle; refusing it"
        raise BundleCorrupt(msg)
    if not path.is_file():
        msg = f"bundle {label}: {relative} is missing; push or export the bundle again"
        raise BundleCorrupt(msg)
    actual = file_sha256(path)
    if actual != expected_sha256:
        msg = (
            f"bundle {label}: {relative} sha256 {actual[:12]}…, manifest says "
            f"{expected_sha256[:12]}…; the file is corrupt or truncated, push the version again"
        )
        raise BundleCorrupt(msg)


def _extract_tar(archive: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="linewatch-bundle-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        msg = f"bundle {archive}: cannot unpack the tar ({exc}); it may be truncated"
        raise BundleCorrupt(msg) from exc
    if (target / MANIFEST_FILE).is_file():
        return target
    children = [child for child in target.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / MANIFEST_FILE).is_file():
        return children[0]
    shutil.rmtree(target, ignore_errors=True)
    msg = f"bundle {archive}: the tar holds no {MANIFEST_FILE}"
    raise BundleCorrupt(msg)


def load_bundle(path: Path | str) -> ModelBundle:
    """Read and verify a bundle directory or ``.tar``.

    Args:
        path: a bundle directory or a tar of one (extracted to a temp directory).

    Returns:
        The verified bundle.

    Raises:
        BundleCorrupt: missing files, invalid manifest or a sha256 mismatch.
        BundleIncompatible: a manifest format newer than this code.
    """
    path = Path(path)
    if path.is_file() and tarfile.is_tarfile(path):
        path = _extract_tar(path)
    elif not path.is_dir():
        msg = f"bundle {path}: no such directory or tar file"
        raise BundleCorrupt(msg)
    manifest = _read_manifest(path)
    label = f"{manifest.name}:{manifest.version}"
    _verify_file(path, manifest.model_file, manifest.model_sha256, label)
    for relative, expected in sorted(manifest.files.items()):
        _verify_file(path, relative, expected, label)
    return ModelBundle(directory=path, manifest=manifest)
