"""Temporary folders under ``DATRIX_HOME/tmp`` that say whether their owner still lives.

An ingest converting a file to Parquet, or a job spilling to disk, writes into a folder
of its own. Killed half-way, it leaves that folder behind (a half-written Parquet can be
gigabytes). Each folder holds an ``.owner`` file its process keeps locked (``flock``)
for the folder's life; the kernel drops the lock when the process dies, however it dies.
``sweep`` removes the folders whose lock it can take, so it never touches the folder of a
live process, and a process id that the system reuses fools nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from datrix.streams.private_state import private_dirs

OWNER = ".owner"
# A folder without an owner file: a process between creating the folder and locking it
# (microseconds), or one left by a version before owner files. Removed once this old.
UNOWNED_GRACE_S = 3600.0

_held: dict[Path, int] = {}


def owned_tempdir(root: Path, prefix: str = "tmp-") -> Path:
    """A new folder under ``root``, owned by this process until ``release`` (or its end)."""
    private_dirs(root)
    while True:
        path = Path(tempfile.mkdtemp(dir=root, prefix=f"{prefix}{os.getpid()}-"))
        fd = os.open(path / OWNER, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_ours(path, fd):
            _held[path] = fd
            return path
        # Another process's sweep took the lock between our open and flock (the file was
        # not locked yet), removed the folder, then let go: ours is gone. Make another.
        os.close(fd)


def _still_ours(path: Path, fd: int) -> bool:
    """Whether the owner file we hold locked is still the one in ``path``. A sweep
    removes a folder while holding its lock, so once we hold it, this answer is final."""
    try:
        return os.stat(path / OWNER).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def release(path: Path) -> None:
    """Remove an owned folder and drop its lock."""
    shutil.rmtree(path, ignore_errors=True)
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def tempdir(root: Path, prefix: str = "tmp-") -> Iterator[Path]:
    path = owned_tempdir(root, prefix)
    try:
        yield path
    finally:
        release(path)


def sweep(root: Path) -> list[Path]:
    """Remove the folders under ``root`` whose owner is gone; return them."""
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return removed
    for path in entries:
        if not path.is_dir() or path in _held:
            continue
        owner = path / OWNER
        try:
            fd = os.open(owner, os.O_RDWR)
        except FileNotFoundError:
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > UNOWNED_GRACE_S:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner is alive
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed
