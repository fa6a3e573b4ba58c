"""The inference engine: one ONNX Runtime session over a bundle's ``model.onnx``.

Provider order is TensorRT, then CUDA, then CPU, limited to what this
onnxruntime build offers and overridable by settings. TensorRT builds engines
slowly, so they are cached on disk next to the bundle cache.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.runtime.bundle import ModelBundle
from edge.runtime.errors import EngineError
from edge.runtime.imaging import ImageArray, resize_for_model

__all__ = [
    "DEFAULT_PROVIDER_ORDER",
    "EngineOptions",
    "InferenceEngine",
    "InferenceResult",
    "available_providers",
    "choose_providers",
]

logger = logging.getLogger(__name__)

_TENSORRT, _CUDA, _CPU = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
DEFAULT_PROVIDER_ORDER = (_TENSORRT, _CUDA, _CPU)


@dataclass(frozen=True)
class EngineOptions:
    """How to run a model on this box."""

    providers: tuple[str, ...] | None = None  # None: the best of DEFAULT_PROVIDER_ORDER
    intra_op_threads: int = 0  # 0: ONNX Runtime's choice (all physical cores)
    inter_op_threads: int = 1
    tensorrt_cache_dir: Path | None = None
    tensorrt_fp16: bool = False
    warmup_runs: int = 3
    # The batcher runs up to this many frames at once; each new batch shape costs ONNX
    # Runtime allocations on its first run, which must not land on live frames.
    warmup_batch_max: int = 1
    # ONNX Runtime's worker threads busy-wait between runs by default. On a small box
    # the node shares its cores with decoding, gRPC and a second model being warmed,
    # and spinning threads take cycles from all of them.
    allow_spinning: bool = False
    # ONNX Runtime's memory-pattern planning makes the first run of a session on each
    # new thread ~2x slower (12.6 -> 25.9 ms here); after a model swap every inspection
    # worker pays it once, on live frames. Off costs 3-7% at batch 1 on one thread
    # (12.4 -> 12.8-13.3 ms) and nothing measurable at batch 8: worth a flat swap.
    memory_pattern: bool = False


@dataclass(frozen=True)
class InferenceResult:
    """Outputs of one batch; names follow the graph's outputs."""

    image_scores: npt.NDArray[np.float32]  # (N,)
    anomaly_maps: npt.NDArray[np.float32]  # (N, H, W), same scale as the scores
    latency_ms: float


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers."""
    return list(ort.get_available_providers())


def choose_providers(
    requested: Sequence[str] | None = None, offered: Sequence[str] | None = None
) -> list[str]:
    """Return the providers to use, in order, always ending with the CPU.

    A requested provider this build lacks (``offered`` defaults to this
    onnxruntime's) is skipped with a note, so a config written for a GPU box
    still starts on a CPU-only one. TensorRT is always followed by CUDA where
    the build has it: TensorRT hands the nodes it cannot compile -- and the
    whole graph, when its libraries are missing -- to the next provider, and
    that should be the GPU, not the CPU.
    """
    available = set(available_providers() if offered is None else offered)
    wanted = list(requested) if requested else list(DEFAULT_PROVIDER_ORDER)
    if _TENSORRT in wanted and _CUDA not in wanted:
        wanted.insert(wanted.index(_TENSORRT) + 1, _CUDA)
    chosen = [name for name in wanted if name in available]
    for name in wanted:
        if name not in available:
            logger.info("provider not available in this onnxruntime build provider=%s", name)
    if _CPU not in chosen:
        chosen.append(_CPU)
    return chosen


def _provider_options(name: str, options: EngineOptions) -> dict[str, Any]:
    if name == "TensorrtExecutionProvider":
        trt: dict[str, Any] = {"trt_fp16_enable": options.tensorrt_fp16}
        if options.tensorrt_cache_dir is not None:
            options.tensorrt_cache_dir.mkdir(parents=True, exist_ok=True)
            trt |= {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(options.tensorrt_cache_dir),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(options.tensorrt_cache_dir),
            }
        return trt
    return {}


class InferenceEngine:
    """Runs one bundle's graph; thread-safe (ONNX Runtime sessions allow concurrent ``run``)."""

    def __init__(self, bundle: ModelBundle, options: EngineOptions | None = None) -> None:
        self.bundle = bundle
        self.options = options or EngineOptions()
        spec = bundle.manifest.input
        self.input_height, self.input_width = spec.height, spec.width
        providers = choose_providers(self.options.providers)
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = self.options.intra_op_threads
        session_options.inter_op_num_threads = self.options.inter_op_threads
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3
        session_options.enable_mem_pattern = self.options.memory_pattern
        spinning = "1" if self.options.allow_spinning else "0"
        session_options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        session_options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        try:
            self._session = ort.InferenceSession(
                str(bundle.model_path),
                sess_options=session_options,
                providers=[(name, _provider_options(name, self.options)) for name in providers],
            )
        except Exception as exc:  # onnxruntime raises bare RuntimeError subclasses
            msg = f"model {bundle.label}: ONNX Runtime cannot load {bundle.model_path.name} ({exc})"
            raise EngineError(msg) from exc
        self.providers = tuple(self._session.get_providers())
        if self.providers[0] != providers[0]:
            # ONNX Runtime falls back on its own when a provider cannot start (TensorRT
            # without libnvinfer, CUDA without cuDNN); a GPU node on the CPU must be loud.
            logger.warning(
                "engine fell back model=%s wanted=%s running=%s: ONNX Runtime could not start "
                "%s; install its libraries (TensorRT: libnvinfer, CUDA: cuDNN and cuBLAS) or "
                "set providers explicitly",
                bundle.label,
                providers[0],
                self.providers[0],
                providers[0],
            )
        self._input_name = self._session.get_inputs()[0].name
        self._output_names = [output.name for output in self._session.get_outputs()]
        logger.info("engine loaded model=%s providers=%s", bundle.label, ",".join(self.providers))

    def warm_up(self) -> None:
        """Run blank frames so the first real ones are not slow (and TensorRT builds).

        ``warmup_runs`` at batch 1, then once at ``warmup_batch_max``: the CPU
        arena then holds blocks for every smaller batch, and TensorRT's profile
        spans 1..max. One run per size would cost a swap ~4x the work (measured:
        it raised p99 during swaps on a busy 2-core box) for no faster first frame.
        """
        blank = np.zeros((1, self.input_height, self.input_width, 3), dtype=np.uint8)
        for _ in range(max(1, self.options.warmup_runs)):
            self.run(blank)
        if self.options.warmup_batch_max > 1:
            self.run(np.repeat(blank, self.options.warmup_batch_max, axis=0))

    def run(self, batch: npt.NDArray[np.uint8]) -> InferenceResult:
        """Run a batch that is already resized: uint8 (N, H, W, 3) BGR.

        Raises:
            EngineError: a wrong shape or an ONNX Runtime failure.
        """
        expected = (self.input_height, self.input_width, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != np.uint8:
            msg = f"engine: batch {batch.shape} {batch.dtype}, model wants (N, {expected}) uint8"
            raise EngineError(msg)
        started = time.perf_counter()
        try:
            outputs = self._session.run(self._output_names, {self._input_name: batch})
        except Exception as exc:  # onnxruntime's errors are untyped
            msg = f"model {self.bundle.label}: inference failed ({exc})"
            raise EngineError(msg) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        named = dict(zip(self._output_names, outputs, strict=True))
        return InferenceResult(
            image_scores=np.asarray(named["image_score"], dtype=np.float32).reshape(-1),
            anomaly_maps=np.asarray(named["anomaly_map"], dtype=np.float32),
            latency_ms=latency_ms,
        )

    def infer_images(self, images: Sequence[ImageArray]) -> InferenceResult:
        """Resize BGR images of any size and run them as one batch."""
        resized = [resize_for_model(img, self.input_height, self.input_width) for img in images]
        return self.run(np.stack(resized))


def default_thread_count() -> int:
    """Cores this process may use (respects CPU affinity, e.g. in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
