"""When a run must have finished: `deadline: 2h` (after its slot) and/or
`finish_by: "07:00"` (the first such local time of the DAG's time zone at or after its
slot); the earlier of the two. Pure: the store compares it with the database's clock."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dagctl.dags.model import Dag

DEADLINE_MISSED = "deadline_missed"


def deadline_at(dag: Dag, logical_date: datetime) -> datetime | None:
    """The instant (naive UTC) a run of `dag` for `logical_date` (naive UTC) must have
    finished by, or None when the DAG sets no deadline."""
    candidates = []
    if dag.deadline is not None:
        candidates.append(logical_date + timedelta(seconds=dag.deadline))
    if dag.finish_by:
        zone = ZoneInfo(dag.timezone)
        slot = logical_date.replace(tzinfo=timezone.utc).astimezone(zone)
        hour, minute = (int(part) for part in dag.finish_by.split(":"))
        local = datetime.combine(slot.date(), time(hour, minute), tzinfo=zone)
        if local < slot:
            local = datetime.combine(slot.date() + timedelta(days=1), time(hour, minute), tzinfo=zone)
        candidates.append(local.astimezone(timezone.utc).replace(tzinfo=None))
    return min(candidates) if candidates else None


__all__ = ["DEADLINE_MISSED", "deadline_at"]
