"""Resumable uploads on the node: a partial file per upload, resumed from its size.

A bundle arrives as a tar in chunks. Each chunk names its offset in the whole
file; the node appends what it does not hold yet, so a sender whose stream
broke asks for the bytes held and carries on from there, and a chunk sent twice
is harmless. Nothing here trusts the bytes: ``unpack`` checks the whole tar
against the sha256 the sender announced, then unpacks it with tarfile's
``data`` filter. A full disk (or the model directory's quota) ends an upload
cleanly: its files are removed and the caller hears ``StagingFull``.

Room is reserved when an upload begins: its announced size (twice: the tar and
its unpacked copy) counts against the quota at once, so ten uploads announced at
once cannot together outgrow it. An upload that has not moved for
``partial_ttl_s`` is dropped, with its reservation. Bundles travel as plain,
uncompressed tars: a compressed one could unpack to far more than was announced.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import tarfile
import time
from pathlib import Path

from edge.runtime.bundle import MANIFEST_FILE, file_sha256
from edge.runtime.errors import BundleCorrupt, StagingFull, UploadCorrupt, UploadRejected

__all__ = [
    "StagingFull",
    "UploadArea",
    "UploadCorrupt",
    "UploadRejected",
    "check_safe_name",
]

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DEFAULT_PARTIAL_TTL_S = 3600.0


def check_safe_name(value: str, what: str) -> None:
    """Refuse a name that could not be a file name of its own (``..``, ``/``, spaces).

    Raises:
        UploadRejected: the name is unsafe.
    """
    if not _SAFE_NAME.match(value):
        msg = f"{what} {value!r}: use 1-128 letters, digits, '_', '.' or '-'"
        raise UploadRejected(msg)


class UploadArea:
    """Partial uploads under ``folder``; the caller serialises calls per upload."""

    def __init__(
        self,
        folder: Path,
        staging: Path,
        *,
        quota_root: Path,
        quota_bytes: int | None,
        partial_ttl_s: float = DEFAULT_PARTIAL_TTL_S,
    ) -> None:
        self.folder = folder
        self.staging = staging
        self.quota_root = quota_root
        self.quota_bytes = quota_bytes
        self.partial_ttl_s = partial_ttl_s
        for path in (folder, staging):
            path.mkdir(parents=True, exist_ok=True)

    def _part(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.part"

    def _meta(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.json"

    def received_bytes(self, upload_id: str) -> int:
        """Bytes held for ``upload_id``: where a resumed upload continues (0 if unknown)."""
        check_safe_name(upload_id, "upload id")
        part = self._part(upload_id)
        return part.stat().st_size if part.is_file() else 0

    def write_chunk(
        self, upload_id: str, offset: int, data: bytes, *, total_size: int, sha256: str
    ) -> int:
        """Store one chunk and return the bytes held; data already held is skipped.

        Raises:
            UploadRejected: a bad id, sha256 or size, an offset past the bytes held, or
                an upload id already used for another file.
            StagingFull: no room for the upload (disk full or over the quota).
        """
        check_safe_name(upload_id, "upload id")
        self._begin(upload_id, total_size, sha256)
        held = self.received_bytes(upload_id)
        if offset > held:
            msg = (
                f"upload {upload_id}: chunk at offset {offset}, but the node holds {held} "
                "bytes; ask UploadStatus and resume from there"
            )
            raise UploadRejected(msg)
        end = offset + len(data)
        if end > total_size:
            msg = f"upload {upload_id}: chunk ends at byte {end}, past total_size {total_size}"
            raise UploadRejected(msg)
        if end <= held:
            return held
        try:
            with self._part(upload_id).open("ab") as handle:
                handle.write(data[held - offset :])
                handle.flush()
        except OSError as exc:
            self._fail(upload_id, exc)
        return end

    def _begin(self, upload_id: str, total_size: int, sha256: str) -> None:
        meta_path = self._meta(upload_id)
        promise = {"total_size": total_size, "sha256": sha256}
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta != promise:
                msg = (
                    f"upload {upload_id}: already holds part of a {meta['total_size']}-byte file "
                    f"with sha256 {meta['sha256'][:12]}…; use a new upload id for another file"
                )
                raise UploadRejected(msg)
            return
        if not _SHA256.match(sha256) or total_size <= 0:
            msg = f"upload {upload_id}: total_size {total_size} and sha256 {sha256!r} are required"
            raise UploadRejected(msg)
        self.expire_stale()
        self._check_room(upload_id, total_size)
        try:
            meta_path.write_text(json.dumps(promise))
            self._part(upload_id).touch()
        except OSError as exc:
            self._fail(upload_id, exc)

    def _reserved_unwritten(self) -> int:
        """Bytes promised to uploads in progress but not on disk yet."""
        pending = 0
        for meta_path in self.folder.glob("*.json"):
            upload_id = meta_path.stem
            try:
                total = int(json.loads(meta_path.read_text())["total_size"])
            except (OSError, ValueError, KeyError):
                continue
            pending += max(0, 2 * total - self.received_bytes(upload_id))
        return pending

    def expire_stale(self) -> list[str]:
        """Drop uploads that have not moved for ``partial_ttl_s``; return their ids."""
        cutoff = time.time() - self.partial_ttl_s
        dropped: list[str] = []
        for meta_path in self.folder.glob("*.json"):
            upload_id = meta_path.stem
            part = self._part(upload_id)
            touched = max((p.stat().st_mtime for p in (meta_path, part) if p.exists()), default=0.0)
            if touched < cutoff:
                self.discard(upload_id)
                dropped.append(upload_id)
        if dropped:
            logger.warning("stale partial uploads dropped ids=%s", ",".join(dropped))
        return dropped

    def _check_room(self, upload_id: str, total_size: int) -> None:
        needed = 2 * total_size  # the tar and its unpacked copy
        reserved = self._reserved_unwritten()
        room = shutil.disk_usage(self.quota_root).free - reserved
        if self.quota_bytes is not None:
            used = sum(p.stat().st_size for p in self.quota_root.rglob("*") if p.is_file())
            room = min(room, self.quota_bytes - used - reserved)
        if needed > room:
            msg = (
                f"upload {upload_id}: staging needs {needed} bytes, the model dir "
                f"{self.quota_root} has room for {max(room, 0)}; free space or keep fewer bundles"
            )
            raise StagingFull(msg)

    def _fail(self, upload_id: str, exc: OSError) -> None:
        self.discard(upload_id)
        if exc.errno in _DISK_FULL:
            msg = f"upload {upload_id}: the disk under {self.quota_root} is full; upload removed"
            raise StagingFull(msg) from exc
        raise exc

    def discard(self, upload_id: str) -> None:
        """Forget an upload: its bytes, its promise and any half-unpacked copy."""
        self._part(upload_id).unlink(missing_ok=True)
        self._meta(upload_id).unlink(missing_ok=True)
        shutil.rmtree(self.staging / upload_id, ignore_errors=True)

    def is_complete(self, upload_id: str) -> bool:
        """Whether every announced byte has arrived."""
        meta_path = self._meta(upload_id)
        if not meta_path.is_file():
            return False
        total = int(json.loads(meta_path.read_text())["total_size"])
        return self.received_bytes(upload_id) == total

    def unpack(self, upload_id: str) -> Path:
        """Check a complete upload's sha256 and unpack it; return the bundle folder.

        The caller moves the folder away and calls ``discard``.

        Raises:
            UploadCorrupt: the bytes do not match the announced sha256.
            BundleCorrupt: an unsafe or unreadable tar, or one with no manifest.
            StagingFull: the disk filled while unpacking.
        """
        meta = json.loads(self._meta(upload_id).read_text())
        part = self._part(upload_id)
        actual = file_sha256(part)
        if actual != meta["sha256"]:
            msg = (
                f"upload {upload_id}: the {part.stat().st_size} bytes received have sha256 "
                f"{actual[:12]}…, the sender announced {meta['sha256'][:12]}…; the upload was "
                "corrupted on the way, push it again"
            )
            raise UploadCorrupt(msg)
        target = self.staging / upload_id
        shutil.rmtree(target, ignore_errors=True)
        try:
            target.mkdir(parents=True)
            # "r:" reads plain tars only: a compressed one could unpack to far more
            # than the bytes announced and reserved.
            with tarfile.open(part, "r:") as tar:
                _check_unpacked_size(tar, part.stat().st_size, upload_id)
                tar.extractall(target, filter="data")  # no links out, no devices, no abs paths
        except tarfile.TarError as exc:
            msg = f"upload {upload_id}: not a safe, readable tar ({exc}); push the bundle again"
            raise BundleCorrupt(msg) from exc
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                msg = f"upload {upload_id}: the disk under {self.quota_root} filled while unpacking"
                raise StagingFull(msg) from exc
            msg = f"upload {upload_id}: cannot unpack the tar ({exc}); push it again"
            raise BundleCorrupt(msg) from exc
        return _bundle_root(target, upload_id)


def _check_unpacked_size(tar: tarfile.TarFile, tar_bytes: int, upload_id: str) -> None:
    """Refuse a tar whose members claim more bytes than the tar itself holds (sparse files)."""
    claimed = sum(member.size for member in tar.getmembers() if member.isfile())
    if claimed > tar_bytes:
        msg = (
            f"upload {upload_id}: members claim {claimed} bytes unpacked, more than the "
            f"{tar_bytes}-byte tar holds; push a plain tar made by `linewatch deploy`"
        )
        raise BundleCorrupt(msg)


def _bundle_root(staging: Path, upload_id: str) -> Path:
    if (staging / MANIFEST_FILE).is_file():
        return staging
    children = [child for child in staging.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / MANIFEST_FILE).is_file():
        return children[0]
    msg = f"upload {upload_id}: the tar holds no {MANIFEST_FILE}; is it a Linewatch bundle?"
    raise BundleCorrupt(msg)
