"""Read a dataset in the MVTec AD layout.

``DATA/train/good/*`` (training reads only these), ``DATA/test/good/*``,
``DATA/test/<defect>/*`` and optional ``DATA/ground_truth/<defect>/<stem>_mask.png``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cloud.errors import DatasetError

__all__ = ["IMAGE_SUFFIXES", "DatasetLayout", "TestImage", "data_digest", "load_layout"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm"})
GOOD = "good"


@dataclass(frozen=True)
class TestImage:
    """One test image: its defect type (``good`` for none) and mask, if any."""

    path: Path
    defect_type: str
    mask_path: Path | None

    @property
    def is_anomalous(self) -> bool:
        """True for every defect type but ``good``."""
        return self.defect_type != GOOD


@dataclass(frozen=True)
class DatasetLayout:
    """The files of one MVTec-style category."""

    root: Path
    train_good: tuple[Path, ...]
    test: tuple[TestImage, ...]

    @property
    def defect_types(self) -> tuple[str, ...]:
        """Defect types present in ``test/``, sorted."""
        return tuple(sorted({item.defect_type for item in self.test if item.is_anomalous}))


def _images_in(folder: Path) -> tuple[Path, ...]:
    if not folder.is_dir():
        return ()
    files = (path for path in folder.iterdir() if path.is_file())
    return tuple(sorted(path for path in files if path.suffix.lower() in IMAGE_SUFFIXES))


def _mask_for(root: Path, defect_type: str, image: Path) -> Path | None:
    if defect_type == GOOD:
        return None
    folder = root / "ground_truth" / defect_type
    for candidate in (folder / f"{image.stem}_mask.png", folder / f"{image.stem}.png"):
        if candidate.is_file():
            return candidate
    return None


def load_layout(root: Path | str, *, require_test: bool = False) -> DatasetLayout:
    """List the images of a dataset in the MVTec AD layout.

    Args:
        root: the category folder (holding ``train/`` and ``test/``).
        require_test: also demand ``test/`` with at least one image (for evaluation).

    Raises:
        DatasetError: a missing folder, no ``train/good`` images, or no test images.
    """
    root = Path(root)
    if not root.is_dir():
        msg = f"dataset {root}: no such folder"
        raise DatasetError(msg)
    train_dir = root / "train" / GOOD
    if not train_dir.is_dir() and not require_test:
        msg = (
            f"dataset {root}: no train/good folder; expected the MVTec AD layout "
            "DATA/train/good/*.png, DATA/test/<defect>/*.png"
        )
        raise DatasetError(msg)
    train_good = _images_in(train_dir)
    if not train_good and not require_test:
        msg = f"dataset {root}: train/good holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        raise DatasetError(msg)
    test: list[TestImage] = []
    test_dir = root / "test"
    if test_dir.is_dir():
        for defect_dir in sorted(path for path in test_dir.iterdir() if path.is_dir()):
            for image in _images_in(defect_dir):
                mask = _mask_for(root, defect_dir.name, image)
                test.append(TestImage(image, defect_dir.name, mask))
    if require_test and not test:
        msg = (
            f"dataset {root}: test/ holds no images; expected DATA/test/good/*.png and "
            "DATA/test/<defect>/*.png"
        )
        raise DatasetError(msg)
    return DatasetLayout(root=root, train_good=train_good, test=tuple(test))


def data_digest(paths: tuple[Path, ...] | list[Path], root: Path) -> str:
    """sha256 over the relative names and bytes of the files, so a run names its data."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
