"""One retrain at a time per model: a lock file holding the owner's pid.

The file is created with ``O_EXCL``, so of two retrains started together one
wins. It outlives a crash, which is why it carries the pid: a lock whose
process is gone is stale and is taken over (logged), so a restarted watcher
is never blocked by the one that died. A live owner makes the second retrain
refuse at once, naming the pid, rather than fit the same model twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from cloud.errors import RetrainBusy, StoreError

__all__ = ["model_lock"]

logger = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _owner(path: Path) -> int:
    try:
        return int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return 0


def _create(path: Path) -> bool:
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w") as file:
        file.write(f"{os.getpid()}\n")
    return True


@contextlib.contextmanager
def model_lock(state_dir: Path, name: str) -> Iterator[Path]:
    """Hold model ``name``'s retrain lock for the ``with`` block.

    Raises:
        RetrainBusy: a live process holds it.
        StoreError: the state folder cannot be written.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"retrain state {state_dir}: cannot create it ({exc}); pass a writable --state-dir"
        raise StoreError(msg) from exc
    path = state_dir / f"{name}.lock"
    if not _create(path):
        owner = _owner(path)
        if _alive(owner) and owner != os.getpid():
            msg = (
                f"model {name}: another retrain (pid {owner}) is running and holds {path}; "
                "wait for it to finish"
            )
            raise RetrainBusy(msg)
        logger.warning(
            "taking over a stale retrain lock model=%s path=%s pid=%d", name, path, owner
        )
        path.unlink(missing_ok=True)
        if not _create(path):
            msg = f"model {name}: another retrain took {path} just now; wait for it to finish"
            raise RetrainBusy(msg)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
