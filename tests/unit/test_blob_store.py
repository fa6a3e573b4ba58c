"""The content-addressed image store: batches, duplicates, crashes and a full disk."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cloud.collector.store import BlobStore
from cloud.errors import StoreError


def test_a_batch_lands_under_content_names_in_order_and_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    blobs = [(b"first image", ".png"), (b"second", ".jpg"), (b"first image", ".png")]
    with ThreadPoolExecutor(2) as pool:
        stored = store.put_many(blobs, map_function=pool.map)
    assert [blob.sha256 for blob in stored] == [hashlib.sha256(d).hexdigest() for d, _ in blobs]
    assert stored[0].path == stored[2].path and stored[1].path.endswith(".jpg")
    assert store.path_of(stored[1].path).read_bytes() == b"second"
    assert not list((tmp_path / "store").rglob(".incoming-*")), "temporary files were left"
    again = store.put_many([(b"second", ".jpg")])  # already there: nothing rewritten
    assert again == [stored[1]]


def test_a_full_disk_keeps_nothing_half_written(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    digest = hashlib.sha256(b"image").hexdigest()
    # A file where the image's folder should be: the write fails like a full disk would.
    (tmp_path / "store" / digest[:2]).write_bytes(b"")
    with pytest.raises(StoreError, match="cannot write images"):
        store.put_many([(b"image", ".png"), (b"other image", ".png")])
    assert not list((tmp_path / "store").rglob(".incoming-*"))


def test_start_up_sweeps_what_a_crash_left_but_not_a_neighbours_fresh_files(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path / "store")
    folder = tmp_path / "store" / "ab" / "cd"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".incoming-stale", folder / ".incoming-fresh"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    an_hour_ago = time.time() - 3700
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert store.sweep_incoming() == 1
    assert not stale.exists() and fresh.exists()
