"""Evaluation end to end in-process: a real tiny ONNX bundle over a small MVTec folder.

The tiny bundle scores |grey - 128| / 32 (its maximum over the image), so the
folder below has scores known by hand: quiet good images below 0.57, one good
image with a bright speck at exactly 2.25 (a false alarm at threshold 2.0),
white-blob defects at 127/32 and faint defects at 52/32 = 1.625 (inside the
uncertain band [1.5, 2.0), missed at the threshold).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud.errors import DatasetError
from cloud.evaluation import evaluate_bundle, write_report
from cloud.evaluation.report_pictures import write_report_pictures
from edge.runtime.bundle import ModelBundle
from edge.runtime.errors import BundleCorrupt

pytestmark = pytest.mark.integration

SIZE = 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _quiet_good(rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(128.0, 4.0, size=(SIZE, SIZE))
    return np.clip(noise, 110, 146).astype(np.uint8)


def _blob_mask(rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    centre = (int(rng.integers(16, 48)), int(rng.integers(16, 48)))
    cv2.circle(mask, centre, 7, 255, -1)
    return mask


def make_mvtec_folder(root: Path, *, seed: int = 0) -> Path:
    """Write a small MVTec-layout category with hand-known tiny-bundle scores.

    test/good: 5 quiet images and ``speck.png`` (score 2.25); test/white: 3 blobs
    of 255 (score 3.97, masks); test/faint: 2 blobs of 180 (score 1.625, masks).
    """
    rng = np.random.default_rng(seed)
    for index in range(4):
        _write(root / "train" / "good" / f"{index:03d}.png", _quiet_good(rng))
    for index in range(5):
        _write(root / "test" / "good" / f"{index:03d}.png", _quiet_good(rng))
    speck = _quiet_good(rng)
    speck[30:33, 30:33] = 200
    _write(root / "test" / "good" / "speck.png", speck)
    for defect, level, count in (("white", 255, 3), ("faint", 180, 2)):
        for index in range(count):
            image = _quiet_good(rng)
            mask = _blob_mask(rng)
            image[mask > 0] = level
            _write(root / "test" / defect / f"{index:03d}.png", image)
            _write(root / "ground_truth" / defect / f"{index:03d}_mask.png", mask)
    return root


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return make_mvtec_folder(tmp_path / "category")


def test_report_numbers_match_the_hand_computed_scores(
    tiny_bundle: ModelBundle, data_root: Path
) -> None:
    seen: list[tuple[int, int]] = []
    outcome = evaluate_bundle(
        tiny_bundle.directory, data_root, batch_size=4, progress=lambda d, t: seen.append((d, t))
    )
    report = outcome.report

    assert seen == [(4, 11), (8, 11), (11, 11)]
    assert report.counts == {"good": 6, "faint": 2, "white": 3}
    assert (report.n_good, report.n_defective) == (6, 5)
    # 2 faint defects score below the speck: 2 of 30 pairs misordered.
    assert report.image_auroc == pytest.approx(28 / 30)
    assert report.fpr_at_full_recall == pytest.approx(1 / 6)
    assert report.full_recall_threshold == pytest.approx(52 / 32, abs=1e-4)
    assert report.recall_at_threshold == pytest.approx(3 / 5)
    assert report.false_alarm_rate_at_threshold == pytest.approx(1 / 6)
    assert report.at_band_low_edge.recall == pytest.approx(1.0)
    assert report.per_defect["white"].auroc == pytest.approx(1.0)
    assert report.per_defect["faint"].auroc == pytest.approx(10 / 12)
    assert report.pixel_auroc is not None and report.pixel_auroc > 0.95
    assert report.pixel_auroc_images == 11
    assert report.latency.n_images == 11 and report.latency.median_ms > 0
    verdicts = {record.file: record.verdict for record in report.images}
    assert verdicts["test/good/speck.png"] == "abnormal"
    assert verdicts["test/faint/000.png"] == "uncertain"


def test_report_json_and_pictures_are_written(
    tiny_bundle: ModelBundle, data_root: Path, tmp_path: Path
) -> None:
    outcome = evaluate_bundle(tiny_bundle.directory, data_root)
    json_path = write_report(outcome.report, tmp_path / "out" / "report.json")
    pictures = write_report_pictures(outcome, tmp_path / "report", gallery_size=3)

    loaded = json.loads(json_path.read_text())
    assert loaded["image_auroc"] == pytest.approx(28 / 30)
    assert loaded["per_defect"]["faint"]["count"] == 2
    assert len(pictures.all()) == 3
    for path in pictures.all():
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 5_000


def test_good_only_test_set_has_no_auroc_but_still_reports(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    root = make_mvtec_folder(tmp_path / "category")
    for defect in ("white", "faint"):
        for path in (root / "test" / defect).iterdir():
            path.unlink()

    outcome = evaluate_bundle(tiny_bundle.directory, root)
    pictures = write_report_pictures(outcome, tmp_path / "report")

    assert outcome.report.image_auroc is None
    assert outcome.report.pixel_auroc is None
    assert outcome.report.false_alarm_rate_at_threshold == pytest.approx(1 / 6)
    assert pictures.roc_curve is None
    assert pictures.gallery.is_file()


def test_folder_not_in_mvtec_layout_is_a_dataset_error(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    _write(folder / "a.png", np.full((8, 8), 128, dtype=np.uint8))

    with pytest.raises(DatasetError, match="test/"):
        evaluate_bundle(tiny_bundle.directory, folder)


def test_corrupt_bundle_is_refused_before_any_inference(
    tiny_bundle: ModelBundle, data_root: Path
) -> None:
    model = tiny_bundle.model_path
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))

    with pytest.raises(BundleCorrupt, match="sha256"):
        evaluate_bundle(tiny_bundle.directory, data_root)


def test_evaluation_imports_neither_torch_nor_mlflow() -> None:
    code = (
        "import sys, cloud.evaluation, cloud.evaluation.report_pictures;"
        "print(sorted(m for m in ('torch', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
