"""The coreset is chosen from a bounded, seeded sample of patches on large inputs."""

from __future__ import annotations

import torch

from cloud.train import TrainSettings
from cloud.train import _coreset_candidates as coreset_candidates


def test_small_levels_keep_every_patch() -> None:
    settings = TrainSettings(coreset_max_candidates=1000)
    assert torch.equal(coreset_candidates(800, settings), torch.arange(800))


def test_large_levels_are_sampled_without_repeats_and_reproducibly() -> None:
    settings = TrainSettings(coreset_max_candidates=1000, seed=3)
    first = coreset_candidates(50_000, settings)
    assert first.shape == (1000,)
    assert torch.unique(first).shape == (1000,)
    assert int(first.max()) < 50_000
    assert torch.equal(first, coreset_candidates(50_000, settings))
    assert not torch.equal(
        first, coreset_candidates(50_000, settings.model_copy(update={"seed": 4}))
    )


def test_no_cap_keeps_every_patch() -> None:
    settings = TrainSettings(coreset_max_candidates=None)
    assert coreset_candidates(2_000_000, settings).shape == (2_000_000,)
