"""``linewatch synth`` as a user runs it: CliRunner on the app, then the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

import cloud.cli.commands.synth  # noqa: F401  registers the command on the app
from cloud.cli.app import app
from cloud.dataset import load_layout
from cloud.errors import DatasetError
from cloud.synth import DEFECT_TYPES

pytestmark = pytest.mark.e2e

LINEWATCH = Path(sys.executable).parent / "linewatch"
SMALL_ARGS = ["--n-train", "4", "--n-test-good", "1", "--n-test-per-defect", "1", "--size", "64"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINEWATCH.is_file():
        pytest.skip(f"console script {LINEWATCH} is not installed (pip install -e .)")
    return subprocess.run(
        [str(LINEWATCH), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_writes_dataset_and_video_and_says_how_to_train(tmp_path: Path) -> None:
    out = tmp_path / "data"
    video = tmp_path / "line.avi"

    result = CliRunner().invoke(
        app,
        [
            *("synth", "--out", str(out), "--category", "gravel", *SMALL_ARGS),
            *("--video", str(video), "--video-frames", "6"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert f"linewatch train --data {out} --out bundles/gravel" in result.output
    layout = load_layout(out, require_test=True)
    assert len(layout.train_good) == 4
    assert len(layout.test) == 1 + len(DEFECT_TYPES)
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    assert video.with_suffix(".json").is_file()


def test_cli_unknown_category_is_a_dataset_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "d"), "--category", "x"])

    assert result.exit_code != 0
    assert isinstance(result.exception, DatasetError)
    assert "choose one of: metal" in str(result.exception)


def test_console_script_writes_the_layout(tmp_path: Path) -> None:
    out = tmp_path / "data"

    completed = _run("synth", "--out", str(out), "--seed", "3", *SMALL_ARGS, cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert sorted(path.name for path in (out / "train" / "good").iterdir()) == [
        f"{index:03d}.png" for index in range(4)
    ]
    for defect in DEFECT_TYPES:
        assert (out / "test" / defect / "000.png").is_file()
        assert (out / "ground_truth" / defect / "000_mask.png").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # nothing in cwd


def test_console_script_wrong_category_is_one_line_without_traceback(tmp_path: Path) -> None:
    completed = _run("synth", "--out", str(tmp_path / "d"), "--category", "marble", cwd=tmp_path)

    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: category 'marble' is unknown; choose one of:")
    assert "Traceback" not in completed.stderr + completed.stdout


def test_console_script_refuses_a_foreign_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.txt").write_text("keep")

    completed = _run("synth", "--out", str(folder), *SMALL_ARGS, cwd=tmp_path)

    assert completed.returncode == 1
    assert f"error: output {folder}: folder is not empty" in completed.stderr
    assert "--overwrite" in completed.stderr
    assert [path.name for path in folder.iterdir()] == ["report.txt"]


def test_texture_photos_load_without_skimage_or_its_downloader(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from cloud.synth import render_part\n"
        "for name in ('brick', 'gravel'):\n"
        "    render_part(name, np.random.default_rng(0), 64)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'skimage', 'pooch'})\n"
        "print(loaded)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
