"""Tumbling windows of one topic partition, by record time, with a grace period.

A record at time ``t`` (ms since the epoch) belongs to the window starting at
``t - t % window_ms``. A window closes once its end plus the grace period has passed
either on the partition's *stream time* (the latest record time seen: a record that far
ahead proves the window is complete, which is what closes windows while a backlog is read
at full speed) or, while the partition is caught up (nothing more to read), on the *wall
clock*: a topic that goes quiet still gets its windows closed. Windows close in start
order; a record for a window that has closed already is *late* and is not counted
(``place`` returns None).

Crash safety lives here too: ``committable`` is the offset a consumer may commit for the
partition, the first offset of its oldest open window (or the next offset to read when
none is open). A restarted monitor then reads every open window again from its first
record, and a closed window it recomputes from a later offset has the id of one already
submitted, which the command processor drops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Window(Generic[T]):
    start_ms: int
    end_ms: int
    first_offset: int  # the offset of the first record placed in it
    acc: T  # what the caller accumulates for it
    latest: int = -1  # the latest record time placed in it (stream time: the maximum)


class PartitionWindows(Generic[T]):
    def __init__(self, window_ms: int, grace_ms: int, new: Callable[[int, int], T]) -> None:
        """``new(start_ms, end_ms)`` makes a window's accumulator when it opens."""
        if window_ms <= 0:
            raise ValueError(f"a window lasts at least 1 ms, not {window_ms}")
        if grace_ms < 0:
            raise ValueError(f"a grace period cannot be negative ({grace_ms} ms)")
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.new = new
        self.open: dict[int, Window[T]] = {}
        self.closed_before: int | None = None  # windows starting before this have closed
        self.stream_time: int | None = None  # the latest record time seen
        self.late = 0  # records not counted because their window had closed

    def start_of(self, time_ms: int) -> int:
        return time_ms - time_ms % self.window_ms

    def place(self, time_ms: int, offset: int) -> Window[T] | None:
        """The window of a record at ``time_ms`` read at ``offset`` (opened if needed), or
        None when that window has closed (a late record, counted in ``late``)."""
        start = time_ms - time_ms % self.window_ms
        window = self.open.get(start)
        if window is not None:  # the common case first: it runs per record
            if time_ms > window.latest:
                window.latest = time_ms
            return window
        if self.stream_time is None or time_ms > self.stream_time:
            self.stream_time = time_ms
        if self.closed_before is not None and start < self.closed_before:
            self.late += 1
            return None
        end = start + self.window_ms
        window = Window(start, end, offset, self.new(start, end), time_ms)
        self.open[start] = window
        return window

    def due(self, now_ms: int, caught_up: bool) -> list[Window[T]]:
        """The open windows that may close now, oldest first (not removed: ``close``)."""
        for window in self.open.values():
            if self.stream_time is None or window.latest > self.stream_time:
                self.stream_time = window.latest
        horizon = self.stream_time if self.stream_time is not None else now_ms
        if caught_up:
            horizon = max(horizon, now_ms)
        return sorted(
            (w for w in self.open.values() if w.end_ms + self.grace_ms <= horizon),
            key=lambda w: w.start_ms,
        )

    def close(self, window: Window[T]) -> None:
        del self.open[window.start_ms]
        if self.closed_before is None or window.end_ms > self.closed_before:
            self.closed_before = window.end_ms

    def committable(self, next_offset: int) -> int:
        """The offset up to which the partition may be committed: the first offset of the
        oldest open window, or ``next_offset`` (after the last record read) when none is."""
        if not self.open:
            return next_offset
        return min(w.first_offset for w in self.open.values())
