"""The progress line of ``scan.wait()`` on an interactive terminal (rich, on stderr):
a pulsing bar with the scan's status and the time waited; nothing when stderr is not a
terminal (a script, a notebook's log, CI) unless asked for."""

from __future__ import annotations

import sys
from typing import Any

from datrix.sdk._core import Reporter, Silent


class TerminalProgress:
    def __init__(self, label: str) -> None:
        self._label = label
        self._progress: Any = None
        self._task: Any = None

    def update(
        self, status: str, elapsed: float, phase: str | None = None, done: float | None = None
    ) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=None, status=status)
        shown = f"{status}: {phase}" if phase else status
        if status in ("completed", "failed"):
            self._progress.update(self._task, status=shown, total=1, completed=1)
        elif done is not None:  # the server streams the job's progress: a real bar
            self._progress.update(self._task, status=shown, total=1000, completed=done * 1000)
        else:
            self._progress.update(self._task, status=shown)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def reporter(progress: bool | None, label: str) -> Reporter:
    """A progress line when ``progress`` is True, or None and stderr is a terminal."""
    shown = sys.stderr.isatty() if progress is None else progress
    return TerminalProgress(label) if shown else Silent()
