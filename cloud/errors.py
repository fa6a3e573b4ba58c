"""Errors of the cloud side; all derive from the shared ``LinewatchError``.

The tree (the shared runtime's errors in ``edge.runtime.errors`` share the root; the ones
shared here are re-exported so that cloud code names one errors module)::

    LinewatchError
    ├── BundleError         a bundle that cannot be used or written (shared with the edge)
    │   └── BundleCorrupt   unreadable or failing its sha256 (shared)
    │       └── BundleSignatureError  unsigned, another key, or altered (shared)
    ├── ConfigError         settings that cannot work (shared with the edge)
    ├── ImageDecodeError    bytes that are not an image we can read (shared with the edge)
    ├── DatasetError        a folder that is not in the MVTec AD layout, or empty
    ├── TrainingError       training could not produce a model
    ├── RegistryError       MLflow refused or failed (tracking URI, name, version, alias)
    │   └── VersionNotFound no such registered model or version
    ├── DeployError         a rollout that could not start or reach a node
    │   ├── NodeUnreachable a node that does not answer (down, wrong address)
    │   └── NodeRefused     a node that answered with an error (verification, parity, disk)
    ├── StoreError          the database or sample store refused a write
    └── RetrainError        nothing to retrain from (no reviews, no recorded training set)
        └── RetrainBusy     another retrain of the same model holds its lock
"""

from __future__ import annotations

from edge.runtime.errors import (
    BundleCorrupt,
    BundleError,
    BundleSignatureError,
    ConfigError,
    ImageDecodeError,
    LinewatchError,
)

__all__ = [
    "BundleCorrupt",
    "BundleError",
    "BundleSignatureError",
    "ConfigError",
    "DatasetError",
    "DeployError",
    "ImageDecodeError",
    "LinewatchError",
    "NodeRefused",
    "NodeUnreachable",
    "RegistryError",
    "RetrainBusy",
    "RetrainError",
    "StoreError",
    "TrainingError",
    "VersionNotFound",
]


class DatasetError(LinewatchError):
    """A data folder that is missing, empty or not in the MVTec AD layout."""


class TrainingError(LinewatchError):
    """Training could not produce a model."""


class RegistryError(LinewatchError):
    """MLflow refused or failed."""


class VersionNotFound(RegistryError):
    """No registered model of that name, or no such version of it."""


class DeployError(LinewatchError):
    """A rollout that could not start or reach a node."""


class StoreError(LinewatchError):
    """The database or the sample store refused a write."""


class NodeRefused(DeployError):
    """The node answered and refused: a bad signature, a parity failure, a full disk…"""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class NodeUnreachable(DeployError):
    """The node did not answer (down, wrong address, or the link kept breaking)."""


class RetrainError(LinewatchError):
    """A retrain that cannot start: no reviews, no recorded training set, no production."""


class RetrainBusy(RetrainError):
    """Another retrain of the same model is running (it holds the model's lock)."""
