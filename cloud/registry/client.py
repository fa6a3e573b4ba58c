"""Open MLflow on the configured stores and turn its errors into ``RegistryError``.

Every call sets the tracking and registry URI explicitly, so MLflow never
falls back to files in the current directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cloud.errors import RegistryError
from cloud.registry.settings import (
    RegistrySettings,
    artifact_location,
    registry_uri,
    tracking_uri,
)

__all__ = ["ALREADY_EXISTS", "NOT_FOUND", "experiment_id", "mlflow_client"]

NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
ALREADY_EXISTS = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})


@contextlib.contextmanager
def mlflow_client(settings: RegistrySettings, action: str) -> Iterator[MlflowClient]:
    """Point MLflow at the configured stores and turn its errors into RegistryError.

    Args:
        settings: where MLflow lives.
        action: what the caller does, for the error message (``registering line3``).

    Yields:
        A client on the configured tracking and registry stores.

    Raises:
        RegistryError: MLflow refused, or its store could not be read or written.
    """
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


def experiment_id(client: MlflowClient, settings: RegistrySettings, name: str) -> str:
    """The id of experiment ``name``, created with its artifacts under ``mlflow_root`` if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(name, artifact_location=artifact_location(settings, name))
        )
    except MlflowException as exc:
        if exc.error_code not in ALREADY_EXISTS:
            raise
        created = client.get_experiment_by_name(name)  # another process created it meanwhile
        if created is None:
            raise
        return str(created.experiment_id)
