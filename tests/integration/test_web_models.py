"""The Models pages on a real registry: each version's gate, its report and what it learnt.

One module-scoped line: version 1 trained and promoted in MLflow on a temporary
SQLite store, samples reviewed in a migrated database, version 2 made by the
real ``run_retrain``, and version 3 a candidate whose gate failed, recorded by
``gate_record`` (what retrain uses) from the real gate's verdict on set scores,
so that it misses a reviewed defect the page must name.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.db.models import Role
from cloud.registry import RegistrySettings, register_bundle, tracking_uri
from cloud.registry.reports import attach_gate_report
from cloud.retrain import FitMethod, RetrainOutcome, RetrainRequest, run_retrain
from cloud.retrain.gate import ItemSource, RegressionItem, judge
from cloud.retrain.service import gate_record
from cloud.review import Label
from tests.retrain_data import ReviewedLine, make_line_images, train_and_promote
from tests.tiny_bundle import make_tiny_bundle
from tests.web_data import WebData, login, web_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]

N_NORMALS = 6


@dataclass(frozen=True)
class Line:
    """The registry, the database, the sample ids by label and the retrain's outcome."""

    registry: RegistrySettings
    data: WebData
    normals: list[str]
    defects: list[str]
    retrain: RetrainOutcome


def _failed_candidate(
    line: ReviewedLine, registry: RegistrySettings, root: Path, missed: str
) -> int:
    """Register a candidate whose gate failed on ``missed``, recorded as retrain records it."""
    bundle = make_tiny_bundle(root / "v3", name="metal")
    registered = register_bundle(bundle.directory, "metal", settings=registry)
    assert registered.run_id is not None
    items = [
        RegressionItem("test/good/000.png", is_defect=False, source=ItemSource.TEST),
        RegressionItem("test/scratch/000.png", is_defect=True, source=ItemSource.TEST),
        RegressionItem(f"sample {missed}", is_defect=True, source=ItemSource.REVIEW),
    ]
    report = judge(
        items, [0.2, 1.4, 1.5], [0.2, 0.6, 0.4], production_threshold=1.0, candidate_threshold=1.0
    )
    fields: dict[str, object] = {
        "production_version": 2,
        "reviewed_normals_used": 0,
        "new_reviewed_normals": 0,
        "reviewed_defects": 1,
        "fit_method": "full",
        "fit_s": 0.5,
        "skipped": [],
    }
    tags, documents = gate_record(
        fields, report, registered.version, (), reviewed_defect_ids=[missed]
    )
    attach_gate_report(
        "metal",
        registered.version,
        run_id=registered.run_id,
        tags=tags,
        documents=documents,
        settings=registry,
    )
    return registered.version


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory, synthetic_dataset: Path) -> Iterator[Line]:
    root = tmp_path_factory.mktemp("models-page")
    registry = RegistrySettings(mlflow_root=root / "mlflow", tracking_uri=None, registry_uri=None)
    train_and_promote(synthetic_dataset, root / "v1", "metal", registry)
    goods, defect_images = make_line_images(root / "seen", n_good=N_NORMALS, n_defect_per_type=1)
    data = WebData.create(root / "db")
    data.add_user("alice", Role.EXPERT)
    data.add_user("oscar", Role.OPERATOR)
    reviewed = ReviewedLine(data)
    normals = [reviewed.add(image, Label.NORMAL) for image in goods]
    defects = [reviewed.add(image, Label.DEFECT, verdict="abnormal") for image in defect_images[:2]]
    request = RetrainRequest(
        name="metal",
        db_url=data.db_url,
        store_dir=data.store_dir,
        state_dir=root / "state",
        lines=("line3",),
        method=FitMethod.INCREMENTAL,
    )
    outcome = run_retrain(request, registry)
    assert outcome.candidate_version == 2
    assert _failed_candidate(reviewed, registry, root, defects[0]) == 3
    yield Line(registry, data, normals, defects, outcome)
    data.close()


@pytest.fixture
def client(line: Line, tmp_path: Path) -> Iterator[TestClient]:
    with web_client(line.data, tmp_path, tracking_uri=tracking_uri(line.registry)) as made:
        yield made


def _row(page: str, version: int) -> str:
    """The Models page's table row of ``metal`` version ``version``."""
    rows = page.split('<tr class="model-version">')[1:]
    found = [row for row in rows if f"<td>metal</td><td>{version}</td>" in row]
    assert len(found) == 1, page
    return found[0].split("</tr>")[0]


def test_models_page_shows_each_versions_gate(line: Line, client: TestClient) -> None:
    login(client, "alice")
    page = client.get("/models")
    assert page.status_code == 200

    first = _row(page.text, 1)
    assert "no gate: first training" in first
    assert 'href="/models/metal/1"' in first

    retrained = _row(page.text, 2)
    assert f"gate {line.retrain.gate}" in retrained
    figures = f"{line.retrain.false_alarms_before} →\n  {line.retrain.false_alarms_after}"
    assert figures in retrained
    assert f"reviewed normals used: {line.retrain.reviewed_normals_used}" in retrained
    assert "retrained from version 1" in retrained

    failed = _row(page.text, 3)
    assert "gate failed" in failed
    assert "new misses: 2\n" in failed
    assert f'href="/samples/{line.defects[0]}">sample {line.defects[0]}</a>' in failed
    assert "test/scratch/000.png" in failed


def test_version_page_lists_the_reviewed_samples_it_learnt_from(
    line: Line, client: TestClient
) -> None:
    login(client, "alice")
    page = client.get("/models/metal/2")
    assert page.status_code == 200, page.text
    assert "Gate report" in page.text
    assert "false alarms on reviewed normals" in page.text
    for sample_id in line.normals:
        assert f'href="/samples/{sample_id}"' in page.text
        assert f'src="/api/v1/samples/{sample_id}/image/frame"' in page.text
    for sample_id in line.defects:  # the reviewed defects that set its threshold
        assert f'href="/samples/{sample_id}"' in page.text
    assert client.get(f"/samples/{line.normals[0]}").status_code == 200
    picture = client.get(f"/api/v1/samples/{line.normals[0]}/image/frame")
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/png"


def test_version_page_names_the_missed_samples(line: Line, client: TestClient) -> None:
    login(client, "alice")
    page = client.get("/models/metal/3")
    assert page.status_code == 200, page.text
    assert "gate failed" in page.text
    assert "2 defect(s) production catches are missed" in page.text
    misses = page.text.split('<ul class="new-misses">')[1].split("</ul>")[0]
    assert f'<a href="/samples/{line.defects[0]}">sample {line.defects[0]}</a>' in misses
    assert "test/scratch/000.png" in misses


def test_a_first_training_has_no_gate(line: Line, client: TestClient) -> None:
    login(client, "oscar")  # operators see the Models pages too, without sample links
    page = client.get("/models/metal/1")
    assert page.status_code == 200, page.text
    assert "No gate: first training" in page.text
    # train_and_promote registers the bundle without `linewatch train`'s run documents
    assert "no training_set.json was recorded for this version" in page.text
    assert "/samples/" not in page.text


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/models/metal/99", "model metal has no version 99"),
        ("/models/gravel/1", "model gravel is not registered"),
        ("/models/metal/two", "&#39;two&#39; is not a version number"),
    ],
)
def test_an_unknown_version_is_a_404_that_says_so(
    line: Line, client: TestClient, path: str, message: str
) -> None:
    login(client, "oscar")
    page = client.get(path)
    assert page.status_code == 404
    assert message in page.text


def test_the_version_page_needs_a_login(line: Line, client: TestClient) -> None:
    answer = client.get("/models/metal/2", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/models/metal/2"


def test_an_unreachable_registry_is_said_on_the_page(line: Line, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    with web_client(line.data, tmp_path, tracking_uri=dead, registry_timeout_s=1.0) as client:
        login(client, "oscar")
        models = client.get("/models")
        assert models.status_code == 200
        assert "MLflow" in models.text
        version = client.get("/models/metal/2")
        assert version.status_code == 503
        assert "MLflow" in version.text
