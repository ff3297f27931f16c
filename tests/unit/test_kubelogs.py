"""Tailing a pod's log by timestamped windows (managers/kubelogs.py): overlapping reads
store each line once, lines sharing a timestamp included."""

from __future__ import annotations

from dagctl.managers.kubelogs import WINDOW_MARGIN_S, LogTail, timestamp_ns


def test_timestamps_as_the_kubelet_writes_them() -> None:
    assert timestamp_ns(b"1970-01-01T00:00:01Z") == 1_000_000_000
    assert timestamp_ns(b"1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert timestamp_ns(b"1970-01-01T00:00:01.123456789Z") == 1_123_456_789
    assert timestamp_ns(b"hello") is None and timestamp_ns(b"1970-01-01T00:00:01.x") is None


def test_overlapping_windows_store_each_line_once() -> None:
    wall = [100.0]
    tail = LogTail(None, ["hunter2"], wall=lambda: wall[0])
    assert tail.window() is None  # the first read: the whole log
    tail.feed(
        [b"2024-06-01T00:00:01.1Z one\n2024-06-01T00:00:01.2Z two\n2024-06-01T00:00:01.2Z tw", b"o again\n"]
    )
    assert tail.buffer.take_new() == "one\ntwo\ntwo again\n"
    wall[0] = 102.5
    assert tail.window() == 3 + WINDOW_MARGIN_S
    # The window overlaps: the same lines come again, then new ones (one with the same
    # timestamp as the last line taken, one secret).
    tail.feed(
        [
            b"2024-06-01T00:00:01.2Z two\n2024-06-01T00:00:01.2Z two again\n",
            b"2024-06-01T00:00:01.2Z two, third\n2024-06-01T00:00:02Z password=hunter2\n",
        ]
    )
    assert tail.buffer.take_new() == "two, third\npassword=***\n"
    wall[0] = 110.0
    assert tail.window() == 8 + WINDOW_MARGIN_S
    tail.rewind()  # that read failed: the next window starts at the same place
    wall[0] = 111.0
    assert tail.window() == 9 + WINDOW_MARGIN_S
    tail.feed([b"2024-06-01T00:00:02Z password=hunter2\n2024-06-01T00:00:09Z last"])
    assert tail.buffer.finish() == "last"
