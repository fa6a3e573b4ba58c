"""MLflow tracking and model registry for bundles: log, register, promote, download."""

from cloud.registry.pyfunc import MODEL_ARTIFACT_NAME, BundlePythonModel
from cloud.registry.reports import TRAINING_SET_FILE, log_run_json
from cloud.registry.runs import log_training_run
from cloud.registry.settings import (
    RegistrySettings,
    artifact_location,
    load_registry_settings,
    registry_uri,
    signing_key_path,
    tracking_uri,
)
from cloud.registry.versions import (
    RegisteredVersion,
    download_version,
    latest_version_number,
    promote,
    register_bundle,
    resolve_version,
)

__all__ = [
    "MODEL_ARTIFACT_NAME",
    "TRAINING_SET_FILE",
    "BundlePythonModel",
    "RegisteredVersion",
    "RegistrySettings",
    "artifact_location",
    "download_version",
    "latest_version_number",
    "load_registry_settings",
    "log_run_json",
    "log_training_run",
    "promote",
    "register_bundle",
    "registry_uri",
    "resolve_version",
    "signing_key_path",
    "tracking_uri",
]
