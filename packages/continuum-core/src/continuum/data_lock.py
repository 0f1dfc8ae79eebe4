"""One writer per data dir: a running runtime holds ``<data>/.runtime.lock``, and a
command that changes what the runtime holds in memory (forgetting an entry, rebuilding
the index, linking people, adding adapters) takes the same lock or is refused with one
clear line. Without it, ``continuum memory forget`` under a serving runtime left the
runtime's index pointing at an entry that no longer existed, and every later turn of that
persona failed until a restart."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from continuum.errors import ContinuumError, DataDirInUse
from continuum.memory.atomic import private_dir


def _acquire(root: Path, refused: str) -> FileLock:
    lock = FileLock(str(root / ".runtime.lock"), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise DataDirInUse(refused) from exc
    return lock


def lock_data_dir(root: Path) -> FileLock:
    """Take the data dir's lock for a runtime (held until released)."""
    if root.exists() and not root.is_dir():
        raise ContinuumError(f"the data dir {root} is a file, not a directory")
    private_dir(root)
    return _acquire(
        root,
        f"another continuum process is using {root} (its persona state would be "
        "overwritten); stop it, or give this one its own data dir",
    )


@contextmanager
def exclusive_data_dir(root: Path, what: str) -> Iterator[None]:
    """Hold the data dir for a command that writes ``what``; refused while a runtime
    (``continuum serve``, ``continuum room``) is using it."""
    if not root.exists():
        yield
        return
    lock = _acquire(
        root,
        f"{what}: a running continuum (serve or room) is using {root}; stop it first, "
        "then run this again (the runtime keeps this data in memory)",
    )
    try:
        yield
    finally:
        lock.release()
