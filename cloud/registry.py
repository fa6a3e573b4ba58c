"""MLflow tracking and model registry for bundles: log, register, promote, download.

Each registered version carries the bundle itself as the artifacts of a pyfunc
model (``BundlePythonModel``), so what MLflow stores is exactly what a node
receives. The version number is stamped into the bundle's manifest before it
is logged; the deployer follows the alias ``production``; status lives in
version tags (stages are deprecated).

Default store: a SQLite file and an artifact folder under ``var/mlflow``;
``MLFLOW_TRACKING_URI`` points elsewhere. Every call sets the tracking and
registry URI explicitly, so MLflow never falls back to files in the current
directory.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt
from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.errors import RegistryError
from cloud.signing import DEFAULT_SIGNING_KEY, load_private_key, sign_manifest
from edge.bundle import MANIFEST_FILE, ModelBundle, load_bundle, write_manifest
from edge.engine import InferenceEngine
from edge.errors import ConfigError

with warnings.catch_warnings():
    # Importing mlflow.pyfunc warns about MLflow's own ``Any`` type hints (mlflow.types.responses);
    # nothing a caller can act on, and it would fail every test run with warnings as errors.
    warnings.filterwarnings(
        "ignore", message=r".*Any type hint is inferred as AnyType", category=UserWarning
    )
    import mlflow
    import mlflow.pyfunc
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model, ModelSignature
    from mlflow.pyfunc.model import PythonModel
    from mlflow.tracking import MlflowClient
    from mlflow.types import Schema, TensorSpec

__all__ = [
    "MODEL_ARTIFACT_NAME",
    "BundlePythonModel",
    "RegisteredVersion",
    "RegistrySettings",
    "artifact_location",
    "download_version",
    "latest_version_number",
    "load_registry_settings",
    "log_training_run",
    "promote",
    "register_bundle",
    "registry_uri",
    "signing_key_path",
    "tracking_uri",
]

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "bundle"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_REMOTE_SCHEMES = frozenset({"http", "https", "databricks"})
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
_ALREADY_EXISTS = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})
_PYFUNC_REQUIREMENTS = ("numpy", "onnxruntime", "opencv-python-headless", "pydantic", "mlflow")
_CODE_FILE = "bundle_pyfunc.py"
_CODE = (
    '"""Models-from-code entry point: MLflow runs this file to build the model."""\n'
    "import mlflow\n\n"
    "from cloud.registry import BundlePythonModel\n\n"
    "mlflow.models.set_model(BundlePythonModel())\n"
)


class RegistrySettings(BaseSettings):
    """Where MLflow lives; read once at start-up and passed in."""

    model_config = SettingsConfigDict(
        env_prefix="LINEWATCH_", populate_by_name=True, extra="ignore", frozen=True
    )

    mlflow_root: Path = Field(
        default=Path("var/mlflow"),
        description="folder of the default SQLite store and of local artifacts",
    )
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LINEWATCH_MLFLOW_TRACKING_URI"),
        description="an MLflow tracking URI; None: sqlite:///<mlflow_root>/mlflow.db",
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "LINEWATCH_MLFLOW_REGISTRY_URI"),
        description="the model registry URI; None: the tracking URI",
    )
    mlflow_experiment: str = Field(
        default="linewatch",
        min_length=1,
        description="experiment of training and registration runs",
    )
    signing_key: Path | None = Field(
        default=None,
        description="Ed25519 key that signs registered bundles; None: keys/signing.key if present",
    )


def load_registry_settings(**overrides: Any) -> RegistrySettings:
    """Build settings from the environment, flags overriding, failing in one readable line.

    Raises:
        ConfigError: a value pydantic refuses.
    """
    try:
        return RegistrySettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = f"MLflow settings: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        raise ConfigError(msg) from exc


def tracking_uri(settings: RegistrySettings) -> str:
    """The tracking URI: the configured one, else the SQLite file under ``mlflow_root``."""
    if settings.tracking_uri:
        return settings.tracking_uri
    return f"sqlite:///{(settings.mlflow_root.resolve() / 'mlflow.db').as_posix()}"


def registry_uri(settings: RegistrySettings) -> str:
    """The registry URI: the configured one, else the tracking URI."""
    return settings.registry_uri or tracking_uri(settings)


def artifact_location(settings: RegistrySettings, experiment: str) -> str | None:
    """Where a new experiment keeps artifacts: under ``mlflow_root`` unless a server decides.

    With no ``mlflow_root`` given, a SQLite tracking file keeps its artifacts
    beside it, so a ``--tracking-uri`` alone never writes into the current directory.
    """
    uri = tracking_uri(settings)
    if urlparse(uri).scheme in _REMOTE_SCHEMES:
        return None
    root = settings.mlflow_root.resolve()
    if "mlflow_root" not in settings.model_fields_set and uri.startswith("sqlite:///"):
        root = Path(uri.removeprefix("sqlite:///")).resolve().parent
    return (root / "artifacts" / experiment).as_uri()


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version in the registry."""

    name: str
    version: int
    run_id: str | None
    source: str


class BundlePythonModel(PythonModel):
    """The bundle as an MLflow pyfunc: images in, calibrated image scores out.

    The artifacts are the bundle's files keyed by their path inside the bundle;
    ``load_context`` puts them back together, verifies the sha256 sums with
    ``load_bundle`` and runs the graph with ONNX Runtime, exactly as a node does.
    """

    def load_context(self, context: Any) -> None:
        """Reassemble and verify the bundle, then open an ONNX Runtime session on it."""
        workdir = Path(tempfile.mkdtemp(prefix="linewatch-pyfunc-"))
        # The copy lives as long as this model object; removed quietly when it goes.
        weakref.finalize(self, shutil.rmtree, workdir, ignore_errors=True)
        bundle_dir = _assemble_bundle(context.artifacts, workdir / "bundle")
        self._engine = InferenceEngine(load_bundle(bundle_dir))

    def predict(
        self,
        context: Any,
        model_input: np.ndarray,  # MLflow reads this hint: it must be the bare class
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Score uint8 BGR images, (N, H, W, 3) or one (H, W, 3), of any size."""
        images = np.asarray(model_input)
        if images.ndim == 3:
            images = images[np.newaxis]
        batch = [np.ascontiguousarray(image, dtype=np.uint8) for image in images]
        return self._engine.infer_images(batch).image_scores


def _assemble_bundle(artifacts: Mapping[str, str], target: Path) -> Path:
    """Copy artifact files (keyed by their path in the bundle) into a bundle directory."""
    target.mkdir(parents=True, exist_ok=True)
    for relative, local_path in artifacts.items():
        destination = target / relative
        if not destination.resolve().is_relative_to(target.resolve()):
            msg = f"model artifacts: {relative!r} points outside the bundle; refusing it"
            raise RegistryError(msg)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local_path, destination)
    return target


def _bundle_files(bundle: ModelBundle) -> dict[str, str]:
    names = [MANIFEST_FILE, bundle.manifest.model_file, *sorted(bundle.manifest.files)]
    return {name: str(bundle.directory / name) for name in names}


_SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
)


def _requirements() -> list[str]:
    pins = []
    for package in _PYFUNC_REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{package}=={metadata.version(package)}")
    return pins


def _log_bundle_model(bundle: ModelBundle) -> Any:
    """Log the bundle as a pyfunc model in the active run; return MLflow's ModelInfo."""
    example: npt.NDArray[np.uint8] = np.full((1, 32, 32, 3), 128, dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="linewatch-log-") as workdir:
        code = Path(workdir) / _CODE_FILE
        code.write_text(_CODE)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            python_model=str(code),
            artifacts=_bundle_files(bundle),
            input_example=example,
            signature=_SIGNATURE,
            pip_requirements=_requirements(),
            metadata={"bundle": bundle.label, "model_sha256": bundle.manifest.model_sha256},
        )


@contextlib.contextmanager
def _mlflow(settings: RegistrySettings, action: str) -> Iterator[MlflowClient]:
    """Point MLflow at the configured stores and turn its errors into RegistryError."""
    if not settings.tracking_uri:
        settings.mlflow_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(settings))
    mlflow.set_registry_uri(registry_uri(settings))
    try:
        yield MlflowClient(tracking_uri=tracking_uri(settings), registry_uri=registry_uri(settings))
    except MlflowException as exc:
        msg = (
            f"MLflow at {tracking_uri(settings)}: {action} failed ({exc.error_code}: {exc.message})"
        )
        raise RegistryError(msg) from exc
    except OSError as exc:
        msg = f"MLflow at {tracking_uri(settings)}: {action} failed ({exc})"
        raise RegistryError(msg) from exc


def _experiment_id(client: MlflowClient, settings: RegistrySettings, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(name, artifact_location=artifact_location(settings, name))
        )
    except MlflowException as exc:
        if exc.error_code not in _ALREADY_EXISTS:
            raise
        created = client.get_experiment_by_name(name)  # another process created it meanwhile
        if created is None:
            raise
        return str(created.experiment_id)


def _data_digest(bundle: ModelBundle) -> str:
    data = bundle.manifest.training_data
    return str(data.get("digest") or data.get("data_digest") or "")


def log_training_run(
    bundle_dir: Path,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    data_digest: str,
    settings: RegistrySettings,
    experiment: str | None = None,
) -> str:
    """Record one training run: parameters, metrics, the data digest and the bundle.

    Args:
        bundle_dir: the bundle ``train`` wrote; verified before logging.
        params: training settings, logged as MLflow parameters.
        metrics: numbers such as calibration statistics or image AUROC.
        data_digest: sha256 naming the training images (tag ``data_digest``).
        settings: where MLflow lives.
        experiment: the experiment name; ``settings.mlflow_experiment`` if None.

    Returns:
        The MLflow run id.

    Raises:
        BundleCorrupt: a bundle that fails verification.
        RegistryError: MLflow refused.
    """
    bundle = load_bundle(bundle_dir)
    experiment = experiment or settings.mlflow_experiment
    with _mlflow(settings, f"logging training run of {bundle.label}") as client:
        experiment_id = _experiment_id(client, settings, experiment)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"train {bundle.manifest.name}"
        ) as run:
            mlflow.log_params({key: str(value)[:6000] for key, value in params.items()})
            mlflow.log_metrics({key: float(value) for key, value in metrics.items()})
            mlflow.set_tags({"data_digest": data_digest, "bundle": bundle.label, "kind": "train"})
            _log_bundle_model(bundle)
        run_id = str(run.info.run_id)
    logger.info("training run logged run_id=%s model=%s", run_id, bundle.label)
    return run_id


def _version_numbers(client: MlflowClient, name: str) -> list[int]:
    versions = client.search_model_versions(f"name = '{name}'")
    return sorted(int(item.version) for item in versions)


def _check_name(name: str) -> None:
    if not _NAME_PATTERN.match(name):
        msg = (
            f"model name {name!r}: use letters, digits, '_', '.' or '-' "
            "(at most 100, starting with a letter or digit), e.g. line3"
        )
        raise RegistryError(msg)


def signing_key_path(settings: RegistrySettings) -> Path | None:
    """The key that signs registrations: the configured one, else ``keys/signing.key`` if present.

    Raises:
        ConfigError: a configured key file that does not exist.
    """
    if settings.signing_key is not None:
        if not settings.signing_key.is_file():
            msg = (
                f"signing key {settings.signing_key}: no such file; create a pair with "
                "`linewatch keys init --out keys/`"
            )
            raise ConfigError(msg)
        return settings.signing_key
    return DEFAULT_SIGNING_KEY if DEFAULT_SIGNING_KEY.is_file() else None


def _stage_bundle(
    bundle: ModelBundle, name: str, version: int, workdir: Path, signing_key: Path | None
) -> ModelBundle:
    """Copy the bundle, stamp the registry's name and version, and sign the result.

    Stamping changes the manifest, so a signature made earlier no longer holds:
    the bundle is signed here, after stamping, or left unsigned with a warning.
    """
    staged = workdir / "bundle"
    shutil.copytree(bundle.directory, staged)
    manifest = bundle.manifest.model_copy(
        update={"name": name, "version": str(version), "signature": None, "signing_key_id": None}
    )
    if signing_key is not None:
        manifest = sign_manifest(manifest, load_private_key(signing_key))
        logger.info("bundle signed model=%s:%d key_id=%s", name, version, manifest.signing_key_id)
    else:
        logger.info(  # the CLI says UNSIGNED on stdout; a warning here would repeat it
            "registering an unsigned bundle model=%s:%d; nodes with --trusted-key refuse it "
            "(create keys with `linewatch keys init`)",
            name,
            version,
        )
    write_manifest(manifest, staged)
    return load_bundle(staged)


def _existing_run(client: MlflowClient, run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND:
            raise
        logger.info("training run not in this tracking server run_id=%s", run_id)
        return None
    return run_id


def _version_tags(bundle: ModelBundle) -> dict[str, str]:
    tags = {
        "status": "registered",
        "model_sha256": bundle.manifest.model_sha256,
        "data_digest": _data_digest(bundle),
    }
    if "image_auroc" in bundle.manifest.metrics:
        tags["image_auroc"] = f"{bundle.manifest.metrics['image_auroc']:.6f}"
    return tags


def register_bundle(
    bundle_dir: Path, name: str, *, settings: RegistrySettings, run_id: str | None = None
) -> RegisteredVersion:
    """Create a new model version that carries the bundle, stamped with that version.

    Args:
        bundle_dir: a bundle directory or tar; verified first.
        name: the registered model's name (e.g. the line: ``line3``).
        settings: where MLflow lives.
        run_id: the run to log into; else the manifest's ``training_data.mlflow_run_id``
            when that run exists here, else a new run.

    The stamped manifest is signed with ``settings.signing_key`` (default
    ``keys/signing.key`` when it exists), so nodes with ``--trusted-key`` accept it.

    Returns:
        The new version.

    Raises:
        BundleCorrupt: a bundle that fails verification.
        ConfigError: a configured signing key that is missing or not Ed25519.
        RegistryError: MLflow refused, or another registration took the version number.
    """
    _check_name(name)
    bundle = load_bundle(bundle_dir)
    key_path = signing_key_path(settings)
    with (
        _mlflow(settings, f"registering {name}") as client,
        tempfile.TemporaryDirectory(prefix="linewatch-register-") as workdir,
    ):
        try:
            client.create_registered_model(name, description=f"Linewatch model {name}")
        except MlflowException as exc:
            if exc.error_code not in _ALREADY_EXISTS:
                raise
        existing = _version_numbers(client, name)
        version = (existing[-1] if existing else 0) + 1
        staged = _stage_bundle(bundle, name, version, Path(workdir), key_path)
        reuse = _existing_run(client, run_id or bundle.manifest.training_data.get("mlflow_run_id"))
        if reuse is not None:
            run_context = mlflow.start_run(run_id=reuse)
        else:
            experiment_id = _experiment_id(client, settings, settings.mlflow_experiment)
            run_context = mlflow.start_run(experiment_id=experiment_id, run_name=f"register {name}")
        with run_context as run:
            mlflow.set_tag("data_digest", _data_digest(staged))
            info = _log_bundle_model(staged)
        created: ModelVersion = client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run.info.run_id,
            model_id=info.model_id,
            tags=_version_tags(staged),
        )
        if int(created.version) != version:
            client.delete_model_version(name, created.version)
            msg = (
                f"model {name}: the bundle was stamped version {version} but MLflow assigned "
                f"{created.version}; another registration raced this one. Run register again"
            )
            raise RegistryError(msg)
    logger.info("registered model=%s version=%d run_id=%s", name, version, run.info.run_id)
    return RegisteredVersion(name, version, str(run.info.run_id), str(created.source))


def _get_version(client: MlflowClient, name: str, version: int) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND:
            raise
        raise RegistryError(
            _missing_version_message(client, name, f"no version {version}")
        ) from exc


def _missing_version_message(client: MlflowClient, name: str, what: str) -> str:
    try:
        client.get_registered_model(name)
    except MlflowException:
        known = sorted(model.name for model in client.search_registered_models())
        listed = ", ".join(known) if known else "none yet"
        return f"model {name} is not registered; registered models: {listed}"
    numbers = _version_numbers(client, name)
    listed = ", ".join(map(str, numbers)) if numbers else "none yet"
    return f"model {name} has {what}; versions: {listed}"


def latest_version_number(name: str, *, settings: RegistrySettings) -> int:
    """The highest version number registered under ``name``.

    Raises:
        RegistryError: no such model, or MLflow refused.
    """
    with _mlflow(settings, f"listing versions of {name}") as client:
        numbers = _version_numbers(client, name)
    if not numbers:
        msg = f"model {name} has no versions; register one: linewatch register --name {name}"
        raise RegistryError(msg)
    return numbers[-1]


def promote(
    name: str, version: int, *, settings: RegistrySettings, alias: str = "production"
) -> RegisteredVersion:
    """Point ``alias`` at a version; the deployer rolls out what ``production`` names.

    The version's ``status`` tag becomes the alias; the version that held the
    alias before gets ``status=superseded``.

    Raises:
        RegistryError: an unknown model or version, or MLflow refused.
    """
    with _mlflow(settings, f"promoting {name} version {version}") as client:
        target = _get_version(client, name, version)
        previous = client.get_registered_model(name).aliases.get(alias)
        client.set_registered_model_alias(name, alias, str(version))
        client.set_model_version_tag(name, str(version), "status", alias)
        if previous is not None and int(previous) != version:
            client.set_model_version_tag(name, str(previous), "status", "superseded")
    logger.info("promoted model=%s version=%d alias=%s previous=%s", name, version, alias, previous)
    return RegisteredVersion(name, version, target.run_id, str(target.source))


def _resolve(
    client: MlflowClient, name: str, version: int | None, alias: str | None
) -> ModelVersion:
    if alias is not None:
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND and "alias" not in exc.message.lower():
                raise
            msg = _missing_version_message(client, name, f"no alias {alias!r}")
            raise RegistryError(
                msg + f"; promote one: linewatch promote --name {name} --version N"
            ) from exc
    if version is not None:
        return _get_version(client, name, version)
    numbers = _version_numbers(client, name)
    if not numbers:
        raise RegistryError(_missing_version_message(client, name, "no versions"))
    return _get_version(client, name, numbers[-1])


def download_version(
    name: str,
    *,
    dest: Path,
    settings: RegistrySettings,
    version: int | None = None,
    alias: str | None = None,
) -> Path:
    """Fetch a registered version's bundle into ``dest`` and verify it.

    Args:
        name: the registered model.
        dest: the bundle directory to create (must not exist or be empty).
        settings: where MLflow lives.
        version: a version number; else ``alias``; else the latest version.
        alias: an alias such as ``production``.

    Returns:
        ``dest``, holding a bundle that ``load_bundle`` verified.

    Raises:
        RegistryError: an unknown model, version or alias, or a bundle whose manifest
            does not carry the version the registry gave it.
        BundleCorrupt: downloaded files that fail their sha256.
    """
    if dest.exists() and any(dest.iterdir()):
        msg = f"download of {name}: {dest} is not empty; choose a new folder"
        raise RegistryError(msg)
    with (
        _mlflow(settings, f"downloading {name}") as client,
        tempfile.TemporaryDirectory(prefix="linewatch-download-") as workdir,
    ):
        found = _resolve(client, name, version, alias)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{found.version}",
            dst_path=workdir,
            tracking_uri=tracking_uri(settings),
            registry_uri=registry_uri(settings),
        )
        flavor = Model.load(local).flavors.get("python_function", {})
        files = {
            key: str(Path(local) / entry["path"])
            for key, entry in flavor.get("artifacts", {}).items()
        }
        if not files:
            msg = f"model {name} version {found.version} carries no bundle files; register it again"
            raise RegistryError(msg)
        _assemble_bundle(files, dest)
    bundle = load_bundle(dest)
    if bundle.manifest.version != str(found.version) or bundle.manifest.name != name:
        msg = (
            f"model {name} version {found.version}: its bundle says {bundle.label}; "
            "the registry and the bundle disagree, register the bundle again"
        )
        raise RegistryError(msg)
    logger.info("downloaded model=%s version=%s dest=%s", name, found.version, dest)
    return dest
