"""Crash-safe, private file writes.

- Writes: temp file, fsync, rename over, fsync the directory. A process killed at any
  point leaves either the old file or the new one, never half.
- Privacy: everything continuum writes under its data dir is readable by its owner only
  (files 0600, directories 0700), whatever the process umask.
- Containment: nothing is followed out of the data dir — a symlink where continuum
  expects its own file or directory is refused, never written through or deleted through.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from continuum.errors import ContinuumError

_LINK = "{path} is a symlink; continuum does not follow links in its data dir"
FILE_MODE = 0o600
DIR_MODE = 0o700


class UnsafePath(ContinuumError):
    """A path in the data dir is a symlink or leads outside it."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only; refuse a symlink on the way."""
    missing = []
    p = Path(path)
    while not p.exists() and not p.is_symlink():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    if p.is_symlink() and p not in missing:
        pass  # above the data dir's own tree (e.g. /tmp -> private/tmp): not ours to judge
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
        os.chmod(d, DIR_MODE)
    if Path(path).is_symlink():
        raise UnsafePath(_LINK.format(path=path))
    return Path(path)


def tighten(path: Path) -> None:
    """Make an existing file or directory of ours owner-only (files written by older
    versions, or under a permissive umask)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(_LINK.format(path=path))
        want = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
        if stat.S_IMODE(st.st_mode) != want:
            os.chmod(path, want)


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, owner-only (e.g. before SQLite opens it: its -wal
    and -shm files take the database file's permissions)."""
    private_dir(path.parent)
    if path.is_symlink():
        raise UnsafePath(_LINK.format(path=path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    os.close(fd)
    tighten(path)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    if path.is_symlink():
        raise UnsafePath(f"{path} is a symlink; continuum does not write through links")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp creates it 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def inside(root: Path, path: Path) -> Path:
    """``path`` if it is inside ``root`` with no symlink on the way from ``root``."""
    root = Path(root).absolute()
    path = Path(path).absolute()
    try:
        rel = path.relative_to(root)
    except ValueError as exc:
        raise UnsafePath(f"{path} is outside {root}") from exc
    p = root
    for part in rel.parts:
        if part in ("..", "."):
            raise UnsafePath(f"{path}: '..' is not allowed")
        p = p / part
        if p.is_symlink():
            raise UnsafePath(_LINK.format(path=p))
    return path


def safe_unlink(root: Path, path: Path) -> bool:
    """Delete one regular file of ours; never through a symlink."""
    path = inside(root, path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"{path} is not a regular file; not deleting it")
    path.unlink()
    return True


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files a killed writer left behind (they were never renamed in)."""
    removed = 0
    for tmp in directory.rglob(".*.tmp"):
        if tmp.is_symlink():
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
