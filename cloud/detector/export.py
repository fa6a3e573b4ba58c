"""Export the detector to ONE ONNX graph: ``image`` in, ``image_score`` and ``anomaly_map`` out."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from cloud.detector.model import PatchCoreModel
from cloud.errors import TrainingError

__all__ = ["OPSET", "export_onnx"]

OPSET = 17


def export_onnx(model: PatchCoreModel, path: Path) -> Path:
    """Write the model as a self-contained ONNX file with a dynamic batch axis.

    The TorchScript-based exporter is used on purpose: it produces a plain,
    fully constant-folded graph that ONNX Runtime and TensorRT both take.
    """
    height, width = model.input_size
    example = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["image_score", "anomaly_map"],
            dynamic_axes={
                "image": {0: "batch"},
                "image_score": {0: "batch"},
                "anomaly_map": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        msg = f"export: the ONNX graph at {path} does not validate ({exc})"
        raise TrainingError(msg) from exc
    return path
