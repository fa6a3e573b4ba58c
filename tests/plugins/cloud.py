"""Shared pytest fixtures: synthetic data and a trained detector bundle.

Both are session-scoped: generating and training once keeps the suite fast.
The bundle is trained at a small input size; the detector's graph is the same
at every size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.runtime.bundle import ModelBundle

TEST_INPUT_SIZE = 128


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded MVTec-layout dataset (colour metal surface, all defect types)."""
    from cloud.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "metal"
    return generate_dataset(
        root, seed=0, n_train=24, n_test_good=8, n_test_per_defect=3, size=TEST_INPUT_SIZE
    )


@pytest.fixture(scope="session")
def trained_bundle(
    tmp_path_factory: pytest.TempPathFactory, synthetic_dataset: Path
) -> ModelBundle:
    """A detector bundle trained on ``synthetic_dataset``."""
    from cloud.train import TrainSettings, train_bundle

    out = tmp_path_factory.mktemp("bundles") / "metal"
    settings = TrainSettings(input_size=TEST_INPUT_SIZE, bank_sizes=(512, 256))
    return train_bundle(synthetic_dataset, out, name="metal", settings=settings)
