"""A content-addressed image store: a file's name is the sha256 of its bytes.

The same image sent twice (a resend, or the same frame flagged twice) is kept
once. A file appears under its final name only when it is complete and on disk
(write a temporary file, fsync, rename, fsync the folder), so a crash never
leaves a row pointing at half an image.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloud.errors import StoreError

__all__ = ["BlobStore", "StoredBlob"]

logger = logging.getLogger(__name__)


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

    def path_of(self, relative: str) -> Path:
        """Return the absolute path of a stored blob."""
        return self.root / relative

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
