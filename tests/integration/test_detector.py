"""The detector end to end: training, ONNX parity with torch, golden images, quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cloud.dataset import load_layout
from cloud.detector import export_onnx
from cloud.golden import paint_defect
from cloud.train import TrainSettings, fit_model
from edge.runtime.bundle import MANIFEST_FILE, ModelBundle
from edge.runtime.engine import InferenceEngine
from edge.runtime.golden import check_golden
from edge.runtime.imaging import read_image, resize_for_model
from edge.runtime.policy import Verdict

pytestmark = pytest.mark.integration
SIZE = 128


def _resized(paths: tuple[Path, ...] | list[Path]) -> list[np.ndarray]:
    return [resize_for_model(read_image(path), SIZE, SIZE) for path in paths]


def test_onnx_runtime_agrees_with_torch(synthetic_dataset: Path, tmp_path: Path) -> None:
    layout = load_layout(synthetic_dataset)
    images = _resized(layout.train_good[:10])
    settings = TrainSettings(input_size=SIZE, bank_sizes=(256, 128), min_calibration_images=3)
    model, _ = fit_model(images[:7], images[7:], settings)
    path = export_onnx(model, tmp_path / "model.onnx")

    probe = [*_resized([item.path for item in layout.test[:3]]), paint_defect(images[0], seed=3)]
    batch = np.stack(probe)
    with torch.no_grad():
        torch_scores, torch_maps = model(torch.from_numpy(batch))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_scores, onnx_maps = session.run(["image_score", "anomaly_map"], {"image": batch})

    assert onnx_maps.shape == (len(probe), SIZE, SIZE)
    np.testing.assert_allclose(onnx_scores, torch_scores.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(onnx_maps, torch_maps.numpy(), rtol=1e-3, atol=2e-3)


def test_bundle_reproduces_its_golden_images(trained_bundle: ModelBundle) -> None:
    engine = InferenceEngine(trained_bundle)
    check = check_golden(engine, trained_bundle)
    assert check.passed, check.detail
    assert check.n_images == 3
    golden = {item.file: item.image_score for item in trained_bundle.manifest.golden}
    assert golden["golden/defect_0.png"] > trained_bundle.manifest.decision.threshold
    assert golden["golden/good_0.png"] < golden["golden/defect_0.png"]


def test_manifest_records_calibration_and_policy(trained_bundle: ModelBundle) -> None:
    manifest = trained_bundle.manifest
    assert manifest.decision.uncertain_low < manifest.decision.threshold
    assert manifest.decision.target_false_alarm_rate == pytest.approx(0.05)
    assert "quantile" in manifest.decision.method
    assert manifest.calibration.n_images >= 3
    assert manifest.training_data.n_train_good == 24
    assert len(manifest.training_data.dataset_digest) == 64
    assert manifest.detector.memory_bank_sizes is not None
    assert len(manifest.detector.memory_bank_sizes) == 2
    assert manifest.detector.memory_bank_size == sum(manifest.detector.memory_bank_sizes)
    assert manifest.detector.memory_bank_size <= 512 + 256
    assert manifest.detector.preset == "fast"  # the default preset, its sizes overridden
    assert manifest.detector.input_budget_side == SIZE


def test_manifest_json_keeps_its_keys(trained_bundle: ModelBundle) -> None:
    """The typed sections write the keys the free-form ones did, and no others."""
    raw = json.loads((trained_bundle.directory / MANIFEST_FILE).read_text())
    assert list(raw["detector"]) == [
        "kind",
        "preset",
        "input_budget_side",
        "backbone",
        "feature_blocks",
        "feature_dims",
        "memory_bank_size",
        "memory_bank_sizes",
        "coreset_ratio",
        "smoothing_sigma_patches",
        "colour_contrast_weight",
        "patch_normalisation",
    ]
    assert list(raw["training_data"]) == [
        "digest",
        "n_train_good",
        "n_memory_bank_images",
        "n_calibration_images",
        "settings",
        "data_root",
        "images",  # what retraining learns on top of: path, sha256 and role per image
    ]
    assert raw["training_data"]["settings"] == TrainSettings.model_validate(
        raw["training_data"]["settings"]
    ).model_dump(mode="json")


def test_separates_defects_from_good_parts(
    trained_bundle: ModelBundle, synthetic_dataset: Path
) -> None:
    layout = load_layout(synthetic_dataset, require_test=True)
    engine = InferenceEngine(trained_bundle)
    result = engine.infer_images([read_image(item.path) for item in layout.test])
    labels = [item.is_anomalous for item in layout.test]
    assert roc_auc_score(labels, result.image_scores) >= 0.9
    # The anomaly map is hottest inside the painted defect, not elsewhere.
    painted = paint_defect(resize_for_model(read_image(layout.train_good[0]), SIZE, SIZE), seed=5)
    verdict = trained_bundle.manifest.decision.decide(
        float(engine.infer_images([painted]).image_scores[0])
    )
    assert verdict is Verdict.ABNORMAL


@pytest.mark.parametrize("shape", [(77, 301), (400, 90, 3), (128, 128, 4)])
def test_any_size_grey_or_colour(trained_bundle: ModelBundle, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    from edge.runtime.imaging import to_bgr

    result = InferenceEngine(trained_bundle).infer_images([to_bgr(image)])
    assert result.anomaly_maps.shape == (1, SIZE, SIZE)
    assert np.isfinite(result.image_scores).all()


def test_leave_one_out_maps_never_undercut_in_sample_maps(synthetic_dataset: Path) -> None:
    from cloud.detector.fitting import (
        collect_embeddings,
        distance_maps,
        greedy_coreset,
        leave_one_out_maps,
    )

    images = _resized(load_layout(synthetic_dataset).train_good[:6])
    settings = TrainSettings(input_size=SIZE, bank_sizes=(128, 64), leave_one_out_calibration=False)
    model, _ = fit_model(images[:4], images[4:], settings)
    embeddings = collect_embeddings(model, images[:4])
    assert len(embeddings) == len(model.banks) == 2
    for bank, level, grid in zip(model.banks, embeddings, [(16, 16), (8, 8)], strict=True):
        chosen = greedy_coreset(level, 64)
        bank.set_memory_bank(level[chosen])
        loo = leave_one_out_maps(bank, level, chosen, len(level) // 4, grid)
        in_sample = bank.distances(level).reshape(4, *grid)
        assert loo.shape == (4, *grid)
        # Without its own patches a patch can only be farther from the bank.
        assert (loo >= in_sample - 1e-4).all()
        assert (loo > in_sample + 1e-3).any()
    # Each level is searched on its own grid: stride 8 and stride 16; the density
    # heads' maps (the default preset's) follow the banks' on the same grids.
    assert [tuple(level.shape) for level in distance_maps(model, images[:2])] == [
        (2, 16, 16),
        (2, 8, 8),
        (2, 16, 16),
        (2, 8, 8),
    ]


def test_calibration_counts_held_out_and_leave_one_out_images(trained_bundle: ModelBundle) -> None:
    calibration = trained_bundle.manifest.calibration
    assert calibration.n_images == trained_bundle.manifest.training_data.n_train_good


@pytest.fixture(scope="module")
def wide_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Strips twice as wide as tall, as a line-scan camera over a belt gives them."""
    from cloud.synth import generate_dataset

    root = tmp_path_factory.mktemp("wide") / "metal"
    return generate_dataset(
        root, seed=2, n_train=16, n_test_good=6, n_test_per_defect=2, size=(192, 96)
    )


def test_wide_images_keep_their_shape_at_the_same_pixel_budget(
    wide_dataset: Path, tmp_path: Path
) -> None:
    from cloud.train import train_bundle

    settings = TrainSettings(input_size=96, bank_sizes=(256, 128))
    bundle = train_bundle(wide_dataset, tmp_path / "wide", settings=settings)
    assert (bundle.manifest.input.height, bundle.manifest.input.width) == (64, 128)

    engine = InferenceEngine(bundle)
    assert check_golden(engine, bundle).passed
    layout = load_layout(wide_dataset, require_test=True)
    result = engine.infer_images([read_image(item.path) for item in layout.test])
    assert result.anomaly_maps.shape == (len(layout.test), 64, 128)
    labels = [item.is_anomalous for item in layout.test]
    assert roc_auc_score(labels, result.image_scores) >= 0.8

    square = train_bundle(
        wide_dataset,
        tmp_path / "square",
        settings=settings.model_copy(update={"keep_aspect_ratio": False}),
    )
    assert (square.manifest.input.height, square.manifest.input.width) == (96, 96)
