"""A content-addressed image store: a file's name is the sha256 of its bytes.

The same image sent twice (a resend, or the same frame flagged twice) is kept
once. A file appears under its final name only when it is complete and on disk
(write a temporary file, fsync, rename, fsync the folder), so a crash never
leaves a row pointing at half an image.

``put_many`` keeps that promise for a whole batch at the cost of two flushes
instead of two per file: on Linux it writes every temporary file, flushes the
store's file system once (``syncfs``), renames them all, and flushes again. One
fsync costs about a millisecond on a plain disk, which capped the collector at a
few hundred images a second; elsewhere it falls back to a file at a time.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.errors import StoreError

__all__ = ["BlobStore", "MapFunction", "StoredBlob"]

logger = logging.getLogger(__name__)

MapFunction = Callable[..., Iterator[Any]]  # builtin ``map`` or ``Executor.map``
# syncfs(2) flushes one file system; Linux only, so elsewhere a file at a time.
_SYNCFS: Any = (
    getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None) if sys.platform == "linux" else None
)


@dataclass(frozen=True)
class StoredBlob:
    """Where a blob lives: ``path`` is relative to the store root."""

    sha256: str
    path: str
    size_bytes: int


class BlobStore:
    """Files under ``root/<sha[:2]>/<sha[2:4]>/<sha><suffix>``."""

    def __init__(self, root: Path) -> None:
        """Use (and create) ``root``.

        Raises:
            StoreError: the folder cannot be created.
        """
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"sample store {root}: cannot create it ({exc}); pass --store with a writable dir"
            raise StoreError(msg) from exc

    def put(self, data: bytes, suffix: str) -> StoredBlob:
        """Store ``data`` once and return where it is.

        Raises:
            StoreError: the file cannot be written (disk full, permissions).
        """
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest[2:4]}/{digest}{suffix}"
        target = self.root / relative
        if target.exists():
            return StoredBlob(digest, relative, len(data))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomically(target, data)
        except OSError as exc:
            msg = f"sample store {self.root}: cannot write {relative} ({exc}); check free disk"
            raise StoreError(msg) from exc
        return StoredBlob(digest, relative, len(data))

    def put_many(
        self, blobs: Sequence[tuple[bytes, str]], *, map_function: MapFunction = map
    ) -> list[StoredBlob]:
        """Store several blobs durably with two file-system flushes; order is kept.

        Args:
            blobs: ``(data, suffix)`` pairs.
            map_function: runs the hashing and writing, e.g. a thread pool's ``map``.

        Raises:
            StoreError: a file cannot be written or flushed (disk full, permissions).
        """
        stored = list(map_function(self._describe, blobs))
        missing = {b.path: data for b, (data, _) in zip(stored, blobs, strict=True)}
        missing = {path: data for path, data in missing.items() if not (self.root / path).exists()}
        if not missing:
            return stored
        if _SYNCFS is None:
            for path, data in missing.items():
                self.put(data, Path(path).suffix)
            return stored
        try:
            temporary = list(map_function(self._write_unsynced, missing.items()))
            self._sync_file_system()  # the contents are on disk before any name points at them
            for temp_name, path in temporary:
                os.replace(temp_name, self.root / path)
            self._sync_file_system()  # and so are the names, before a row names them
        except OSError as exc:
            msg = f"sample store {self.root}: cannot write images ({exc}); check free disk"
            raise StoreError(msg) from exc
        return stored

    def path_of(self, relative: str) -> Path:
        """Return the absolute path of a stored blob."""
        return self.root / relative

    @staticmethod
    def _describe(blob: tuple[bytes, str]) -> StoredBlob:
        data, suffix = blob
        digest = hashlib.sha256(data).hexdigest()
        return StoredBlob(digest, f"{digest[:2]}/{digest[2:4]}/{digest}{suffix}", len(data))

    def _write_unsynced(self, item: tuple[str, bytes]) -> tuple[str, str]:
        path, data = item
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return temp_name, path

    def _sync_file_system(self) -> None:
        folder = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(folder) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno))
        finally:
            os.close(folder)

    @staticmethod
    def _write_atomically(target: Path, data: bytes) -> None:
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
