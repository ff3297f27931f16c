"""SQLite's doorbells (store/doorbell.py): a ring reaches every live scheduler's bell but
the ringer's own, a dead scheduler's bell is taken down, and ringing never fails."""

from __future__ import annotations

import os
import select
from pathlib import Path

from dagctl.store import doorbell


def _rang(bell: doorbell.Doorbell) -> bool:
    return bool(select.select([bell.fileno()], [], [], 0)[0]) and bell.drain()


def test_a_ring_reaches_every_bell_but_the_ringers_own(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    first, second = doorbell.Doorbell(database), doorbell.Doorbell(database)
    try:
        assert first.path.parent == tmp_path / ".state.db-bells" and first.path != second.path
        doorbell.ring(database, except_bell=first.path)
        assert not _rang(first)
        assert _rang(second)
        assert not _rang(second)  # drained
        doorbell.ring(database)
        doorbell.ring(database)  # rings pile up into one wake-up
        assert _rang(first) and _rang(second)
    finally:
        first.close()
        second.close()
    assert list((tmp_path / ".state.db-bells").iterdir()) == []


def test_a_bell_nobody_reads_any_more_is_taken_down(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    live = doorbell.Doorbell(database)
    dead = doorbell.bells_of(database) / f"999999-dead{doorbell.SUFFIX}"
    os.mkfifo(dead)  # what a scheduler killed with -9 leaves behind
    half_made = doorbell.bells_of(database) / ".12345-abcd"  # between mkfifo and rename
    os.mkfifo(half_made)
    try:
        doorbell.ring(database)
        assert not dead.exists()
        assert half_made.exists()  # not a bell yet: left alone
        assert _rang(live)
    finally:
        live.close()


def test_ringing_never_fails(tmp_path: Path) -> None:
    doorbell.ring(tmp_path / "no-scheduler-ever.db")  # no folder at all
    database = tmp_path / "state.db"
    bell = doorbell.Doorbell(database)
    try:
        fd = os.open(bell.path, os.O_WRONLY | os.O_NONBLOCK)
        try:  # a bell rung more often than its scheduler reads: the FIFO is full
            while True:
                os.write(fd, b"!" * 4096)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
        doorbell.ring(database)
        assert _rang(bell)
        (doorbell.bells_of(database) / f"stray{doorbell.SUFFIX}").write_text("")  # not a FIFO
        doorbell.ring(database)
        assert _rang(bell)
    finally:
        bell.close()
