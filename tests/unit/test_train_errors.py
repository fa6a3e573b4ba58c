"""Bad training input ends in a clear error naming the problem."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud.dataset import load_layout
from cloud.errors import DatasetError
from cloud.train import TrainSettings, train_bundle
from edge.runtime.errors import ImageDecodeError


def _good_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        cv2.imwrite(str(folder / f"{index:03d}.png"), rng.integers(0, 255, (64, 64), np.uint8))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        load_layout(tmp_path / "nope")


def test_not_mvtec_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match=r"no train/good folder; expected the MVTec AD layout"):
        load_layout(tmp_path)


def test_empty_train_good(tmp_path: Path) -> None:
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="train/good holds no images"):
        train_bundle(tmp_path, tmp_path / "out")


def test_too_few_images(tmp_path: Path) -> None:
    _good_images(tmp_path / "train" / "good", 2)
    with pytest.raises(DatasetError, match="need at least 4"):
        train_bundle(tmp_path, tmp_path / "out")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    _good_images(tmp_path / "train" / "good", 6)
    (tmp_path / "train" / "good" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    settings = TrainSettings(skip_unreadable=False)
    with pytest.raises(ImageDecodeError, match=r"broken\.png"):
        train_bundle(tmp_path, tmp_path / "out", settings=settings)
    assert not (tmp_path / "out").exists()


def test_a_few_corrupt_files_are_named_and_skipped_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _good_images(tmp_path / "train" / "good", 12)
    (tmp_path / "train" / "good" / "broken.png").write_bytes(b"garbage")
    settings = TrainSettings(input_size=64, bank_sizes=(64, 32))
    with caplog.at_level("WARNING", logger="cloud.train"):
        bundle = train_bundle(tmp_path, tmp_path / "out", settings=settings)
    assert bundle.manifest.training_data.n_train_good == 12
    assert "broken.png" in caplog.text


def test_many_corrupt_files_stop_training_with_their_names(tmp_path: Path) -> None:
    _good_images(tmp_path / "train" / "good", 6)
    for index in range(3):
        (tmp_path / "train" / "good" / f"broken{index}.png").write_bytes(b"garbage")
    settings = TrainSettings(input_size=64, bank_sizes=(64, 32))
    with pytest.raises(DatasetError, match=r"3 of 9 .*broken0\.png.*check the folder"):
        train_bundle(tmp_path, tmp_path / "out", settings=settings)


def test_too_few_readable_images_give_the_minimum(tmp_path: Path) -> None:
    _good_images(tmp_path / "train" / "good", 3)
    settings = TrainSettings(input_size=64, bank_sizes=(64, 32), skip_unreadable=False)
    with pytest.raises(DatasetError, match=r"3 readable good training images; need at least 4"):
        train_bundle(tmp_path, tmp_path / "out", settings=settings)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    _good_images(tmp_path / "data" / "train" / "good", 6)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    settings = TrainSettings(input_size=64, bank_sizes=(64, 32))
    with pytest.raises(Exception, match="not a bundle"):
        train_bundle(tmp_path / "data", tmp_path / "out", settings=settings)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
