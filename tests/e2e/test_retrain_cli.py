"""`linewatch retrain` run as a user runs it: the JSON contract, exit codes, the watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.registry import RegistrySettings
from cloud.review import Label
from tests.plugins.edge import wait_until
from tests.retrain_data import ReviewedLine, make_line_images, train_and_promote
from tests.web_data import WebData

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]

LINEWATCH = str(Path(sys.executable).parent / "linewatch")
CONTRACT = {
    "gate",
    "candidate_version",
    "production_version",
    "reviewed_normals_used",
    "false_alarms_before",
    "false_alarms_after",
    "new_misses",
}


@pytest.fixture(scope="module")
def line(
    tmp_path_factory: pytest.TempPathFactory, synthetic_dataset: Path
) -> Iterator[tuple[ReviewedLine, str, Path]]:
    root = tmp_path_factory.mktemp("line")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    (root / "mlflow").mkdir()
    train_and_promote(synthetic_dataset, root / "v1", "metal", RegistrySettings(tracking_uri=uri))
    goods, _ = make_line_images(root / "seen", n_good=10, n_defect_per_type=0)
    data = WebData.create(root / "db")
    reviewed = ReviewedLine(data)
    for image in goods[:8]:
        reviewed.add(image, Label.NORMAL)
    yield reviewed, uri, goods[8]
    data.close()


def _args(reviewed: ReviewedLine, uri: str, state: Path) -> list[str]:
    return [
        "retrain", "--name", "metal", "--db", reviewed.data.db_url,
        "--store", str(reviewed.data.store_dir), "--tracking-uri", uri,
        "--state-dir", str(state),
    ]  # fmt: skip


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [LINEWATCH, *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False,
        env=env,
    )  # fmt: skip


def test_retrain_writes_the_contract_and_promotes(
    line: tuple[ReviewedLine, str, Path], tmp_path: Path
) -> None:
    reviewed, uri, _ = line
    report = tmp_path / "report.json"
    done = _run(
        *_args(reviewed, uri, tmp_path / "state"), "--json", str(report), "--promote", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(report.read_text())
    assert set(written) >= CONTRACT
    assert written["gate"] == "passed", written["reasons"]
    assert (written["candidate_version"], written["production_version"]) == (2, 1)
    assert written["reviewed_normals_used"] == 8
    assert written["new_misses"] == []
    assert "gate PASSED" in done.stdout
    assert "metal@production is now version 2" in done.stdout
    assert set(tmp_path.iterdir()) == {report, tmp_path / "state"}  # nothing else written here


def test_nothing_to_train_is_one_error_line_and_exit_1(
    line: tuple[ReviewedLine, str, Path], tmp_path: Path
) -> None:
    reviewed, uri, _ = line
    done = _run(*_args(reviewed, uri, tmp_path / "state"), "--line", "line7", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: model metal: no reviewed samples on line line7")
    assert len(done.stderr.strip().splitlines()) == 1
    usage = _run(*_args(reviewed, uri, tmp_path / "state"), "--every", "24h", cwd=tmp_path)
    assert usage.returncode == 1
    assert usage.stderr.startswith("error: retrain: --every and --min-new need --watch")


def test_watch_retrains_once_enough_reviews_arrive_and_stops_on_ctrl_c(
    line: tuple[ReviewedLine, str, Path], tmp_path: Path
) -> None:
    reviewed, uri, spare = line
    report = tmp_path / "watch.json"
    args = [
        *_args(reviewed, uri, tmp_path / "state"), "--watch", "--min-new", "1",
        "--check-every", "0.2s", "--json", str(report),
    ]  # fmt: skip
    process = subprocess.Popen(
        [LINEWATCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        # Reviewed once the watch has started (its state file exists): one new review.
        started = tmp_path / "state" / "metal.watch.json"
        wait_until(lambda: started.exists() or process.poll() is not None, 120, "the watch")
        reviewed.add(spare, Label.NORMAL)
        wait_until(
            lambda: report.exists() or process.poll() is not None, 240, "the watch's retrain"
        )
        assert report.exists(), process.stderr.read() if process.stderr else ""
        written = json.loads(report.read_text())
        assert written["candidate_version"] > written["production_version"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "watch stopped" in out
