"""Registered versions of a bundle: register, promote, find the latest, download.

The version number is stamped into the bundle's manifest before it is logged;
the deployer follows the alias ``production``; status lives in version tags
(stages are deprecated).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from cloud.bundle_writer import update_manifest
from cloud.errors import RegistryError
from cloud.registry.client import ALREADY_EXISTS, NOT_FOUND, experiment_id, mlflow_client
from cloud.registry.pyfunc import assemble_bundle, log_bundle_model
from cloud.registry.settings import RegistrySettings, registry_uri, signing_key_path, tracking_uri
from cloud.signing import load_private_key
from edge.runtime.bundle import ModelBundle, load_bundle

__all__ = [
    "RegisteredVersion",
    "download_version",
    "latest_version_number",
    "promote",
    "register_bundle",
]

logger = logging.getLogger(__name__)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version in the registry."""

    name: str
    version: int
    run_id: str | None
    source: str


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


def _stage_bundle(
    bundle: ModelBundle, name: str, version: int, workdir: Path, signing_key: Path | None
) -> ModelBundle:
    """Copy the bundle, stamp the registry's name and version, and sign the result.

    Stamping changes the manifest, so a signature made earlier no longer holds:
    the bundle is signed here, after stamping, or left unsigned with a warning.
    """
    key = load_private_key(signing_key) if signing_key is not None else None
    staged = workdir / "bundle"
    shutil.copytree(bundle.directory, staged)
    stamped = update_manifest(
        ModelBundle(directory=staged, manifest=bundle.manifest),
        name=name,
        version=str(version),
        signing_key=key,
    )
    if key is not None:
        logger.info(
            "bundle signed model=%s:%d key_id=%s", name, version, stamped.manifest.signing_key_id
        )
    else:
        logger.info(  # the CLI says UNSIGNED on stdout; a warning here would repeat it
            "registering an unsigned bundle model=%s:%d; nodes with --trusted-key refuse it "
            "(create keys with `linewatch keys init`)",
            name,
            version,
        )
    return stamped


def _existing_run(client: MlflowClient, run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise
        logger.info("training run not in this tracking server run_id=%s", run_id)
        return None
    return run_id


def _version_tags(bundle: ModelBundle) -> dict[str, str]:
    tags = {
        "status": "registered",
        "model_sha256": bundle.manifest.model_sha256,
        "data_digest": bundle.manifest.training_data.dataset_digest,
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
        mlflow_client(settings, f"registering {name}") as client,
        tempfile.TemporaryDirectory(prefix="linewatch-register-") as workdir,
    ):
        try:
            client.create_registered_model(name, description=f"Linewatch model {name}")
        except MlflowException as exc:
            if exc.error_code not in ALREADY_EXISTS:
                raise
        existing = _version_numbers(client, name)
        version = (existing[-1] if existing else 0) + 1
        staged = _stage_bundle(bundle, name, version, Path(workdir), key_path)
        reuse = _existing_run(client, run_id or bundle.manifest.training_data.mlflow_run_id)
        if reuse is not None:
            run_context = mlflow.start_run(run_id=reuse)
        else:
            found_id = experiment_id(client, settings, settings.mlflow_experiment)
            run_context = mlflow.start_run(experiment_id=found_id, run_name=f"register {name}")
        with run_context as run:
            mlflow.set_tag("data_digest", staged.manifest.training_data.dataset_digest)
            info = log_bundle_model(staged)
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
        if exc.error_code not in NOT_FOUND:
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
    with mlflow_client(settings, f"listing versions of {name}") as client:
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
    with mlflow_client(settings, f"promoting {name} version {version}") as client:
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
            if exc.error_code not in NOT_FOUND and "alias" not in exc.message.lower():
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


def resolve_version(
    name: str, *, settings: RegistrySettings, version: int | None = None, alias: str | None = None
) -> int:
    """The version number that ``version`` / ``alias`` / latest names right now.

    Raises:
        RegistryError: an unknown model, version or alias, or MLflow unreachable.
    """
    with mlflow_client(settings, f"resolving {name}") as client:
        return int(_resolve(client, name, version, alias).version)


def _inside_artifacts(root: Path, relative: str, name: str, version: str | int) -> Path:
    """Resolve an artifact path of an MLmodel file, refusing one that leaves the download.

    The MLmodel file comes from the artifact store, which others can write: an
    absolute path or ``..`` would copy a file of this machine into the bundle.

    Raises:
        RegistryError: the path resolves outside ``root``.
    """
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        msg = (
            f"model {name} version {version}: artifact path {relative!r} points outside its "
            "artifact root; refusing it, register the bundle again"
        )
        raise RegistryError(msg)
    return path


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
        mlflow_client(settings, f"downloading {name}") as client,
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
            key: str(_inside_artifacts(Path(local), str(entry["path"]), name, found.version))
            for key, entry in flavor.get("artifacts", {}).items()
        }
        if not files:
            msg = f"model {name} version {found.version} carries no bundle files; register it again"
            raise RegistryError(msg)
        assemble_bundle(files, dest)
    bundle = load_bundle(dest)
    if bundle.manifest.version != str(found.version) or bundle.manifest.name != name:
        msg = (
            f"model {name} version {found.version}: its bundle says {bundle.label}; "
            "the registry and the bundle disagree, register the bundle again"
        )
        raise RegistryError(msg)
    logger.info("downloaded model=%s version=%s dest=%s", name, found.version, dest)
    return dest
