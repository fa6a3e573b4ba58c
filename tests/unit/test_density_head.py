"""The Gaussian density head: its Mahalanobis math, its fit, and the exported graph that runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cloud.dataset import load_layout
from cloud.detector.fitting import fit_gaussian_head
from cloud.detector.model import GaussianHead
from cloud.golden import paint_defect
from cloud.train import TrainSettings, train_bundle
from edge.runtime.bundle import ModelBundle, load_bundle
from edge.runtime.engine import InferenceEngine
from edge.runtime.imaging import read_image

GRID = (3, 4)
DIM = 5


def _embeddings(n_images: int, seed: int = 0) -> torch.Tensor:
    """Correlated Gaussian patches (n * h * w, D), each place with its own mean."""
    generator = torch.Generator().manual_seed(seed)
    places = GRID[0] * GRID[1]
    mixing = torch.randn(DIM, DIM, generator=generator)
    means = torch.randn(places, DIM, generator=generator) * 3.0
    noise = torch.randn(n_images, places, DIM, generator=generator) @ mixing
    return (means + noise).reshape(-1, DIM)


def test_the_head_scores_the_mahalanobis_distance_to_its_places_mean() -> None:
    head = GaussianHead(DIM)
    mean = torch.randn(*GRID, DIM, dtype=torch.float64)
    factor = torch.randn(DIM, DIM, dtype=torch.float64)
    covariance = factor @ factor.T + torch.eye(DIM, dtype=torch.float64)
    variances, directions = torch.linalg.eigh(covariance)
    head.set_gaussian(mean, directions / variances.sqrt())
    points = torch.randn(2, *GRID, DIM, dtype=torch.float64)
    residual = points - mean
    expected = torch.einsum("nhwi,ij,nhwj->nhw", residual, torch.linalg.inv(covariance), residual)
    torch.testing.assert_close(
        head.distances(points.float()), expected.sqrt().float(), rtol=1e-4, atol=1e-4
    )


def test_fitting_leaves_each_image_out_of_the_means_it_is_scored_against() -> None:
    n_images = 40
    embeddings = _embeddings(n_images)
    head = GaussianHead(DIM)
    loo = fit_gaussian_head(head, embeddings, n_images, GRID, prior_images=0.0)
    # Scored against the means of the other 39 (same covariance): a fresh head fitted
    # on them has the same whitening up to the pooled estimate; rebuild it exactly.
    points = embeddings.reshape(n_images, -1, DIM)
    others = points[1:].mean(dim=0).reshape(*GRID, DIM)
    exact = GaussianHead(DIM)
    exact.set_gaussian(others, head.whitening)
    torch.testing.assert_close(
        loo[0], exact.distances(points[:1].reshape(1, *GRID, DIM))[0], rtol=1e-4, atol=1e-4
    )
    # Out of sample scores more than in sample, on average.
    assert float(loo.mean()) > float(head.distances(points.reshape(-1, *GRID, DIM)).mean())


def test_an_outlying_patch_scores_far_above_normal_ones() -> None:
    n_images = 60
    embeddings = _embeddings(n_images)
    head = GaussianHead(DIM)
    fit_gaussian_head(head, embeddings, n_images, GRID)
    fresh = embeddings.reshape(n_images, *GRID, DIM)[:4].clone()
    fresh[0, 1, 2] += 8.0 * embeddings.std(dim=0)
    scores = head.distances(fresh)
    assert float(scores[0, 1, 2]) > 2.0 * float(scores[1:].max())


@pytest.fixture(scope="module")
def density_bundle(
    tmp_path_factory: pytest.TempPathFactory, synthetic_dataset: Path
) -> ModelBundle:
    out = tmp_path_factory.mktemp("density") / "metal"
    settings = TrainSettings(input_size=128, bank_sizes=(512, 256), density_head="max")
    train_bundle(synthetic_dataset, out, name="metal", settings=settings)
    return load_bundle(out)


def test_the_fitted_head_is_exported_and_runs_in_the_edge_engine(
    density_bundle: ModelBundle, synthetic_dataset: Path
) -> None:
    settings = density_bundle.manifest.training_data.settings
    assert settings is not None
    assert settings["density_head"] == "max"
    graph = onnx.load(str(density_bundle.model_path)).graph
    # Two bank searches and two whitenings: the heads are in the graph the node runs.
    assert sum(node.op_type == "MatMul" for node in graph.node) == 4

    layout = load_layout(synthetic_dataset)
    engine = InferenceEngine(density_bundle)
    good = [read_image(item.path) for item in layout.test if not item.is_anomalous]
    planted = [paint_defect(image, seed=index) for index, image in enumerate(good[:3])]
    scores = engine.infer_images(good + planted).image_scores
    normal, abnormal = scores[: len(good)], scores[len(good) :]
    assert float(abnormal.min()) > float(normal.max())
    assert float(abnormal.min()) > density_bundle.manifest.decision.threshold


def test_the_head_alone_scores_without_searching_a_bank(synthetic_dataset: Path) -> None:
    from cloud.train import fit_model
    from edge.runtime.imaging import resize_for_model

    layout = load_layout(synthetic_dataset)
    images = [resize_for_model(read_image(path), 128, 128) for path in layout.train_good[:10]]
    settings = TrainSettings(input_size=128, bank_sizes=(512, 256), density_head="alone")
    model, _ = fit_model(images[:7], images[7:], settings)
    assert len(model.scorers) == len(model.gaussian_heads) == 2
    batch = torch.from_numpy(np.stack([images[0], paint_defect(images[0], seed=1)]))
    with torch.no_grad():
        scores, _ = model(batch)
    assert float(scores[1]) > float(scores[0])
