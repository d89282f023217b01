"""Private state on disk: ``DATRIX_HOME`` and everything under it for its owner alone.

The home holds every dataset a user scanned (Parquet objects), the reports and affected
rows, the SQLite stores, job folders, temp files and locks: personal data, often. So a
Datrix process keeps it private (folders 0700, files 0600) whatever umask it was started
with, ``umask 000`` included. Two mechanisms, each for what it does best:

- **A process umask** (``private_umask``: the caller's umask with group and other bits
  added, ``| 0o077``), set where a process opens its home: the embedded and Kafka
  runtimes, ``datrix worker`` and the job process. It is the only mechanism that reaches
  files Datrix does not open itself: SQLite's database, ``-wal``, ``-shm`` and journal
  files, the event store of the ``eventsourcing`` library, Parquet written by Polars and
  pyarrow, ``tempfile`` folders of the engines, a job's ``stderr.log``; and a job process
  inherits it. Explicit modes everywhere would need every ``open()`` of every library,
  and a file a future module writes would silently be world-readable again. The umask is
  only ever tightened, and it stays set for the process's life: files the CLI writes for
  the user outside the home (``--html`` reports) hold the same data and are 0600 too.
- **Explicit modes** (``private_dirs``, ``os.open(..., 0o600)``) where Datrix creates the
  home's folders and its lock files. A mode given to ``mkdir``/``open`` can only lose
  bits to the umask, so 0700/0600 hold even in code that runs before a runtime set the
  umask (``open_object_store`` creating ``objects/``, a library caller's own
  ``LocalObjectStore``), and the intent is on the page.

An existing home that others can reach is not changed (it may be shared on purpose, or
be a folder the user also uses for other things, or not be ours to chmod): the runtime
says so once at start (``exposure``: one line, the fix included) and goes on.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> int:
    """Add group and other bits to this process's umask (children inherit it); return
    the umask it had."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def private_dirs(path: Path) -> Path:
    """Create ``path`` and its missing parents, each 0700 (``Path.mkdir(parents=True)``
    would give the parents the umask's mode). Existing folders are left as they are."""
    missing: list[Path] = []
    at = path
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            folder.mkdir(mode=FOLDER_MODE)
    return path


def open_private(path: Path, flags: int = os.O_RDWR) -> int:
    """``os.open`` of ``path``, created 0600 when missing."""
    return os.open(path, flags | os.O_CREAT, FILE_MODE)


def exposure(home: Path) -> str | None:
    """One line for the user when ``home`` exists and others may enter or read it, else
    None."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"warning: DATRIX_HOME {home} is open to other users (mode {mode:04o}); it holds "
        f"your datasets and reports: run chmod 700 {home} to make it private"
    )


def open_home(home: Path) -> str | None:
    """At the start of a process that uses ``home``: tighten the umask, create the home
    0700 when missing, and return the warning of ``exposure`` for an existing one."""
    private_umask()
    private_dirs(home)
    return exposure(home)
