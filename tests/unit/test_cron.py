"""Cron slot arithmetic: DST gaps and folds, one run per local day, strictly increasing slots."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from dagctl.dags import cron

BERLIN = "Europe/Berlin"


def walk(expression: str, tz: str, start: datetime, count: int) -> list[datetime]:
    slots: list[datetime] = []
    cursor = start
    for _ in range(count):
        slot = cron.next_slot_after(expression, tz, cursor)
        assert slot is not None
        slots.append(slot)
        cursor = slot
    return slots


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---------------------------------------------------------------- Europe/Berlin, the F8 cases


def test_daily_0230_spring_gap_runs_at_0130_utc() -> None:
    # 2024-03-31: clocks jump 02:00 CET -> 03:00 CEST, so 02:30 does not exist that day.
    # It runs at 02:30 CET = 01:30 UTC (= 03:30 CEST): still once that day.
    assert walk("30 2 * * *", BERLIN, utc("2024-03-29 12:00"), 4) == [
        utc("2024-03-30 01:30"),  # 02:30 CET
        utc("2024-03-31 01:30"),  # the gap
        utc("2024-04-01 00:30"),  # 02:30 CEST
        utc("2024-04-02 00:30"),
    ]


def test_daily_0230_autumn_fold_runs_once_at_the_first_occurrence() -> None:
    # 2024-10-27: 02:30 happens twice (CEST, then CET); the run is at the first, 00:30 UTC.
    assert walk("30 2 * * *", BERLIN, utc("2024-10-25 12:00"), 4) == [
        utc("2024-10-26 00:30"),  # 02:30 CEST
        utc("2024-10-27 00:30"),  # the fold: once
        utc("2024-10-28 01:30"),  # 02:30 CET
        utc("2024-10-29 01:30"),
    ]


def test_after_the_first_occurrence_of_a_fold_the_next_day_follows() -> None:
    # Asking from between the two 02:30s of the fold must not give the second one.
    assert cron.next_slot_after("30 2 * * *", BERLIN, utc("2024-10-27 00:30")) == utc("2024-10-28 01:30")
    assert cron.next_slot_after("30 2 * * *", BERLIN, utc("2024-10-27 01:00")) == utc("2024-10-28 01:30")


def test_every_two_hours_across_the_spring_gap() -> None:
    assert walk("0 */2 * * *", BERLIN, utc("2024-03-30 20:00"), 6) == [
        utc("2024-03-30 21:00"),  # 22:00 CET
        utc("2024-03-30 23:00"),  # 00:00 CET
        utc("2024-03-31 01:00"),  # 02:00 does not exist: 02:00 CET
        utc("2024-03-31 02:00"),  # 04:00 CEST
        utc("2024-03-31 04:00"),  # 06:00 CEST
        utc("2024-03-31 06:00"),
    ]


def test_every_two_hours_across_the_autumn_fold() -> None:
    assert walk("0 */2 * * *", BERLIN, utc("2024-10-26 19:00"), 5) == [
        utc("2024-10-26 20:00"),  # 22:00 CEST
        utc("2024-10-26 22:00"),  # 00:00 CEST
        utc("2024-10-27 00:00"),  # 02:00 CEST; the second 02:00 (CET, 01:00 UTC) does not run
        utc("2024-10-27 03:00"),  # 04:00 CET
        utc("2024-10-27 05:00"),
    ]


def test_two_morning_hours_across_both_changes() -> None:
    assert walk("0 7-8 * * *", BERLIN, utc("2024-03-30 00:00"), 6) == [
        utc("2024-03-30 06:00"),
        utc("2024-03-30 07:00"),
        utc("2024-03-31 05:00"),
        utc("2024-03-31 06:00"),
        utc("2024-04-01 05:00"),
        utc("2024-04-01 06:00"),
    ]
    assert walk("0 7-8 * * *", BERLIN, utc("2024-10-26 00:00"), 6) == [
        utc("2024-10-26 05:00"),
        utc("2024-10-26 06:00"),
        utc("2024-10-27 06:00"),
        utc("2024-10-27 07:00"),
        utc("2024-10-28 06:00"),
        utc("2024-10-28 07:00"),
    ]


def test_hourly_never_runs_twice_at_the_same_instant() -> None:
    # 02:00 (gap, = 01:00 UTC) and 03:00 CEST (= 01:00 UTC) are one instant: one slot.
    slots = walk("0 * * * *", BERLIN, utc("2024-03-30 22:30"), 5)
    assert slots == [
        utc("2024-03-30 23:00"),
        utc("2024-03-31 00:00"),
        utc("2024-03-31 01:00"),
        utc("2024-03-31 02:00"),
        utc("2024-03-31 03:00"),
    ]


# ---------------------------------------------------------------- a whole year


YEAR = (utc("2024-01-01 00:00"), utc("2025-01-01 00:00"))


@pytest.mark.parametrize(
    ("expression", "tz"),
    [
        ("30 2 * * *", BERLIN),
        ("0 */2 * * *", BERLIN),
        ("0 7-8 * * *", BERLIN),
        ("30 1 * * *", "America/New_York"),
        ("0 0 * * *", "America/Santiago"),  # DST starts at midnight there
        ("0 2 * * *", "Australia/Lord_Howe"),  # a 30-minute DST shift
        ("*/20 2-3 * * 0", BERLIN),
    ],
)
def test_slots_strictly_increase_over_a_year(expression: str, tz: str) -> None:
    slots = list(cron.slots_between(expression, tz, *YEAR))
    assert slots, "no slots at all"
    assert all(a < b for a, b in itertools.pairwise(slots))
    assert all(YEAR[0] < s <= YEAR[1] for s in slots)
    # asked from just before or just after any slot, next_slot_after agrees with the walk
    for index in range(0, len(slots) - 1, max(1, len(slots) // 40)):
        assert cron.next_slot_after(expression, tz, slots[index] - timedelta(seconds=1)) == slots[index]
        assert cron.next_slot_after(expression, tz, slots[index] + timedelta(seconds=1)) == slots[index + 1]


@pytest.mark.parametrize(
    ("expression", "tz"),
    [
        ("30 2 * * *", BERLIN),
        ("0 2 * * *", BERLIN),
        ("0 3 * * *", BERLIN),
        ("59 23 * * *", BERLIN),
        ("0 0 * * *", BERLIN),
        ("30 2 * * *", "America/New_York"),
        ("30 1 * * *", "America/New_York"),
        ("0 0 * * *", "America/Santiago"),
        ("0 2 * * *", "Australia/Lord_Howe"),
        ("0 12 * * *", "UTC"),
    ],
)
def test_daily_schedules_run_exactly_once_per_local_day(expression: str, tz: str) -> None:
    zone = cron.zone(tz)
    start, end = utc("2023-12-31 12:00"), utc("2025-01-01 12:00")
    slots = list(cron.slots_between(expression, tz, start, end))
    local_days = Counter(cron.to_local(s, zone).date() for s in slots)
    days_2024 = {date(2024, 1, 1) + timedelta(days=n) for n in range(366)}
    assert days_2024 <= set(local_days)
    assert {day: n for day, n in local_days.items() if n != 1} == {}


# ---------------------------------------------------------------- latest_slot_at_or_before


def test_latest_slot_at_or_before() -> None:
    daily = "30 2 * * *"
    assert cron.latest_slot_at_or_before(daily, BERLIN, utc("2024-06-10 12:00")) == utc("2024-06-10 00:30")
    # a slot exactly at `at` counts
    assert cron.latest_slot_at_or_before(daily, BERLIN, utc("2024-06-10 00:30")) == utc("2024-06-10 00:30")
    assert cron.latest_slot_at_or_before(daily, BERLIN, utc("2024-06-10 00:29")) == utc("2024-06-09 00:30")
    # across the spring gap and the autumn fold
    assert cron.latest_slot_at_or_before(daily, BERLIN, utc("2024-03-31 12:00")) == utc("2024-03-31 01:30")
    assert cron.latest_slot_at_or_before(daily, BERLIN, utc("2024-10-27 12:00")) == utc("2024-10-27 00:30")


def test_latest_slot_after_a_long_downtime() -> None:
    # A yearly schedule looked back on in summer: found without walking every day.
    latest = cron.latest_slot_at_or_before
    assert latest("0 0 1 1 *", "UTC", utc("2024-07-01 00:00")) == utc("2024-01-01 00:00")
    # Leap day: the latest is years back.
    assert latest("0 0 29 2 *", "UTC", utc("2027-07-01 00:00")) == utc("2024-02-29 00:00")
    # Every minute, after a year away: just the last minute.
    assert cron.latest_slot_at_or_before("* * * * *", "UTC", utc("2024-07-01 10:00:30")) == utc(
        "2024-07-01 10:00"
    )


def test_latest_slot_respects_not_before() -> None:
    at = utc("2024-06-10 12:00")
    assert cron.latest_slot_at_or_before("0 0 * * *", "UTC", at, not_before=utc("2024-06-09 12:00")) == utc(
        "2024-06-10 00:00"
    )
    # the watermark itself is not a new slot: only slots after it
    assert cron.latest_slot_at_or_before("0 0 * * *", "UTC", at, not_before=utc("2024-06-10 00:00")) is None
    assert cron.latest_slot_at_or_before("0 0 1 1 *", "UTC", at, not_before=utc("2024-03-01 00:00")) is None


def test_a_schedule_that_never_fires_has_no_slots() -> None:
    assert cron.next_slot_after("0 0 30 2 *", "UTC", utc("2024-01-01 00:00")) is None
    assert cron.latest_slot_at_or_before("0 0 30 2 *", "UTC", utc("2024-01-01 00:00")) is None
    assert list(cron.slots_between("0 0 30 2 *", "UTC", *YEAR)) == []


# ---------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 30 2 *", True),
        ("0 0 31 4 *", True),
        ("0 0 31 2,4,6,9,11 *", True),
        ("0 0 30 2 1", False),  # day-of-month OR day-of-week: Mondays in February
        ("0 0 29 2 *", False),  # leap years
        ("0 0 31 * *", False),
        ("0 0 * 2 *", False),
        ("* * * * *", False),
        ("@daily", False),
        ("@yearly", False),
    ],
)
def test_never_fires(expression: str, expected: bool) -> None:
    assert cron.never_fires(expression) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 2 * * *",
        "*/15 9-17 * * 1-5",
        "0 0 1 jan,jul *",
        "0 0 * * sun",
        "0 0 L * *",
        "0 0 * * 7",
        "5,10,15 * * * *",
        "@daily",
        "@HOURLY",
        " 0 0 * * * ",
    ],
)
def test_check_expression_accepts(expression: str) -> None:
    assert cron.check_expression(expression) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "cron expression '* * *' has 3 fields, expected 5"),
        ("", "cron expression '' has 0 fields, expected 5"),
        ("0 0 * * * *", "cron expression '0 0 * * * *' has 6 fields, expected 5"),
        ("@reboot", "cron expression '@reboot' has 1 fields, expected 5"),
        ("61 * * * *", "bad cron expression '61 * * * *': the minute field '61' is not valid"),
        ("0 24 * * *", "bad cron expression '0 24 * * *': the hour field '24' is not valid"),
        ("0 0 0 * *", "bad cron expression '0 0 0 * *': the day-of-month field '0' is not valid"),
        ("0 0 * 13 *", "bad cron expression '0 0 * 13 *': the month field '13' is not valid"),
        ("0 0 * * 8", "bad cron expression '0 0 * * 8': the day-of-week field '8' is not valid"),
        ("*/0 * * * *", "bad cron expression '*/0 * * * *': the minute field '*/0' is not valid"),
        ("a b c d e", "bad cron expression 'a b c d e': the minute field 'a' is not valid"),
        ("-1 * * * *", "bad cron expression '-1 * * * *': the minute field '-1' is not valid"),
    ],
)
def test_check_expression_rejects(expression: str, message: str) -> None:
    assert cron.check_expression(expression) == message


def test_timezones() -> None:
    assert cron.check_timezone("Europe/Berlin") is None
    assert cron.check_timezone("Europe/Berln") == "unknown time zone 'Europe/Berln'"
    assert cron.check_timezone("../etc/passwd") == "unknown time zone '../etc/passwd'"
    with pytest.raises(cron.ScheduleError):
        cron.next_slot_after("0 0 * * *", "Mars/Olympus", utc("2024-01-01 00:00"))


def test_utc_conversions() -> None:
    zone = cron.zone(BERLIN)
    assert cron.to_utc(datetime(2024, 7, 1, 12, 0), zone) == utc("2024-07-01 10:00")
    assert cron.to_utc(datetime(2024, 1, 1, 12, 0), zone) == utc("2024-01-01 11:00")
    assert cron.to_utc(datetime(2024, 3, 31, 2, 30), zone) == utc("2024-03-31 01:30")  # gap
    assert cron.to_utc(datetime(2024, 10, 27, 2, 30), zone) == utc("2024-10-27 00:30")  # fold: first
    local = cron.to_local(utc("2024-10-27 01:30"), zone)
    assert (local.hour, local.minute, local.utcoffset()) == (2, 30, timedelta(hours=1))


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 1 * *",
        "0 0 28 2 *",
        "0 0 29 2 *",
        "0 0 5-30 2 *",
        "0 0 */10 2 *",
        "0 0 31,1 4 *",
        "0 0 30,31 2 *",
    ],
)
def test_never_fires_without_croniter_agrees_with_croniter(expression: str) -> None:
    # never_fires answers "fires" from the day-of-month field alone when it holds a day
    # every month has; croniter's own search must agree on every such expression.
    from croniter import croniter

    try:
        croniter(expression, datetime(2000, 1, 1), max_years_between_matches=9).get_next(datetime)
        fires = True
    except Exception:
        fires = False
    assert cron.never_fires(expression) is not fires


def test_expressions_passed_without_croniter_are_ones_croniter_accepts() -> None:
    # check_expression skips croniter for fields of plain numbers, ranges and */STEP
    # within bounds; every such expression must be one croniter accepts, and croniter's
    # refusals must still come out as problems.
    from croniter import croniter

    entries = [
        "*",
        "*/1",
        "*/7",
        "*/59",
        "0",
        "5",
        "23",
        "1-5",
        "0-59",
        "1,15",
        "2-4,9",
        "31",
        "12",
        "6",
        "7",
    ]
    picks = random.Random(18)
    for _ in range(1500):
        expression = " ".join(picks.choice(entries) for _ in range(5))
        try:
            croniter(expression, datetime(2000, 1, 1))
            accepted = True
        except (ValueError, KeyError, TypeError):
            accepted = False
        if cron._plainly_valid(expression.split()):
            assert accepted, expression
        assert (cron.check_expression(expression) is None) is accepted, expression
