"""Benchmark the detector on real data sets (issue 11): one table, presets side by side.

For each data set in the MVTec AD layout (e.g. ``../shared/data/bsdata_pitting``,
read in place, never copied): train and evaluate each detector variant -- the
previous detector (December's defaults), the ``fast`` and ``accurate`` presets --
and print image AUROC, the false-alarm rate at 95% and at 100% of defects caught,
pixel AUROC, AUPRO, ONNX Runtime latency at batch 1 and 8 (measured round-robin
across the variants, so a busy machine slows all of them alike: compare ratios),
and training time. A peer row tries anomalib's PatchCore and says why it could
not run when it cannot.

    python bench/detector_real.py DATA... [--limit-train N] [--limit-test N]
                                  [--variants previous,fast,accurate] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cloud.dataset import load_layout
from cloud.evaluation import evaluate_bundle
from cloud.train import TrainSettings, train_bundle
from cloud.train_settings import PRESETS
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.imaging import read_image, resize_for_model

# December's defaults, written out: the detector every change is judged against.
PREVIOUS = TrainSettings.model_validate(
    {
        "input_size": 256,
        "bank_sizes": (8192, 4096),
        "feature_blocks": (4, 10),
        "colour_contrast_weight": 32.0,
        "patch_normalisation": True,
        "coreset_max_candidates": None,
        "skip_unreadable": False,
        "preset": "fast",  # a label only: every value that differs is written above
    }
)

ANOMALIB_TRIED = (
    "pip download --no-deps anomalib 2.7.0 + torchvision into a throwaway venv seeing this "
    "torch 2.13.0+cpu: torchvision 0.29.1 requires torch>=2.14 and 0.28.0 (the 2.13 pairing) "
    'both fail at import with "RuntimeError: operator torchvision::nms does not exist" '
    "(PyPI wheels are built against another torch build); anomalib imports torchvision "
    "(transforms, ops) throughout, so its PatchCore cannot be constructed here"
)


@dataclass(frozen=True)
class Row:
    data: str
    variant: str
    input_hw: tuple[int, int]
    image_auroc: float | None
    fpr_at_95: float | None
    fpr_at_100: float | None
    pixel_auroc: float | None
    aupro: float | None
    train_s: float
    n_train: int


def _spread(items: list[Path], limit: int | None) -> list[Path]:
    if limit is None or len(items) <= limit:
        return items
    index = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in index]


def _subset(data: Path, work: Path, limit_train: int | None, limit_test: int | None) -> Path:
    """A view of ``data`` made of symlinks: evenly spread train and per-type test images."""
    if limit_train is None and limit_test is None:
        return data
    view = work / f"view-{data.name}"
    layout = load_layout(data, require_test=True)
    links: list[tuple[Path, Path]] = [
        (path, view / "train" / "good" / path.name)
        for path in _spread(list(layout.train_good), limit_train)
    ]
    for defect in {item.defect_type for item in layout.test}:
        items = [item for item in layout.test if item.defect_type == defect]
        chosen = set(_spread([item.path for item in items], limit_test))
        for item in items:
            if item.path in chosen:
                links.append((item.path, view / "test" / defect / item.path.name))
                if item.mask_path is not None:
                    links.append(
                        (item.mask_path, view / "ground_truth" / defect / item.mask_path.name)
                    )
    for source, target in links:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve())
    return view


def _variants(names: list[str], tries: list[str]) -> dict[str, TrainSettings]:
    chosen = {}
    for name in filter(None, names):
        chosen[name] = PREVIOUS if name == "previous" else TrainSettings(preset=name)
    for entry in tries:
        name, _, values = entry.partition("=")
        chosen[name] = TrainSettings.model_validate(json.loads(values))
    return chosen


def _measure(data: Path, name: str, settings: TrainSettings, work: Path, threads: int) -> Row:
    bundle_dir = work / f"bundle-{data.name}-{name}"
    started = time.perf_counter()
    bundle = train_bundle(data, bundle_dir, name=data.name, settings=settings)
    train_s = time.perf_counter() - started
    outcome = evaluate_bundle(
        bundle_dir, data, engine_options=EngineOptions(intra_op_threads=threads)
    )
    report = outcome.report
    return Row(
        data=data.name,
        variant=name,
        input_hw=(bundle.manifest.input.height, bundle.manifest.input.width),
        image_auroc=report.image_auroc,
        fpr_at_95=report.fpr_at_95_recall,
        fpr_at_100=report.fpr_at_full_recall,
        pixel_auroc=report.pixel_auroc,
        aupro=report.aupro,
        train_s=train_s,
        n_train=bundle.manifest.training_data.n_train_good or 0,
    )


def _latencies(
    bundle_dirs: dict[str, Path], data: Path, threads: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Median ms per image at batch 1 and batch 8, variants measured in alternation."""
    from edge.runtime.bundle import load_bundle

    engines = {}
    frames = {}
    sample = [read_image(path) for path in load_layout(data).train_good[:8]]
    for name, path in bundle_dirs.items():
        engine = InferenceEngine(load_bundle(path), EngineOptions(intra_op_threads=threads))
        engine.warm_up()
        engines[name] = engine
        frames[name] = np.stack(
            [resize_for_model(image, engine.input_height, engine.input_width) for image in sample]
        )
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            started = time.perf_counter()
            engine.run(frames[name][:1])
            times[name][0].append((time.perf_counter() - started) * 1000.0)
            started = time.perf_counter()
            engine.run(frames[name])
            times[name][1].append((time.perf_counter() - started) * 1000.0 / 8)
    return {
        name: (statistics.median(b1), statistics.median(b8)) for name, (b1, b8) in times.items()
    }


def _peer_row() -> str:
    try:
        import torchvision  # noqa: F401
        from anomalib.models import Patchcore  # noqa: F401
    except Exception as exc:  # the bench reports whatever stops the peer
        return f"anomalib PatchCore: not run. Tried: {ANOMALIB_TRIED}. Here: {exc!r}"
    return "anomalib PatchCore: importable here, but the peer run is not wired in this bench"


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None, help="images per test folder")
    parser.add_argument("--variants", default="previous," + ",".join(PRESETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        metavar='NAME={"preset": "accurate", ...}',
        help="an extra variant: TrainSettings as JSON (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=30, help="latency repeats per variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = _variants(args.variants.split(","), args.tries)
    header = (
        f"{'data':16}{'detector':10}{'input':>9}{'AUROC':>7}{'FA@95':>7}{'FA@100':>7}"
        f"{'pxAUROC':>8}{'AUPRO':>7}{'b1 ms':>7}{'b8 ms':>7}{'train s':>8}{'s/500img':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines = []
        for source in args.data:
            data = _subset(source, work, args.limit_train, args.limit_test)
            rows = []
            for name, settings in variants.items():
                rows.append(_measure(data, name, settings, work, args.threads))
                print(f"measured {rows[-1]}", flush=True)
            latency = _latencies(
                {row.variant: work / f"bundle-{data.name}-{row.variant}" for row in rows},
                data,
                args.threads,
                args.rounds,
            )
            for row in rows:
                b1, b8 = latency[row.variant]
                lines.append(
                    f"{source.name[:15]:16}{row.variant:10}{row.input_hw[0]:>4}x{row.input_hw[1]:<4}"
                    f"{_fmt(row.image_auroc):>7}{_fmt(row.fpr_at_95):>7}{_fmt(row.fpr_at_100):>7}"
                    f"{_fmt(row.pixel_auroc):>8}{_fmt(row.aupro):>7}{b1:7.1f}{b8:7.1f}"
                    f"{row.train_s:8.0f}{row.train_s / max(row.n_train, 1) * 500:9.0f}"
                )
                print(lines[-1], flush=True)
        print(f"\n{args.threads} threads; latency: median ms per image, variants in alternation")
        print(header)
        print("\n".join(lines))
        print(_peer_row())


if __name__ == "__main__":
    main()
