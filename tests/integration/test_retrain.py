"""Retraining for real: a registered production model, reviewed samples, MLflow, the gate.

One module-scoped line (dataset, version 1 in a temporary MLflow, a migrated
SQLite database and a sample store) is retrained in order; models are tiny
(128 px, small banks), so each fit takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from cloud.bundle_writer import update_manifest
from cloud.errors import RetrainBusy, RetrainError
from cloud.registry import (
    RegistrySettings,
    download_version,
    promote,
    register_bundle,
    registry_uri,
    tracking_uri,
)
from cloud.registry.reports import GATE_REPORT_FILE, read_run_json
from cloud.retrain import FitMethod, RetrainRequest, run_retrain
from cloud.review import Label
from edge.runtime.bundle import TrainingData, load_bundle
from tests.retrain_data import ReviewedLine, make_line_images, train_and_promote
from tests.web_data import WebData

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]

N_NORMALS = 12


@pytest.fixture(scope="module")
def registry_settings(tmp_path_factory: pytest.TempPathFactory) -> RegistrySettings:
    root = tmp_path_factory.mktemp("mlflow")
    return RegistrySettings(mlflow_root=root, tracking_uri=None, registry_uri=None)


@pytest.fixture(scope="module")
def line(
    tmp_path_factory: pytest.TempPathFactory,
    synthetic_dataset: Path,
    registry_settings: RegistrySettings,
) -> Iterator[tuple[ReviewedLine, dict[str, list[str]]]]:
    root = tmp_path_factory.mktemp("line")
    train_and_promote(synthetic_dataset, root / "v1", "metal", registry_settings)
    goods, defects = make_line_images(root / "seen", n_good=N_NORMALS + 2, n_defect_per_type=1)
    data = WebData.create(root / "db")
    reviewed = ReviewedLine(data)
    ids: dict[str, list[str]] = {"normal": [], "defect": [], "other": [], "gone": []}
    for image in goods[:N_NORMALS]:
        ids["normal"].append(reviewed.add(image, Label.NORMAL))
    for image in defects[:3]:
        ids["defect"].append(reviewed.add(image, Label.DEFECT, verdict="abnormal"))
    ids["other"].append(reviewed.add(goods[N_NORMALS], Label.NORMAL, model="gravel"))
    ids["other"].append(reviewed.add(goods[N_NORMALS], Label.NORMAL, line="line9"))
    ids["other"].append(reviewed.add(goods[N_NORMALS + 1], None))  # pending: not reviewed
    gone = reviewed.add(defects[3], Label.NORMAL)
    ids["gone"].append(gone)
    with data.sessions() as session:
        from cloud.db.models import Sample

        sample = session.get(Sample, gone)
        assert sample is not None
        (data.store_dir / sample.image_path).unlink()
    yield reviewed, ids
    data.close()


def _request(line: ReviewedLine, root: Path, **kwargs: object) -> RetrainRequest:
    options: dict[str, object] = {"name": "metal", "lines": ("line3",)} | kwargs
    return RetrainRequest(
        db_url=line.data.db_url,
        store_dir=line.data.store_dir,
        state_dir=root / "state",
        **options,  # type: ignore[arg-type]
    )


def test_version_1_records_its_training_set(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    synthetic_dataset: Path,
    tmp_path: Path,
) -> None:
    bundle = load_bundle(
        download_version("metal", dest=tmp_path / "v1", settings=registry_settings, version=1)
    )
    recorded = bundle.manifest.training_data
    assert recorded.data_root == str(synthetic_dataset.resolve())
    assert recorded.images is not None
    assert len(recorded.images) == 24
    assert {image.role for image in recorded.images} == {"fit", "calibration"}


def test_retrain_learns_reviewed_normals_and_promotes(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    tmp_path: Path,
) -> None:
    reviewed, ids = line
    request = _request(reviewed, tmp_path, promote=True, method=FitMethod.INCREMENTAL)
    outcome = run_retrain(request, registry_settings)

    assert outcome.production_version == 1
    assert outcome.candidate_version == 2
    assert outcome.reviewed_normals_used == N_NORMALS
    assert outcome.new_misses == []
    assert outcome.false_alarms_after < outcome.false_alarms_before, outcome.reasons
    assert outcome.gate == "passed", outcome.reasons
    assert outcome.promoted
    assert any(ids["gone"][0] in skipped and "missing" in skipped for skipped in outcome.skipped)

    client = MlflowClient(tracking_uri(registry_settings), registry_uri(registry_settings))
    assert str(client.get_model_version_by_alias("metal", "production").version) == "2"
    tags = client.get_model_version("metal", "2").tags
    assert tags["gate"] == "passed"
    assert tags["false_alarms_after"] == str(outcome.false_alarms_after)
    run_id = client.get_model_version("metal", "2").run_id
    assert run_id is not None
    report = read_run_json(run_id, GATE_REPORT_FILE, settings=registry_settings)
    assert report["gate"] == "passed"
    assert report["candidate_version"] == 2

    v2 = load_bundle(
        download_version("metal", dest=tmp_path / "v2", settings=registry_settings, version=2)
    )
    learnt = {image.sample_id for image in v2.manifest.training_data.images or ()}
    assert set(ids["normal"]) <= learnt
    assert not learnt & set(ids["other"] + ids["gone"] + ids["defect"])
    assert v2.manifest.training_data.base_version == "1"
    assert v2.manifest.training_data.fit_method == "incremental"


def test_nothing_new_to_learn_is_an_error(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    tmp_path: Path,
) -> None:
    reviewed, _ = line
    with pytest.raises(RetrainError, match="nothing new to learn"):
        run_retrain(_request(reviewed, tmp_path), registry_settings)


def test_full_refit_registers_without_promoting(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    tmp_path: Path,
    synthetic_dataset: Path,
) -> None:
    reviewed, _ = line
    request = _request(reviewed, tmp_path, method=FitMethod.FULL, data=synthetic_dataset)
    outcome = run_retrain(request, registry_settings)

    assert outcome.candidate_version == 3
    assert outcome.production_version == 2
    assert not outcome.promoted
    client = MlflowClient(tracking_uri(registry_settings), registry_uri(registry_settings))
    assert str(client.get_model_version_by_alias("metal", "production").version) == "2"


def test_no_reviews_registers_nothing(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    tmp_path: Path,
) -> None:
    reviewed, _ = line
    request = _request(reviewed, tmp_path, lines=("line7",))
    with pytest.raises(RetrainError, match="no reviewed samples on line line7"):
        run_retrain(request, registry_settings)
    client = MlflowClient(tracking_uri(registry_settings), registry_uri(registry_settings))
    assert len(client.search_model_versions("name = 'metal'")) == 3


def test_a_version_without_a_recorded_set_asks_for_data(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    tmp_path: Path,
) -> None:
    reviewed, _ = line
    old = load_bundle(
        download_version("metal", dest=tmp_path / "old", settings=registry_settings, version=1)
    )
    legacy = update_manifest(old, name="legacy", training_data=TrainingData(digest="ab" * 32))
    version = register_bundle(legacy.directory, "legacy", settings=registry_settings).version
    promote("legacy", version, settings=registry_settings)
    goods, _ = make_line_images(tmp_path / "seen", n_good=1, n_defect_per_type=0)
    reviewed.add(goods[0], Label.NORMAL, model="legacy")
    with pytest.raises(RetrainError, match=r"no recorded training set.*--data"):
        run_retrain(_request(reviewed, tmp_path, name="legacy"), registry_settings)


def test_a_second_retrain_of_the_same_model_refuses(
    line: tuple[ReviewedLine, dict[str, list[str]]],
    registry_settings: RegistrySettings,
    tmp_path: Path,
) -> None:
    reviewed, _ = line
    state = tmp_path / "state"
    state.mkdir()
    (state / "metal.lock").write_text(f"{os.getppid()}\n")  # a live process holds it
    with pytest.raises(RetrainBusy, match=f"pid {os.getppid()}"):
        run_retrain(_request(reviewed, tmp_path), registry_settings)
