"""How much does retraining on reviewed normals help, what does it cost, does it miss more?

Version 1 is trained on part of a line's good images. Good images it never saw
play the reviewed normals (10, 50, 200 of them), and a further set of unseen
good images measures whether what was learnt carries over to the next parts.
For each count, the candidate is fitted incrementally (production's banks grown
with the new normals' patches) and fully (every image again), and each model
is scored through ONNX Runtime at its own threshold:

- false alarms on the unseen good images and on test/good, before and after;
- misses on the test defects, before and after (must not rise);
- fit time of the incremental and the full fit.

Usage:
    python bench/retrain.py                      # a synthetic line (generated in a temp dir)
    python bench/retrain.py --data /work/shared/data/bsdata_pitting --input-size 256 \\
        --n-train 120 --n-eval 60 --n-test 60

On a shared machine the times are noisy; compare the two fits within one run.

One run on 2 shared CPU cores (noisy), false alarms / misses at each model's threshold:

    synthetic metal, 128 px, v1 on 40 goods, 60 unseen goods, 30 test/good, 36 defects
    normals  method       fit_s  FA unseen  FA test/good  misses
          0  (v1)                        1             0       1
         10  incremental    0.8         10             5       1
         10  full           2.0          3             1       1
         50  incremental    2.4          2             2       1
         50  full           2.9          1             2       1
        200  incremental   27.1          2             1       1
        200  full           9.0          1             1       1

    bsdata_pitting, 256 px, v1 on 100 goods, 60 unseen goods, 40 test/good, 40 pitting
          0  (v1)                        0             0      10
         10  incremental    3.2          1             5       7
         10  full          23.1          0             0      12
         50  incremental   14.3          1            15       7
         50  full          30.8          0             0      12
        200  incremental   77.1          0             4       9
        200  full          43.7          0             0      11

The gate would refuse every pitting candidate here (full: new misses; incremental:
more false alarms on test/good), which is its job: v1 already raises no false
alarm on unseen goods at its threshold, so there is nothing to trade.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cloud.dataset import load_layout
from cloud.retrain.refit import FitMethod, fit_candidate, write_candidate
from cloud.retrain.regression import score_set
from cloud.retrain.training_set import (
    ReviewedSample,
    ReviewedSamples,
    next_training_set,
    previous_training_set,
)
from cloud.train import TrainSettings, decision_policy, train_bundle
from edge.runtime.bundle import ModelBundle, file_sha256


def _synthetic(root: Path, n_train: int, extra: int, size: int) -> Path:
    from cloud.synth import generate_dataset

    return generate_dataset(
        root / "line", seed=0, n_train=n_train + extra, n_test_good=30, n_test_per_defect=6,
        size=size,
    )  # fmt: skip


def _subset(data: Path, root: Path, n_train: int, n_test: int) -> tuple[Path, list[Path]]:
    """A dataset of links: the first ``n_train`` good images train v1; the rest are spare."""
    layout = load_layout(data, require_test=True)
    goods = list(layout.train_good)
    out = root / "v1data"
    (out / "train" / "good").mkdir(parents=True)
    for path in goods[:n_train]:
        (out / "train" / "good" / path.name).symlink_to(path)
    by_type: dict[str, list[Path]] = {}
    for item in layout.test:
        by_type.setdefault(item.defect_type, []).append(item.path)
    for defect_type, paths in by_type.items():
        folder = out / "test" / defect_type
        folder.mkdir(parents=True)
        stride = max(1, len(paths) // n_test)
        for path in paths[::stride][:n_test]:
            (folder / path.name).symlink_to(path)
    return out, goods[n_train:]


def _flagged(bundle: ModelBundle, paths: Sequence[Path]) -> int:
    threshold = bundle.manifest.decision.threshold
    return sum(score >= threshold for score in score_set(bundle, paths))


def _figures(bundle: ModelBundle, eval_goods: list[Path], data: Path) -> tuple[int, int, int]:
    layout = load_layout(data, require_test=True)
    good = [item.path for item in layout.test if not item.is_anomalous]
    defects = [item.path for item in layout.test if item.is_anomalous]
    caught = _flagged(bundle, defects)
    return _flagged(bundle, eval_goods), _flagged(bundle, good), len(defects) - caught


def main(argv: list[str] | None = None) -> None:
    """Print one row per (reviewed normals, fit method)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="MVTec-layout dataset; default: synthetic")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=40, help="good images v1 learns from")
    parser.add_argument("--n-eval", type=int, default=60, help="unseen good images to measure")
    parser.add_argument("--n-test", type=int, default=60, help="test images per type, at most")
    parser.add_argument("--counts", default="10,50,200", help="reviewed normals per retrain")
    args = parser.parse_args(argv)
    counts = [int(value) for value in args.counts.split(",")]
    settings = TrainSettings(input_size=args.input_size, bank_sizes=(2048, 1024))
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as workdir:
        root = Path(workdir)
        if args.data is None:
            source = _synthetic(root, args.n_train, max(counts) + args.n_eval, args.input_size)
        else:
            source = args.data
        data, spare = _subset(source, root, args.n_train, args.n_test)
        eval_goods, reviewable = spare[: args.n_eval], spare[args.n_eval :]
        started = time.perf_counter()
        v1 = train_bundle(data, root / "v1", name="bench", settings=settings)
        print(f"v1: {args.n_train} good images, full train {time.perf_counter() - started:.1f}s")
        before = _figures(v1, eval_goods, data)
        print(
            f"{'normals':>8} {'method':>12} {'fit_s':>7} {'FA unseen':>10} {'FA test/good':>13} "
            f"{'misses':>7}"
        )
        print(f"{0:>8} {'(v1)':>12} {'':>7} {before[0]:>10} {before[1]:>13} {before[2]:>7}")
        previous, root_dir, _ = previous_training_set(v1.manifest, settings)
        for count in counts:
            normals = tuple(
                ReviewedSample(f"r{i}", "normal", "bench", path, file_sha256(path))
                for i, path in enumerate(reviewable[:count])
            )
            built = next_training_set(
                previous, ReviewedSamples(normals=normals, defects=()), data_root=root_dir
            )
            for method in (FitMethod.INCREMENTAL, FitMethod.FULL):
                fitted = fit_candidate(v1, built, settings, method=method)
                candidate = write_candidate(
                    root / f"c{count}{method}", v1, fitted, built, settings,
                    decision_policy(fitted.stats, settings),
                )  # fmt: skip
                after = _figures(candidate, eval_goods, data)
                print(
                    f"{len(normals):>8} {method.value:>12} {fitted.fit_s:>7.1f} "
                    f"{after[0]:>10} {after[1]:>13} {after[2]:>7}"
                )
        print(f"({len(eval_goods)} unseen good, test from {data}; times noisy on a shared CPU)")


if __name__ == "__main__":
    main()
