"""Cron slot arithmetic, DST-correct.

A schedule is read in the DAG's time zone, on the wall clock, and every slot is stored
as a naive UTC datetime. The rule at daylight-saving changes:

* spring gap: a wall-clock time that does not exist that day (02:30 in Europe/Berlin
  on the last Sunday of March) runs at the same distance past the start of the gap,
  i.e. at the instant the clocks would have shown it without the jump (02:30 CET =
  01:30 UTC = 03:30 CEST). A slot that would land on or before the previous slot in
  UTC is dropped, so hourly schedules do not run twice at 03:00 CEST.
* autumn fold: a wall-clock time that happens twice (02:30 on the last Sunday of
  October) runs once, at its first occurrence (summer time).

So a daily schedule runs exactly once per local day, and slots are strictly increasing
in UTC.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagctl.dags.model import Dag
from dagctl.errors import UsageError

UTC = timezone.utc
_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_SEARCH_WINDOWS = (
    timedelta(hours=2),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=8 * 366),
)


FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


class ScheduleError(ValueError):
    pass


def _croniter() -> Any:
    """croniter's class, imported on first use (0.1 s of a start). Its import asks
    `platform.architecture()` whether this Python is 32-bit, which runs `file -b` on
    the interpreter in a subprocess: a fork and exec in every `dagctl` that reads a
    schedule. The pointer size answers that question without one, so the import is
    given that answer."""
    if "croniter" in sys.modules:
        from croniter import croniter

        return croniter
    import platform
    import struct

    asked = platform.architecture
    platform.architecture = lambda *_, **__: (f"{struct.calcsize('P') * 8}bit", "")
    try:
        from croniter import croniter
    finally:
        platform.architecture = asked
    return croniter


@lru_cache(maxsize=4096)
def check_expression(expression: str) -> str | None:
    """Return why `expression` is not a usable 5-field cron expression, or None."""
    text = expression.strip()
    if text.lower() in _MACROS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return f"cron expression {expression!r} has {len(fields)} fields, expected 5"
    if _plainly_valid(fields):
        return None
    croniter = _croniter()

    try:
        croniter(text, datetime(2000, 1, 1))
    except (ValueError, KeyError, TypeError) as exc:
        # croniter names the whole expression; find the field that is wrong on its own.
        for index, name in enumerate(FIELD_NAMES):
            alone = ["*"] * 5
            alone[index] = fields[index]
            try:
                croniter(" ".join(alone), datetime(2000, 1, 1))
            except (ValueError, KeyError, TypeError):
                return f"bad cron expression {expression!r}: the {name} field {fields[index]!r} is not valid"
        return f"bad cron expression {expression!r}: {exc}"
    return None


# minute, hour, day-of-month, month, day-of-week (7 for Sunday is left to croniter)
_FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _plainly_valid(fields: list[str]) -> bool:
    """Whether every field is made only of `*`, `*/STEP`, numbers and ranges of
    numbers within the field's bounds, which croniter always accepts. Building a
    croniter to find out costs ~0.25 ms, a quarter of loading a small DAG; anything
    else (names, L, W, #, H, steps on ranges) is still checked by croniter."""
    for field, (low, high) in zip(fields, _FIELD_BOUNDS, strict=True):
        for entry in field.split(","):
            if entry == "*":
                continue
            if entry.startswith("*/"):
                step = entry[2:]
                if not (step.isdecimal() and step.isascii() and 1 <= int(step) <= high):
                    return False
                continue
            first, dash, last = entry.partition("-")
            if not dash:
                last = first
            if not (first.isdecimal() and last.isdecimal() and first.isascii() and last.isascii()):
                return False
            if not low <= int(first) <= int(last) <= high:
                return False
    return True


@lru_cache(maxsize=4096)
def never_fires(expression: str) -> bool:
    """True for valid expressions that match no date at all (0 0 30 2 *)."""
    fields = expression.split()
    if expression.strip().lower() in _MACROS or (len(fields) == 5 and _some_day_of_every_month(fields[2])):
        return False  # a day every month has matches, so some minute of it always does
    croniter = _croniter()

    try:
        croniter(expression, datetime(2000, 1, 1), max_years_between_matches=9).get_next(datetime)
    except Exception:  # croniter signals "no match" with CroniterBadDateError and others
        return True
    return False


def _some_day_of_every_month(day_field: str) -> bool:
    """Whether a (valid) day-of-month field certainly includes a day from 1 to 28, which
    every month has: `*`, `?`, or an entry whose first day is a number up to 28 (`1`,
    `5-20`, `10/3`). Anything else (`30`, `L`, `15W`) is left to croniter. Asking
    croniter costs ~0.25 ms an expression: a quarter of loading a small DAG."""
    for entry in day_field.split(","):
        first = entry.split("/", 1)[0].split("-", 1)[0]
        if first in ("*", "?") or (first.isdecimal() and first.isascii() and 1 <= int(first) <= 28):
            return True
    return False


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc


def check_timezone(name: str) -> str | None:
    try:
        zone(name)
    except ScheduleError as exc:
        return str(exc)
    return None


def to_utc(local_wall_time: datetime, tz: ZoneInfo) -> datetime:
    """Naive wall-clock time in `tz` -> naive UTC, with the gap/fold rule above (fold=0)."""
    aware = local_wall_time.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC).replace(tzinfo=None)


def to_local(utc_naive: datetime, tz: ZoneInfo) -> datetime:
    return utc_naive.replace(tzinfo=UTC).astimezone(tz)


@lru_cache(maxsize=16384)
def next_slot_after(expression: str, tz_name: str, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (naive UTC), or None if the schedule never fires.

    Cached: a scheduler asks the same question for every DAG at every reload, and
    croniter takes about a millisecond per step."""
    tz = zone(tz_name)
    # Start a little before `after` on the wall clock: around a fold the wall clock goes
    # back, and a slot can map to a UTC instant later than its wall-clock neighbours.
    start = to_local(after, tz).replace(tzinfo=None) - timedelta(hours=3)
    croniter = _croniter()

    try:
        walker = croniter(expression, start, max_years_between_matches=9)
        previous: datetime | None = None
        for _ in range(10_000):
            candidate = to_utc(walker.get_next(datetime), tz)
            if previous is not None and candidate <= previous:
                continue
            previous = candidate
            if candidate > after:
                return candidate
    except Exception:  # croniter gives up on expressions with no match
        return None
    return None


def slots_between(
    expression: str, tz_name: str, after: datetime, until: datetime, limit: int = 10_000
) -> Iterator[datetime]:
    """Slots in (after, until], oldest first, at most `limit` of them."""
    cursor = after
    for _ in range(limit):
        slot = next_slot_after(expression, tz_name, cursor)
        if slot is None or slot > until:
            return
        yield slot
        cursor = slot


def latest_slot_at_or_before(
    expression: str, tz_name: str, at: datetime, not_before: datetime | None = None
) -> datetime | None:
    """The most recent slot <= `at` (and > `not_before` when given), found without walking
    every slot of a long downtime."""
    for window in _SEARCH_WINDOWS:
        start = at - window
        if not_before is not None and start < not_before:
            start = not_before
        latest = None
        for slot in slots_between(expression, tz_name, start, at):
            latest = slot
        if latest is not None:
            return latest
        if not_before is not None and start == not_before:
            return None
    return None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def clock_starting_at(base: datetime | None) -> Callable[[], datetime]:
    """The scheduler's clock: real UTC time, or (DAGCTL_FAKE_NOW, see dagctl.config) one
    that starts at `base` and runs at real speed, for tests and demos of catch-up and DST
    behaviour only."""
    if base is None:
        return utcnow
    origin = time.monotonic()
    return lambda: base + timedelta(seconds=time.monotonic() - origin)


# ---------------------------------------------------------------- previews (`dagctl next`)


def _iso_utc(value: datetime) -> str:
    return value.isoformat() + "Z"


def dst_note(expression: str, tz_name: str, slot: datetime, previous: datetime) -> str | None:
    """Why this slot's wall-clock time is special, per the rule in dagctl.dags.cron: a time in
    the spring gap runs as many minutes after the gap as it would have been into it; a
    time in the autumn fold runs once, at its first occurrence. Otherwise, whether the
    clocks changed since `previous` (the slot before, or now), which moves the slot in UTC."""
    croniter = _croniter()

    tz = zone(tz_name)
    local = to_local(slot, tz)
    wall = local.replace(tzinfo=None)
    if croniter.match(expression, wall):
        if wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset():
            return (
                f"{wall:%H:%M} happens twice on {wall:%Y-%m-%d} (clocks go back): "
                f"runs once, at the first ({local.tzname()})"
            )
    else:
        before = to_local(slot - timedelta(hours=3), tz).utcoffset()
        after = local.utcoffset()
        if before is not None and after is not None and after > before:
            nominal = wall - (after - before)
            if croniter.match(expression, nominal):
                return (
                    f"{nominal:%H:%M} does not exist on {nominal:%Y-%m-%d} (clocks go forward): "
                    f"runs at {wall:%H:%M} {local.tzname()}"
                )
    earlier = to_local(previous, tz)
    if earlier.utcoffset() != local.utcoffset():
        direction = (
            "forward" if (local.utcoffset() or timedelta()) > (earlier.utcoffset() or timedelta()) else "back"
        )
        return f"the clocks went {direction} since the previous slot ({earlier.tzname()} → {local.tzname()})"
    return None


def upcoming(dag: Dag, now: datetime, count: int) -> list[dict[str, Any]]:
    """The next `count` slots after `now` (naive UTC): UTC, local time and a DST note."""
    if not dag.schedule:
        raise UsageError(
            f"DAG {dag.name!r} has no schedule: it runs only when triggered", f"dagctl trigger {dag.name}"
        )
    tz = zone(dag.timezone)
    slots = []
    cursor = now
    for _ in range(count):
        slot = next_slot_after(dag.schedule, dag.timezone, cursor)
        if slot is None:
            break
        local = to_local(slot, tz)
        slots.append(
            {
                "utc": _iso_utc(slot),
                "local": local.isoformat(),
                "tz_abbreviation": local.tzname(),
                "note": dst_note(dag.schedule, dag.timezone, slot, cursor),
            }
        )
        cursor = slot
    return slots
