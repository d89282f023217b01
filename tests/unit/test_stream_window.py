"""Tumbling windows by record time (jobs/streams/window.py): placement, closing on stream
time or on the wall clock once caught up, late records, the committable offset."""

from __future__ import annotations

import pytest

from datrix.jobs.streams.window import PartitionWindows


def windows(window_ms: int = 1000, grace_ms: int = 500) -> PartitionWindows[list[int]]:
    return PartitionWindows(window_ms, grace_ms, lambda start, end: [])


def test_records_fall_in_the_window_of_their_time() -> None:
    w = windows()
    for offset, t in enumerate([10_000, 10_999, 11_000, 10_500]):
        window = w.place(t, offset)
        assert window is not None
        window.acc.append(offset)
    assert {s: (x.end_ms, x.first_offset, x.acc) for s, x in w.open.items()} == {
        10_000: (11_000, 0, [0, 1, 3]),
        11_000: (12_000, 2, [2]),
    }


def test_a_window_closes_when_stream_time_passes_its_end_plus_grace() -> None:
    w = windows()
    w.place(10_100, 0)
    w.place(11_400, 1)  # 11,000 + 500 grace not reached yet
    assert w.due(now_ms=0, caught_up=False) == []
    w.place(11_500, 2)
    assert [x.start_ms for x in w.due(now_ms=0, caught_up=False)] == [10_000]


def test_a_quiet_topic_closes_on_the_wall_clock_only_when_caught_up() -> None:
    w = windows()
    w.place(10_100, 0)
    assert w.due(now_ms=99_000, caught_up=False) == []  # a backlog may still hold its records
    assert w.due(now_ms=11_499, caught_up=True) == []
    assert [x.start_ms for x in w.due(now_ms=11_500, caught_up=True)] == [10_000]


def test_records_of_a_closed_window_are_late() -> None:
    w = windows()
    w.place(10_100, 0)
    w.place(12_000, 1)
    for window in w.due(now_ms=0, caught_up=False):
        w.close(window)
    assert w.place(10_900, 2) is None and w.late == 1
    opened = w.place(11_200, 3)  # the next window has not closed: it opens
    assert opened is not None and opened.start_ms == 11_000 and w.late == 1


def test_committable_is_the_first_offset_of_the_oldest_open_window() -> None:
    w = windows()
    assert w.committable(next_offset=7) == 7
    w.place(11_000, 7)
    w.place(10_000, 8)  # an older window opened by a later record
    w.place(11_100, 9)
    assert w.committable(next_offset=10) == 7
    w.close(w.open[10_000])
    assert w.committable(next_offset=10) == 7
    w.close(w.open[11_000])
    assert w.committable(next_offset=10) == 10


@pytest.mark.parametrize(("window_ms", "grace_ms"), [(0, 0), (1000, -1)])
def test_bad_sizes_are_refused(window_ms: int, grace_ms: int) -> None:
    with pytest.raises(ValueError, match=r"window|grace"):
        windows(window_ms, grace_ms)
