"""When a run must have finished (notify/deadlines.py): `deadline` after the slot,
`finish_by` as the first such local time at or after the slot, across DST."""

from __future__ import annotations

from datetime import datetime

from dagctl.dags.model import Dag
from dagctl.notify.deadlines import deadline_at


def _dag(**kwargs: object) -> Dag:
    return Dag(name="d", folder="/x", description="x", tasks={}, fingerprint="f", **kwargs)  # type: ignore[arg-type]


def test_no_deadline() -> None:
    assert deadline_at(_dag(), datetime(2024, 1, 1)) is None


def test_deadline_counts_from_the_slot() -> None:
    assert deadline_at(_dag(deadline=7200.0), datetime(2024, 1, 1, 5)) == datetime(2024, 1, 1, 7)


def test_finish_by_is_the_next_such_local_time_after_the_slot() -> None:
    dag = _dag(finish_by="07:00", timezone="Europe/Paris")
    # 02:00 UTC = 03:00 Paris (winter): 07:00 Paris that day = 06:00 UTC.
    assert deadline_at(dag, datetime(2024, 1, 10, 2)) == datetime(2024, 1, 10, 6)
    # 08:00 UTC = 09:00 Paris, after 07:00: the next day's 07:00.
    assert deadline_at(dag, datetime(2024, 1, 10, 8)) == datetime(2024, 1, 11, 6)
    # Summer time: 07:00 Paris = 05:00 UTC.
    assert deadline_at(dag, datetime(2024, 7, 10, 1)) == datetime(2024, 7, 10, 5)


def test_the_earlier_of_both_wins() -> None:
    dag = _dag(deadline=3600.0, finish_by="23:00")
    assert deadline_at(dag, datetime(2024, 1, 10, 2)) == datetime(2024, 1, 10, 3)
