"""The colour-contrast channels: a patch's colour against its surroundings."""

import numpy as np
import torch

from cloud.detector.backbone import EfficientNetLiteFeatures
from cloud.detector.model import FINEST_STRIDE, PatchCoreModel

WEIGHT = 32.0


def _model(weight: float = WEIGHT) -> PatchCoreModel:
    return PatchCoreModel(
        EfficientNetLiteFeatures(), input_size=(256, 256), colour_contrast_weight=weight
    )


def _normalised(image: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(image).float().permute(2, 0, 1).unsqueeze(0) - 127.0) / 128.0


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 190, size=(256, 256, 3)).astype(np.float32)


def test_a_darker_square_stands_out_by_its_darkening() -> None:
    model = _model()
    image = _texture()
    stained = image.copy()
    stained[96:160, 96:160] -= 20.0  # 20 grey levels darker, the texture kept
    before = model.colour_contrast(_normalised(image))
    after = model.colour_contrast(_normalised(stained))
    centre = 128 // FINEST_STRIDE
    change = (after - before)[0, :, centre, centre]
    # The stain also darkens the surroundings' mean a little, so slightly less than all of it.
    expected = -WEIGHT * 20.0 / 128.0
    assert torch.all(change < 0.8 * expected)
    assert torch.all(change > 1.05 * expected)
    far = (after - before)[0, :, 1, 1]
    assert torch.all(far.abs() < 0.25 * abs(expected))


def test_uniform_brightness_offset_changes_nothing() -> None:
    model = _model()
    image = _texture(1)
    brighter = image + 25.0
    np.testing.assert_allclose(
        model.colour_contrast(_normalised(brighter)).numpy(),
        model.colour_contrast(_normalised(image)).numpy(),
        atol=1e-4,
    )


def test_contrast_lives_on_the_finest_patch_grid_and_widens_that_level() -> None:
    model = _model()
    pixels = torch.from_numpy(_texture(2).astype(np.uint8)).unsqueeze(0)
    embeddings = model.embed(pixels)
    backbone_dims = list(model.backbone.channels)
    assert model.level_dims == [backbone_dims[0] + 3, *backbone_dims[1:]]
    assert [level.shape[-1] for level in embeddings] == model.level_dims
    assert tuple(embeddings[0].shape[1:3]) == model.patch_grid((256, 256))


def test_weight_zero_searches_backbone_features_alone() -> None:
    model = _model(0.0)
    pixels = torch.from_numpy(_texture(3).astype(np.uint8)).unsqueeze(0)
    assert model.level_dims == list(model.backbone.channels)
    assert [level.shape[-1] for level in model.embed(pixels)] == model.level_dims
