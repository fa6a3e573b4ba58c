"""Benchmark the edge engine on each execution provider this box offers, side by side.

For the CPU, CUDA and TensorRT (fp32 and fp16) providers that this onnxruntime
build offers, prints: the providers the session really runs on (ONNX Runtime
falls back silently when, say, TensorRT's libraries are missing), start time
including warm-up (and, for TensorRT, a second start from its engine cache),
latency at batch 1 (median), throughput at batch 8, and the largest difference
from the CPU's scores and maps on the same images. Needs only the edge extra:

    python bench/edge_gpu.py --bundle BUNDLE --images DIR [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.runtime.bundle import ModelBundle, load_bundle
from edge.runtime.engine import EngineOptions, InferenceEngine, available_providers
from edge.runtime.imaging import read_image, resize_for_model

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def _start(bundle: ModelBundle, options: EngineOptions) -> tuple[InferenceEngine, float]:
    started = time.perf_counter()
    engine = InferenceEngine(bundle, options)
    engine.warm_up()
    return engine, time.perf_counter() - started


def measure(
    bundle: ModelBundle,
    batch: npt.NDArray[np.uint8],
    options: EngineOptions,
    reference: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None,
    repeats: int,
) -> dict[str, Any]:
    """Start an engine with ``options`` and time it; compare with the CPU's outputs."""
    engine, start_s = _start(bundle, options)
    row: dict[str, Any] = {"providers": list(engine.providers), "start_s": start_s}
    if options.tensorrt_cache_dir is not None and engine.providers[0] == TRT:
        _, row["cached_start_s"] = _start(bundle, options)
    one, eight = batch[:1], batch[:8]
    row["batch1_ms"] = _median_ms(lambda: engine.run(one), repeats)
    row["batch8_img_s"] = 8000.0 / _median_ms(lambda: engine.run(eight), max(5, repeats // 4))
    result = engine.run(batch)
    if reference is not None:
        row["max_score_diff"] = float(np.abs(result.image_scores - reference[0]).max())
        row["max_map_diff"] = float(np.abs(result.anomaly_maps - reference[1]).max())
    row["outputs"] = (result.image_scores, result.anomaly_maps)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="a folder of images")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    size = bundle.manifest.input
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".png", ".jpg"})
    if len(paths) < 8:
        parser.error(f"{args.images}: need at least 8 images, found {len(paths)}")
    batch = np.stack([resize_for_model(read_image(p), size.height, size.width) for p in paths])
    offered = available_providers()
    print(f"onnxruntime {ort.__version__} ({ort.get_device()}), offers: {', '.join(offered)}")

    with tempfile.TemporaryDirectory() as cache:
        variants: dict[str, EngineOptions] = {"cpu": EngineOptions(providers=(CPU,))}
        if CUDA in offered:
            variants["cuda"] = EngineOptions(providers=(CUDA,))
        if TRT in offered:
            for label, fp16 in (("tensorrt fp32", False), ("tensorrt fp16", True)):
                variants[label] = EngineOptions(
                    providers=(TRT,),
                    tensorrt_cache_dir=Path(cache) / label.replace(" ", "-"),
                    tensorrt_fp16=fp16,
                )
        variants["auto (default order)"] = EngineOptions()
        rows: dict[str, dict[str, Any]] = {}
        reference = None
        for label, options in variants.items():
            try:
                row = measure(bundle, batch, options, reference, args.repeats)
            except Exception as exc:  # a provider that cannot start is a result, not a crash
                rows[label] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"{label}: cannot run ({rows[label]['error']})")
                continue
            outputs = row.pop("outputs")
            reference = reference or outputs
            rows[label] = row

    header = ("variant", "runs on", "start s", "cached s", "b1 ms", "b8 img/s", "Δscore", "Δmap")
    print("{:22}{:28}{:>8}{:>9}{:>8}{:>10}{:>9}{:>9}".format(*header))
    for label, row in rows.items():
        if "error" in row:
            continue
        print(
            f"{label:22}{row['providers'][0]:28}{row['start_s']:8.2f}"
            f"{row.get('cached_start_s', float('nan')):9.2f}{row['batch1_ms']:8.2f}"
            f"{row['batch8_img_s']:10.1f}{row.get('max_score_diff', 0.0):9.4f}"
            f"{row.get('max_map_diff', 0.0):9.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
