"""TensorRT on a real GPU: engine cache on disk, a faster second start, same scores as CPU."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions, InferenceEngine, available_providers

_TRT = "TensorrtExecutionProvider"
_REASON = "no CUDA GPU / TensorrtExecutionProvider not in this onnxruntime build"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.gpu,
    pytest.mark.skipif(_TRT not in available_providers(), reason=_REASON),
]


def _start(bundle: ModelBundle, options: EngineOptions) -> tuple[InferenceEngine, float]:
    started = time.perf_counter()
    engine = InferenceEngine(bundle, options)
    engine.warm_up()  # TensorRT builds (or loads) its engine on the first run
    return engine, time.perf_counter() - started


def test_tensorrt_engine_is_cached_and_matches_cpu(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    cache = tmp_path / "trt-cache"
    options = EngineOptions(providers=(_TRT,), tensorrt_cache_dir=cache, warmup_runs=1)
    first, first_s = _start(tiny_bundle, options)
    if first.providers[0] != _TRT:
        pytest.skip(f"{_REASON} (session fell back to {first.providers})")
    cached = sorted(p.name for p in cache.iterdir())
    assert any(name.endswith(".engine") for name in cached), cached
    second, second_s = _start(tiny_bundle, options)
    assert second_s < first_s, f"cached start {second_s:.2f}s, first {first_s:.2f}s"

    cpu = InferenceEngine(tiny_bundle, EngineOptions(providers=("CPUExecutionProvider",)))
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    on_gpu, on_cpu = second.run(batch), cpu.run(batch)
    np.testing.assert_allclose(on_gpu.image_scores, on_cpu.image_scores, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(on_gpu.anomaly_maps, on_cpu.anomaly_maps, rtol=1e-3, atol=1e-3)
