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

import contextlib
import ctypes
import hashlib
import logging
import os
import secrets
import sys
import time
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


@dataclass
class _Staged:
    """A blob of a batch: ``temp_name`` is set while its new file waits to be renamed."""

    blob: StoredBlob
    temp_name: str = ""
    error: OSError | None = None


class BlobStore:
    """Files under ``root/<sha[:2]>/<sha[2:4]>/<sha><suffix>``."""

    def __init__(self, root: Path) -> None:
        """Use (and create) ``root``.

        Raises:
            StoreError: the folder cannot be created.
        """
        self.root = root
        self._folders: set[Path] = set()  # created already: one mkdir per folder, not per image
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"sample store {root}: cannot create it ({exc}); pass --store with a writable dir"
            raise StoreError(msg) from exc

    def put(self, data: bytes, suffix: str) -> StoredBlob:
        """Store ``data`` once, durably, and return where it is (``put_many`` of one).

        Raises:
            StoreError: the file cannot be written (disk full, permissions).
        """
        return self.put_many([(data, suffix)])[0]

    def put_many(
        self, blobs: Sequence[tuple[bytes, str]], *, map_function: MapFunction = map
    ) -> list[StoredBlob]:
        """Store several blobs durably with two file-system flushes; order is kept.

        Each blob is hashed and, when new, written to a temporary file in one task
        (one pass through ``map_function``: a pool thread that hands the GIL back
        and forth for every step waits for it each time).

        Args:
            blobs: ``(data, suffix)`` pairs.
            map_function: runs the hashing and writing, e.g. a thread pool's ``map``.

        Raises:
            StoreError: a file cannot be written or flushed (disk full, permissions).
        """
        staged: list[_Staged] = list(map_function(self._stage, blobs))
        try:
            failed = next((one.error for one in staged if one.error is not None), None)
            if failed is not None:
                raise failed
            incoming = [one for one in staged if one.temp_name]
            if incoming:
                if _SYNCFS is not None:  # the contents are on disk before any name points at them
                    self._sync_file_system()
                for one in incoming:
                    os.replace(one.temp_name, self.root / one.blob.path)
                    one.temp_name = ""
                self._sync_folders(incoming)  # and so are the names, before a row names them
        except OSError as exc:
            self._discard(staged)
            msg = f"sample store {self.root}: cannot write images ({exc}); check free disk"
            raise StoreError(msg) from exc
        except BaseException:
            self._discard(staged)
            raise
        return [one.blob for one in staged]

    def sweep_incoming(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files a crash left behind; return how many.

        A file is renamed to its final name only once complete, so an old
        ``.incoming-*`` file belongs to no row and no acknowledged message. Young
        ones are left alone: another collector sharing the store may be writing them.
        """
        removed = 0
        cutoff = time.time() - older_than_s
        for leftover in self.root.glob("*/*/.incoming-*"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            logger.warning("removed %d unfinished image(s) a crash left in %s", removed, self.root)
        return removed

    def path_of(self, relative: str) -> Path:
        """Return the absolute path of a stored blob."""
        return self.root / relative

    def _stage(self, blob: tuple[bytes, str]) -> _Staged:
        data, suffix = blob
        digest = hashlib.sha256(data).hexdigest()
        stored = StoredBlob(digest, f"{digest[:2]}/{digest[2:4]}/{digest}{suffix}", len(data))
        target = self.root / stored.path
        if target.exists():
            return _Staged(stored)
        folder = target.parent
        temp_name = f"{folder}/.incoming-{digest[:16]}-{secrets.token_hex(4)}"
        try:
            if folder not in self._folders:
                folder.mkdir(parents=True, exist_ok=True)
                self._folders.add(folder)
            fd = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if _SYNCFS is None:  # no file-system flush: each file is flushed on its own
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:  # reported by put_many, after every task has finished
            with contextlib.suppress(OSError):
                Path(temp_name).unlink(missing_ok=True)
            self._folders.discard(folder)  # a folder removed under us is made again next time
            return _Staged(stored, error=exc)
        return _Staged(stored, temp_name)

    def _sync_folders(self, renamed: list[_Staged]) -> None:
        if _SYNCFS is not None:
            self._sync_file_system()
            return
        for folder in {(self.root / one.blob.path).parent for one in renamed}:
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    @staticmethod
    def _discard(staged: list[_Staged]) -> None:
        for one in staged:
            if one.temp_name:
                with contextlib.suppress(OSError):
                    Path(one.temp_name).unlink(missing_ok=True)

    def _sync_file_system(self) -> None:
        folder = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(folder) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno))
        finally:
            os.close(folder)
