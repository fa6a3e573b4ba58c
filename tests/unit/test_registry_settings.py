"""Where the registry is: the store the user named, whatever MLflow left in the environment."""

from __future__ import annotations

import pytest

from cloud.registry.settings import RegistrySettings, load_registry_settings, registry_uri


def test_the_registry_follows_the_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow exports MLFLOW_REGISTRY_URI once used; settings must not follow it."""
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////elsewhere/mlflow.db")
    chosen = RegistrySettings(tracking_uri="sqlite:////chosen/mlflow.db")
    assert registry_uri(chosen) == "sqlite:////chosen/mlflow.db"
    assert registry_uri(load_registry_settings(tracking_uri="sqlite:////c.db")) == "sqlite:////c.db"


def test_a_separate_registry_is_named_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEWATCH_MLFLOW_REGISTRY_URI", "sqlite:////registry.db")
    assert (
        registry_uri(RegistrySettings(tracking_uri="sqlite:////a.db")) == "sqlite:////registry.db"
    )
    both = load_registry_settings(tracking_uri="sqlite:////a.db", registry_uri="sqlite:////b.db")
    assert registry_uri(both) == "sqlite:////b.db"
