"""The MLflow registry for real: one temporary SQLite store shared by this module.

Tests run in order on the shared store (versions accumulate), each naming its
own registered model where order would otherwise matter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cloud.bundle_writer import update_manifest
from cloud.errors import RegistryError
from cloud.registry import (
    RegistrySettings,
    download_version,
    log_training_run,
    promote,
    register_bundle,
    registry_uri,
    tracking_uri,
)
from edge.runtime.bundle import MANIFEST_FILE, Manifest, ModelBundle, TrainingData, load_bundle
from edge.runtime.errors import BundleCorrupt

pytestmark = [
    pytest.mark.integration,
    # MLflow's SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> RegistrySettings:
    root = tmp_path_factory.mktemp("mlflow")
    return RegistrySettings(mlflow_root=root, tracking_uri=None, registry_uri=None)


@pytest.fixture(scope="module")
def client(settings: RegistrySettings) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri(settings), registry_uri=registry_uri(settings))


def test_default_uris_live_under_the_root(settings: RegistrySettings) -> None:
    root = settings.mlflow_root.resolve()
    assert tracking_uri(settings) == f"sqlite:///{root}/mlflow.db"
    assert registry_uri(settings) == tracking_uri(settings)
    remote = RegistrySettings(mlflow_root=root, tracking_uri="http://127.0.0.1:5000")
    assert tracking_uri(remote) == "http://127.0.0.1:5000"


def test_training_run_logs_params_metrics_digest_and_the_bundle(
    settings: RegistrySettings, client: MlflowClient, tiny_bundle: ModelBundle
) -> None:
    run_id = log_training_run(
        tiny_bundle.directory,
        params={"coreset_ratio": 0.1, "input_size": 64},
        metrics={"image_auroc": 0.97},
        data_digest="ab" * 32,
        settings=settings,
    )

    run = client.get_run(run_id)
    assert run.data.params == {"coreset_ratio": "0.1", "input_size": "64"}
    assert run.data.metrics == {"image_auroc": 0.97}
    assert run.data.tags["data_digest"] == "ab" * 32
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    assert [model.name for model in models] == ["bundle"]
    artifacts_root = settings.mlflow_root.resolve() / "artifacts" / "linewatch"
    assert run.info.artifact_uri.startswith(artifacts_root.as_uri())


def test_register_twice_gives_versions_1_and_2_with_stamped_manifests(
    settings: RegistrySettings, client: MlflowClient, tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    first = register_bundle(tiny_bundle.directory, "line3", settings=settings)
    second = register_bundle(tiny_bundle.directory, "line3", settings=settings)

    assert (first.version, second.version) == (1, 2)
    fetched = download_version("line3", version=2, dest=tmp_path / "v2", settings=settings)
    manifest = json.loads((fetched / MANIFEST_FILE).read_text())
    assert (manifest["name"], manifest["version"]) == ("line3", "2")
    tags = client.get_model_version("line3", "2").tags
    assert tags["model_sha256"] == tiny_bundle.manifest.model_sha256
    assert tags["status"] == "registered"


def test_promote_sets_the_alias_and_download_by_alias_verifies(
    settings: RegistrySettings, client: MlflowClient, tmp_path: Path
) -> None:
    promote("line3", 1, settings=settings)
    promote("line3", 2, settings=settings)

    assert client.get_registered_model("line3").aliases == {"production": 2}
    assert client.get_model_version("line3", "1").tags["status"] == "superseded"
    assert client.get_model_version("line3", "2").tags["status"] == "production"
    fetched = download_version(
        "line3", alias="production", dest=tmp_path / "prod", settings=settings
    )
    bundle = load_bundle(fetched)
    assert bundle.label == "line3:2"


def test_unknown_version_names_the_versions_there_are(settings: RegistrySettings) -> None:
    with pytest.raises(RegistryError, match=r"^model line3 has no version 9; versions: 1, 2$"):
        promote("line3", 9, settings=settings)


def test_unknown_model_and_alias_are_registry_errors(
    settings: RegistrySettings, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError, match="model nosuch is not registered; registered models: "):
        download_version("nosuch", dest=tmp_path / "x", settings=settings)
    with pytest.raises(RegistryError, match="model line3 has no alias 'staging'; versions: 1, 2"):
        download_version("line3", alias="staging", dest=tmp_path / "y", settings=settings)


def test_register_reuses_the_training_run_named_in_the_manifest(
    settings: RegistrySettings,
    client: MlflowClient,
    tiny_bundle_factory: Callable[..., ModelBundle],
    tmp_path: Path,
) -> None:
    bundle = tiny_bundle_factory(name="reuse")
    run_id = log_training_run(
        bundle.directory, params={}, metrics={}, data_digest="cd" * 32, settings=settings
    )
    update_manifest(bundle, training_data=TrainingData(mlflow_run_id=run_id, digest="cd" * 32))

    registered = register_bundle(bundle.directory, "line4", settings=settings)

    assert registered.run_id == run_id
    assert client.get_model_version("line4", "1").tags["data_digest"] == "cd" * 32


def test_registered_version_predicts_scores_through_pyfunc(settings: RegistrySettings) -> None:
    model = mlflow.pyfunc.load_model("models:/line3/1")
    images = np.stack([np.full((40, 40, 3), 128, np.uint8), np.full((40, 40, 3), 255, np.uint8)])

    scores = model.predict(images)

    assert scores == pytest.approx([0.0, 127 / 32], abs=1e-4)


def test_corrupt_bundle_is_refused_before_mlflow_is_touched(
    settings: RegistrySettings,
    client: MlflowClient,
    tiny_bundle_factory: Callable[..., ModelBundle],
) -> None:
    bundle = tiny_bundle_factory(name="broken")
    data = bytearray(bundle.model_path.read_bytes())
    data[-5] ^= 0xFF
    bundle.model_path.write_bytes(bytes(data))

    with pytest.raises(BundleCorrupt, match="sha256"):
        register_bundle(bundle.directory, "broken", settings=settings)
    assert client.search_registered_models(filter_string="name = 'broken'") == []


def test_bad_name_is_refused(settings: RegistrySettings, tiny_bundle: ModelBundle) -> None:
    with pytest.raises(RegistryError, match="model name 'line 3'"):
        register_bundle(tiny_bundle.directory, "line 3", settings=settings)


def test_nothing_is_written_to_the_current_directory(
    settings: RegistrySettings,
    tiny_bundle_factory: Callable[..., ModelBundle],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = tiny_bundle_factory(name="cwd")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    registered = register_bundle(bundle.directory, "line5", settings=settings)
    promote("line5", registered.version, settings=settings)

    assert list(cwd.iterdir()) == []


def test_manifest_type_is_unchanged_by_stamping(settings: RegistrySettings, tmp_path: Path) -> None:
    fetched = download_version("line3", version=1, dest=tmp_path / "v1", settings=settings)
    manifest = Manifest.model_validate_json((fetched / MANIFEST_FILE).read_text())
    assert manifest.version == "1"
