"""``linewatch evaluate``, ``register`` and ``promote`` as a user runs them: the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.runtime.bundle import ModelBundle
from tests.integration.test_evaluate import make_mvtec_folder

pytestmark = pytest.mark.e2e

LINEWATCH = Path(sys.executable).parent / "linewatch"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    environment |= {"OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [str(LINEWATCH), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_evaluate_writes_report_and_pictures(tiny_bundle: ModelBundle, tmp_path: Path) -> None:
    data = make_mvtec_folder(tmp_path / "category")
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    result = _run(
        [
            "evaluate",
            "--bundle", str(tiny_bundle.directory),
            "--data", str(data),
            "--json", str(tmp_path / "out" / "report.json"),
            "--report-dir", str(tmp_path / "report"),
            "--batch-size", "4",
        ],
        cwd,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for key in (
        "image_auroc",
        "pixel_auroc",
        "fpr_at_full_recall",
        "recall_at_threshold",
        "false_alarm_rate_at_threshold",
        "per_defect",
        "counts",
        "latency",
    ):
        assert key in report
    assert report["counts"] == {"good": 6, "faint": 2, "white": 3}
    assert report["image_auroc"] == pytest.approx(28 / 30)
    assert "image AUROC" in result.stdout and "0.933" in result.stdout
    for name in ("roc_curve.png", "score_histogram.png", "gallery.png"):
        picture = tmp_path / "report" / name
        assert picture.read_bytes()[:8] == PNG_MAGIC
        decoded = cv2.imread(str(picture))
        assert decoded is not None and decoded.shape[0] > 200 and decoded.shape[1] > 200
    assert list(cwd.iterdir()) == []


def test_corrupt_bundle_is_one_error_line_naming_sha256(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    data = make_mvtec_folder(tmp_path / "category")
    model = tiny_bundle.model_path
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    model.write_bytes(bytes(raw))

    result = _run(
        ["evaluate", "--bundle", str(tiny_bundle.directory), "--data", str(data),
         "--json", str(tmp_path / "report.json")],
        tmp_path,
    )  # fmt: skip

    assert result.returncode == 1
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "sha256" in lines[0]
    assert not (tmp_path / "report.json").exists()


def test_folder_not_in_mvtec_layout_is_one_error_line(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    cv2.imwrite(str(loose / "a.png"), np.full((8, 8), 128, dtype=np.uint8))

    result = _run(
        ["evaluate", "--bundle", str(tiny_bundle.directory), "--data", str(loose),
         "--json", str(tmp_path / "report.json")],
        tmp_path,
    )  # fmt: skip

    assert result.returncode == 1
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: dataset ") and "test/" in lines[0]


def test_register_then_promote(tiny_bundle: ModelBundle, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"LINEWATCH_MLFLOW_ROOT": str(tmp_path / "mlflow")}
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    registered = _run(
        ["register", "--bundle", str(tiny_bundle.directory), "--name", "line3",
         "--tracking-uri", uri],
        cwd, **env,
    )  # fmt: skip
    promoted = _run(
        ["promote", "--name", "line3", "--version", "1", "--tracking-uri", uri], cwd, **env
    )

    assert registered.returncode == 0, registered.stderr
    assert registered.stderr == ""
    assert "registered line3 version 1" in registered.stdout
    assert "linewatch promote --name line3 --version 1" in registered.stdout
    assert promoted.returncode == 0, promoted.stderr
    assert "line3@production is now version 1" in promoted.stdout
    assert list(cwd.iterdir()) == []
    assert any((tmp_path / "mlflow" / "artifacts").iterdir())


@pytest.mark.parametrize(
    ("options", "named"),
    [(["--bank-sizes", "8", "4096"], "bank_sizes"), (["--input-size", "100"], "input_size")],
)
def test_a_bad_training_option_is_one_error_line(
    options: list[str], named: str, tmp_path: Path
) -> None:
    data = make_mvtec_folder(tmp_path / "category")
    result = _run(["train", "--data", str(data), "--out", str(tmp_path / "b"), *options], tmp_path)

    assert result.returncode == 1
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: train ") and named in lines[0]
    assert not (tmp_path / "b").exists()
