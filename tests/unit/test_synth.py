"""linewatch synth: deterministic, varied sample data in the MVTec AD layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from cloud.dataset import load_layout
from cloud.errors import DatasetError
from cloud.synth import (
    CATEGORIES,
    DEFECT_TYPES,
    MANIFEST_NAME,
    compose_part,
    generate_dataset,
    is_synth_dataset,
    paint_defect,
    read_video_labels,
    render_part,
    write_line_video,
)


def _small(
    out: Path,
    *,
    seed: int = 0,
    category: str = "metal",
    n_train: int = 2,
    size: int | tuple[int, int] = 64,
    overwrite: bool = False,
) -> Path:
    """A tiny dataset: a few 64 px images, one per defect type."""
    return generate_dataset(
        out,
        seed=seed,
        category=category,
        n_train=n_train,
        n_test_good=1,
        n_test_per_defect=1,
        size=size,
        overwrite=overwrite,
    )


def _read(path: Path) -> NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return np.asarray(image, dtype=np.uint8)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def metal_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _small(tmp_path_factory.mktemp("synth") / "metal")


def test_same_seed_gives_identical_bytes_and_other_seed_differs(
    tmp_path: Path, metal_dataset: Path
) -> None:
    again = _small(tmp_path / "again")
    other = _small(tmp_path / "other", seed=1)

    first, second, third = _files(metal_dataset), _files(again), _files(other)
    assert first == second
    images = [name for name in first if name.startswith(("train", "test"))]
    assert all(first[name] != third[name] for name in images)


def test_layout_reads_with_one_mask_per_defect_image(metal_dataset: Path) -> None:
    layout = load_layout(metal_dataset, require_test=True)

    assert len(layout.train_good) == 2
    assert layout.defect_types == tuple(sorted(DEFECT_TYPES))
    for item in layout.test:
        image = _read(item.path)
        if not item.is_anomalous:
            assert item.mask_path is None
            continue
        assert item.mask_path is not None
        mask = _read(item.mask_path)
        assert mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask == 255).any()
    assert not (metal_dataset / "ground_truth" / "good").exists()
    assert is_synth_dataset(metal_dataset)


def test_grey_category_writes_single_channel_and_colour_three(tmp_path: Path) -> None:
    grey = _small(tmp_path / "grey", category="metal")
    colour = _small(tmp_path / "colour", category="fabric")

    grey_image = _read(grey / "train/good/000.png")
    colour_image = _read(colour / "train/good/000.png")
    assert grey_image.shape == (64, 64)
    assert colour_image.shape == (64, 64, 3)
    assert {name for name, category in CATEGORIES.items() if category.channels == 1}
    assert {name for name, category in CATEGORIES.items() if category.channels == 3}


def test_non_square_size_is_width_by_height(tmp_path: Path) -> None:
    out = _small(tmp_path / "wide", category="brick", size=(96, 64))

    image = _read(out / "test/crack/000.png")
    mask = _read(out / "ground_truth/crack/000_mask.png")
    assert image.shape == (64, 96, 3)
    assert mask.shape == (64, 96)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_good_parts_vary_like_real_captures(category: str) -> None:
    first = render_part(category, np.random.default_rng([0, 0, 0]), 64).image.astype(float)
    second = render_part(category, np.random.default_rng([0, 0, 1]), 64).image.astype(float)

    assert np.abs(first - second).mean() > 2.0  # never pixel-identical parts
    assert abs(first.mean() - second.mean()) < 40.0  # yet the same material


@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.parametrize("defect_type", DEFECT_TYPES)
def test_defect_changes_pixels_inside_its_mask_not_outside(category: str, defect_type: str) -> None:
    rng = np.random.default_rng([3, DEFECT_TYPES.index(defect_type)])
    surface, _ = compose_part(category, rng, 96)

    damaged, mask = paint_defect(surface, defect_type, rng)

    change = np.abs(damaged - surface).max(axis=2) * 255.0
    inside, outside = change[mask == 255], change[mask == 0]
    assert inside.size > 0 and outside.size > 0
    assert inside.mean() > 3.0
    assert outside.mean() < 0.5
    assert inside.mean() > 10 * outside.mean()


@pytest.mark.parametrize("category", ["washer", "loose_washer"])
@pytest.mark.parametrize("defect_type", DEFECT_TYPES)
def test_an_objects_defects_lie_on_the_object(category: str, defect_type: str) -> None:
    washer = CATEGORIES[category]
    assert washer.defect_region is not None
    for index in range(4):
        rng = np.random.default_rng([7, DEFECT_TYPES.index(defect_type), index])
        part = compose_part(category, rng, 128)[0]
        face = washer.defect_region(part)
        assert 0.2 < face.mean() < 0.6  # a ring, not the whole frame
        _, mask = compose_part(category, np.random.default_rng([7, index]), 128, defect_type)
        assert mask is not None and mask.any()
        surface = compose_part(category, np.random.default_rng([7, index]), 128)[0]
        assert not (mask > 0)[~washer.defect_region(surface)].any()


def test_a_loose_washer_lies_anywhere_a_fixed_one_does_not() -> None:
    def centres(category: str) -> np.ndarray:
        found = []
        for index in range(12):
            part = compose_part(category, np.random.default_rng([9, index]), 128)[0]
            ys, xs = np.nonzero(part.mean(axis=-1) > 0.3)
            found.append((ys.mean(), xs.mean()))
        return np.array(found)

    assert centres("washer").std(axis=0).max() < 2.0  # pixels of 128
    assert centres("loose_washer").std(axis=0).min() > 5.0


def test_subtle_and_obvious_defects_both_occur() -> None:
    contrasts = []
    for index in range(24):
        rng = np.random.default_rng([5, index])
        surface, _ = compose_part("metal", rng, 64)
        damaged, mask = paint_defect(surface, "spot", rng)
        contrasts.append(float(np.abs(damaged - surface)[mask == 255].mean() * 255.0))
    assert min(contrasts) < 12.0  # subtle: a few grey levels on average over the mask
    assert max(contrasts) > 2 * min(contrasts)


def test_refuses_non_empty_foreign_folder_and_never_deletes(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    keep = folder / "holiday.jpg"
    keep.write_bytes(b"not ours")

    with pytest.raises(DatasetError, match=r"photos.*not a synth dataset"):
        _small(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["holiday.jpg"]

    _small(folder, overwrite=True)
    assert keep.read_bytes() == b"not ours"
    assert (folder / MANIFEST_NAME).is_file()


def test_rewriting_a_synth_dataset_drops_stale_images_and_keeps_user_files(
    tmp_path: Path,
) -> None:
    out = _small(tmp_path / "data", n_train=3)
    note = out / "notes.txt"
    note.write_text("mine")

    _small(out)

    assert sorted(path.name for path in (out / "train/good").iterdir()) == ["000.png", "001.png"]
    assert note.read_text() == "mine"


def test_unknown_category_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'marble' is unknown; choose one of: metal"):
        _small(tmp_path / "x", category="marble")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("size", [8, (64, 10_000)])
def test_size_out_of_bounds_is_refused(tmp_path: Path, size: int | tuple[int, int]) -> None:
    with pytest.raises(DatasetError, match="image size"):
        _small(tmp_path / "x", size=size)


def test_line_video_opens_with_right_frame_count_and_labels(tmp_path: Path) -> None:
    video = write_line_video(
        tmp_path / "line" / "line.avi",
        seed=2,
        category="wood",
        n_frames=12,
        fps=10.0,
        defect_rate=0.5,
        size=(80, 64),
        frames_per_part=3,
    )

    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 12
    assert frames[0].shape == (64, 80, 3)
    labels = read_video_labels(video)
    assert labels.n_frames == 12 and len(labels.parts) == 4
    defective_parts = [part for part in labels.parts if part.defect_type is not None]
    assert len(defective_parts) == 2
    assert len(labels.defective_frames) == 6
    assert {part.defect_type for part in defective_parts} <= set(DEFECT_TYPES)


def test_line_video_must_be_avi(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"\.avi"):
        write_line_video(tmp_path / "line.mp4", n_frames=2, size=64)
