"""A tiny but real ModelBundle for tests of the edge plumbing.

The graph has the detector's exact contract (uint8 NHWC BGR ``image`` in;
``image_score`` (N,) and ``anomaly_map`` (N, H, W) out) and computes a real
score: how far each pixel's grey level is from mid-grey, in units of 32 levels.
A flat mid-grey frame scores 0 (normal); a white or black one scores 4 (abnormal).
The detector's own tests use a trained bundle instead.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.runtime.bundle import (
    DetectorInfo,
    InputSpec,
    Manifest,
    ModelBundle,
    ScoreCalibration,
    file_sha256,
    load_bundle,
    write_manifest,
)
from edge.runtime.policy import DecisionPolicy

__all__ = ["make_tiny_bundle", "tiny_graph"]


def tiny_graph(size: int) -> onnx.ModelProto:
    """The graph alone: for tests that write the bundle around it themselves."""
    weights = numpy_helper.from_array(np.full((3,), 1.0 / 3.0, dtype=np.float32), "weights")
    mid = numpy_helper.from_array(np.array(128.0, dtype=np.float32), "mid")
    unit = numpy_helper.from_array(np.array(32.0, dtype=np.float32), "unit")
    axes = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["pixels", "weights"], ["grey"]),
        helper.make_node("Sub", ["grey", "mid"], ["centred"]),
        helper.make_node("Abs", ["centred"], ["distance"]),
        helper.make_node("Div", ["distance", "unit"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map", "axes"], ["image_score"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_grey_distance",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])],
        [
            helper.make_tensor_value_info("image_score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", size, size]),
        ],
        initializer=[weights, mid, unit, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def make_tiny_bundle(
    directory: Path,
    *,
    name: str = "tiny",
    version: str = "1",
    size: int = 64,
    threshold: float = 2.0,
    uncertain_low: float = 1.5,
) -> ModelBundle:
    """Write a tiny real bundle into ``directory`` and return it, verified."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / "model.onnx"
    onnx.save(tiny_graph(size), str(model_path))
    manifest = Manifest(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        model_sha256=file_sha256(model_path),
        input=InputSpec(height=size, width=size),
        calibration=ScoreCalibration(
            method="fixed: |grey - 128| / 32", raw_location=0.0, raw_scale=1.0, n_images=1
        ),
        decision=DecisionPolicy(
            threshold=threshold, uncertain_low=uncertain_low, method="fixed for tests"
        ),
        detector=DetectorInfo(kind="tiny-grey-distance"),
    )
    write_manifest(manifest, directory)
    return load_bundle(directory)
