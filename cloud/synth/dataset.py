"""Write a synthetic category in the MVTec AD layout, with masks, from a seed.

``OUT/train/good/000.png``, ``OUT/test/good/…``, ``OUT/test/<defect>/…`` and
``OUT/ground_truth/<defect>/<stem>_mask.png``, plus ``OUT/synth.json`` which
records how the data was made and which files are ours. Every image has its own
generator, ``numpy.random.default_rng([seed, split, index])``, so the same seed
gives byte-identical files and changing one count leaves the other images as
they were.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cloud.errors import DatasetError
from cloud.synth.defects import DEFECT_TYPES
from cloud.synth.parts import encode_png, normalise_size, render_part
from cloud.synth.textures import resolve_category
from cloud.types import ProgressCallback

__all__ = ["MANIFEST_NAME", "generate_dataset", "is_synth_dataset"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "synth.json"
_GENERATOR = "linewatch.synth"
_FORMAT_VERSION = 1
_LAYOUT_FOLDERS = frozenset({"train", "test", "ground_truth"})
# Split numbers seed the per-image generators; defects follow, in DEFECT_TYPES order.
_TRAIN_SPLIT = 0
_TEST_GOOD_SPLIT = 1
_FIRST_DEFECT_SPLIT = 2


@dataclass(frozen=True)
class _Job:
    """One image to write: where, from which generator, with which defect."""

    image: str
    mask: str | None
    split: int
    index: int
    defect_type: str | None


def _plan(n_train: int, n_test_good: int, n_test_per_defect: int) -> list[_Job]:
    jobs = [
        _Job(f"train/good/{index:03d}.png", None, _TRAIN_SPLIT, index, None)
        for index in range(n_train)
    ]
    jobs += [
        _Job(f"test/good/{index:03d}.png", None, _TEST_GOOD_SPLIT, index, None)
        for index in range(n_test_good)
    ]
    for offset, defect in enumerate(DEFECT_TYPES):
        jobs += [
            _Job(
                f"test/{defect}/{index:03d}.png",
                f"ground_truth/{defect}/{index:03d}_mask.png",
                _FIRST_DEFECT_SPLIT + offset,
                index,
                defect,
            )
            for index in range(n_test_per_defect)
        ]
    return jobs


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != _GENERATOR:
        return None
    return manifest


def is_synth_dataset(folder: Path) -> bool:
    """True when ``folder`` holds a ``synth.json`` written by this generator."""
    return _read_manifest(Path(folder)) is not None


def _is_our_file(relative: object) -> bool:
    """Only plain relative PNG paths inside the layout folders may ever be deleted."""
    if not isinstance(relative, str):
        return False
    path = PurePosixPath(relative)
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and len(path.parts) == 3
        and path.parts[0] in _LAYOUT_FOLDERS
        and path.suffix == ".png"
    )


def _remove_previous(out: Path, manifest: dict[str, Any]) -> None:
    """Delete the files an earlier run listed in its manifest, and folders left empty."""
    files = manifest.get("files", [])
    removed = 0
    for relative in files if isinstance(files, list) else []:
        if _is_our_file(relative):
            path = out / relative
            if path.is_file():
                path.unlink()
                removed += 1
    for top in sorted(_LAYOUT_FOLDERS):
        folder = out / top
        if not folder.is_dir():
            continue
        for child in sorted((path for path in folder.iterdir() if path.is_dir()), reverse=True):
            if not any(child.iterdir()):
                child.rmdir()
        if not any(folder.iterdir()):
            folder.rmdir()
    logger.info("removed previous synth files folder=%s count=%d", out, removed)


def _prepare(out: Path, *, overwrite: bool) -> None:
    """Make sure ``out`` may be written; never delete a file synth did not write."""
    if out.exists() and not out.is_dir():
        msg = f"output {out}: is a file, not a folder; choose a folder path for --out"
        raise DatasetError(msg)
    if not out.exists() or not any(out.iterdir()):
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"output {out}: cannot create the folder ({exc.strerror}); choose another --out"
            raise DatasetError(msg) from exc
        return
    previous = _read_manifest(out)
    if previous is not None:
        _remove_previous(out, previous)
        return
    if not overwrite:
        msg = (
            f"output {out}: folder is not empty and is not a synth dataset (no {MANIFEST_NAME}); "
            "choose an empty or new folder, or pass --overwrite to write over it"
        )
        raise DatasetError(msg)
    logger.warning("writing into a non-empty folder folder=%s; files synth did not write stay", out)


def _check_counts(seed: int, n_train: int, n_test_good: int, n_test_per_defect: int) -> None:
    if seed < 0:
        msg = f"seed {seed}: must be 0 or more"
        raise DatasetError(msg)
    if n_train < 1:
        msg = f"n_train {n_train}: training needs at least one good image"
        raise DatasetError(msg)
    for name, value in (("n_test_good", n_test_good), ("n_test_per_defect", n_test_per_defect)):
        if value < 0:
            msg = f"{name} {value}: must be 0 or more"
            raise DatasetError(msg)


def generate_dataset(
    out: Path,
    *,
    seed: int = 0,
    category: str = "metal",
    n_train: int = 60,
    n_test_good: int = 20,
    n_test_per_defect: int = 6,
    size: tuple[int, int] | int = 256,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a deterministic synthetic dataset in the MVTec AD layout.

    Tests, the demo and benchmarks train on it; the same seed always gives the
    same bytes, so results are comparable between runs and machines.

    Args:
        out: the category folder to write (created if missing).
        seed: 0 or more; the same seed gives byte-identical files.
        category: one of ``CATEGORIES`` (``metal``, ``gravel`` and the washers are grey).
        n_train: good images in ``train/good``.
        n_test_good: good images in ``test/good``.
        n_test_per_defect: images per defect type in ``test/<defect>``.
        size: ``256`` for square images or ``(width, height)``.
        overwrite: write into a non-empty folder that is not a synth dataset.
            Files synth did not write are never deleted.
        progress: called as ``progress(done, total)`` after each image.

    Returns:
        ``out``.

    Raises:
        DatasetError: a bad argument, or a non-empty foreign folder without ``overwrite``.
    """
    out = Path(out)
    resolve_category(category)
    width, height = normalise_size(size)
    _check_counts(seed, n_train, n_test_good, n_test_per_defect)
    jobs = _plan(n_train, n_test_good, n_test_per_defect)
    _prepare(out, overwrite=overwrite)
    files = [job.image for job in jobs] + [job.mask for job in jobs if job.mask is not None]
    manifest = {
        "generator": _GENERATOR,
        "format": _FORMAT_VERSION,
        "seed": seed,
        "category": category,
        "size": [width, height],
        "counts": {
            "train_good": n_train,
            "test_good": n_test_good,
            "test_per_defect": n_test_per_defect,
        },
        "defect_types": list(DEFECT_TYPES),
        "files": files,
    }
    # Written first, so an interrupted run is still recognised as ours next time.
    _write(out / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    logger.info(
        "writing synth dataset folder=%s category=%s seed=%d images=%d size=%dx%d",
        out,
        category,
        seed,
        len(jobs),
        width,
        height,
    )
    for done, job in enumerate(jobs, start=1):
        rng = np.random.default_rng([seed, job.split, job.index])
        part = render_part(category, rng, (width, height), job.defect_type)
        _write(out / job.image, encode_png(part.image))
        if job.mask is not None and part.mask is not None:
            _write(out / job.mask, encode_png(part.mask))
        if progress is not None:
            progress(done, len(jobs))
    return out


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        msg = (
            f"output {path}: cannot write ({exc.strerror}); "
            "check the folder's permissions and free space"
        )
        raise DatasetError(msg) from exc
