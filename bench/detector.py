"""Benchmark the detector (issue: detector): quality, training speed, inference speed, size.

Prints, on this machine, for each synthetic category: image AUROC, false-alarm
rate at full recall, recall and false alarms at the bundle's threshold, training
seconds per 100 images -- for the default detector and, side by side on the same
data, without the colour-contrast channels and without per-location
normalisation of the patch distances, and with the Gaussian density head
joined by max or by mean (``density_head``); for wide strips (512x192 images), the
input shaped like the images against the same pixel budget squashed into a
square; then, on one bundle at the default input size: ONNX Runtime latency at
batch 1 (median of repeats) and throughput at batch 8, torch eager on the same
model side by side, and the bundle size.

    python bench/detector.py [--categories metal,fabric] [--wide-categories wood]
                             [--n-test-good 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from detector_real import PREVIOUS  # bench/ is on the path when run as a script
from sklearn.metrics import roc_auc_score

from cloud.dataset import load_layout
from cloud.synth import CATEGORIES, generate_dataset
from cloud.train import TrainSettings, fit_model, train_bundle
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.imaging import read_image, resize_for_model


def _median_ms(run: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def quality(data: Path, bundle_dir: Path, settings: TrainSettings) -> dict[str, float]:
    started = time.perf_counter()
    bundle = train_bundle(data, bundle_dir, name=data.name, settings=settings)
    train_s = time.perf_counter() - started
    layout = load_layout(data, require_test=True)
    engine = InferenceEngine(bundle, EngineOptions(intra_op_threads=torch.get_num_threads()))
    scores = np.concatenate(
        [
            engine.infer_images(
                [read_image(item.path) for item in layout.test[i : i + 8]]
            ).image_scores
            for i in range(0, len(layout.test), 8)
        ]
    )
    labels = np.array([item.is_anomalous for item in layout.test])
    lowest_defect = scores[labels].min()
    threshold = bundle.manifest.decision.threshold
    return {
        "image_auroc": float(roc_auc_score(labels, scores)),
        "fpr_at_full_recall": float((scores[~labels] >= lowest_defect).mean()),
        "recall_at_threshold": float((scores[labels] >= threshold).mean()),
        "false_alarm_at_threshold": float((scores[~labels] >= threshold).mean()),
        "train_s_per_100": train_s / len(layout.train_good) * 100.0,
    }


def speed(
    bundle: ModelBundle, data: Path, settings: TrainSettings, threads: int, repeats: int
) -> None:
    engine = InferenceEngine(bundle, EngineOptions(intra_op_threads=threads, warmup_runs=5))
    engine.warm_up()
    height, width = bundle.manifest.input.height, bundle.manifest.input.width
    layout = load_layout(data)
    images = [resize_for_model(read_image(path), height, width) for path in layout.train_good]
    one, eight = np.stack(images[:1]), np.stack(images[:8])
    ort_b1 = _median_ms(lambda: engine.run(one), repeats)
    ort_b8 = _median_ms(lambda: engine.run(eight), max(5, repeats // 5))
    model, _ = fit_model(images[: len(images) - 5], images[-5:], settings)
    with torch.inference_mode():
        torch_one, torch_eight = torch.from_numpy(one), torch.from_numpy(eight)
        model(torch_one)
        torch_b1 = _median_ms(lambda: model(torch_one), max(5, repeats // 2))
        torch_b8 = _median_ms(lambda: model(torch_eight), max(3, repeats // 10))
    bundle_bytes = sum(p.stat().st_size for p in bundle.directory.rglob("*") if p.is_file())
    providers = ",".join(engine.providers)
    print(f"\ninference at {height}x{width}, {threads} threads, providers {providers}")
    print(f"{'':24}{'batch 1 ms':>12}{'batch 8 img/s':>15}")
    print(f"{'ONNX Runtime':24}{ort_b1:12.2f}{8000 / ort_b8:15.1f}")
    print(f"{'torch eager':24}{torch_b1:12.2f}{8000 / torch_b8:15.1f}")
    print(f"{'speed-up (torch / ORT)':24}{torch_b1 / ort_b1:12.2f}{torch_b8 / ort_b8:15.2f}")
    model_mb = bundle.model_path.stat().st_size / 1e6
    print(f"bundle size: {bundle_bytes / 1e6:.2f} MB (model.onnx {model_mb:.2f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--wide-categories", default="wood,metal")
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test-good", type=int, default=60)
    parser.add_argument("--n-test-per-defect", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants", default="", help="only these detectors, e.g. previous,default (all if empty)"
    )
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = TrainSettings()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        variants = {
            "previous": PREVIOUS,
            "default": settings,
            "accurate": TrainSettings(preset="accurate"),
            "no-colour": settings.model_copy(update={"colour_contrast_weight": 0.0}),
            "no-patch-norm": settings.model_copy(update={"patch_normalisation": False}),
            "density-max": settings.model_copy(update={"density_head": "max"}),
            "density-mean": settings.model_copy(update={"density_head": "mean"}),
        }
        header = ("category", "detector", "AUROC", "FPR@100%rec", "recall@thr", "FA@thr", "s/100")
        print("{:14}{:15}{:>7}{:>13}{:>12}{:>8}{:>7}".format(*header))
        wide_variants = {
            "keep-aspect": settings,
            "square-input": settings.model_copy(update={"keep_aspect_ratio": False}),
        }
        if args.variants:
            variants = {name: variants[name] for name in args.variants.split(",")}
        runs = [(category, "", (256, 256), variants) for category in args.categories.split(",")]
        runs += [
            (category, "-wide", (512, 192), wide_variants)
            for category in filter(None, args.wide_categories.split(","))
        ]
        for category, tag, size, compared in runs:
            data = generate_dataset(
                work / f"{category}{tag}",
                seed=1,
                category=category,
                n_train=args.n_train,
                n_test_good=args.n_test_good,
                n_test_per_defect=args.n_test_per_defect,
                size=size,
            )
            for label, variant in compared.items():
                row = quality(data, work / f"bundle-{category}{tag}-{label}", variant)
                print(
                    f"{category + tag:14}{label:15}{row['image_auroc']:7.3f}"
                    f"{row['fpr_at_full_recall']:13.3f}{row['recall_at_threshold']:12.3f}"
                    f"{row['false_alarm_at_threshold']:8.3f}{row['train_s_per_100']:7.1f}",
                    flush=True,
                )
        first = args.categories.split(",")[0]
        from edge.runtime.bundle import load_bundle

        speed(
            load_bundle(work / f"bundle-{first}-default"),
            work / first,
            settings,
            args.threads,
            args.repeats,
        )


if __name__ == "__main__":
    main()
