"""The scheduler's clocks: the database's clock run forward on the monotonic clock, a
fake clock as an offset on it, and the lease timers (renew, fence, reap)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from dagctl.dags.cron import utcnow
from dagctl.scheduling import clock as clock_module
from dagctl.scheduling.clock import DatabaseClock
from dagctl.scheduling.leases import REAP_SLACK_S, LeaseTimers


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    fake = Monotonic()
    monkeypatch.setattr(clock_module.time, "monotonic", fake)
    return fake


def test_the_database_clock_runs_on_the_monotonic_clock_between_samples(monotonic: Monotonic) -> None:
    db_now = utcnow() - timedelta(hours=2)  # this host is 2 h fast
    clock = DatabaseClock(db_now)
    assert clock() == db_now
    monotonic.now += 90.5
    assert clock() == db_now + timedelta(seconds=90.5)
    assert clock.sync_due()
    clock.sync(db_now + timedelta(seconds=91), monotonic.now)
    assert clock() == db_now + timedelta(seconds=91)
    assert not clock.sync_due()


def test_a_fake_clock_is_an_offset_on_the_database_clock(monotonic: Monotonic) -> None:
    db_now = utcnow()
    clock = DatabaseClock(db_now, fake_start=datetime(2025, 3, 30, 0, 30))
    assert clock() == datetime(2025, 3, 30, 0, 30)
    monotonic.now += 60
    clock.sync(db_now + timedelta(seconds=60), monotonic.now)
    assert clock() == datetime(2025, 3, 30, 0, 31)


def test_a_skewed_host_is_reported_once(monotonic: Monotonic, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "dagctl.scheduling.clock")
    clock = DatabaseClock(utcnow() - timedelta(hours=2))
    clock.sync(utcnow() - timedelta(hours=2), monotonic.now)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "this host's clock is 2.0 h ahead of the state database's: dagctl schedules by the"
        " database's clock, but fix this host's (NTP)"
    ]
    clock.sync(utcnow(), monotonic.now)
    assert caplog.records[-1].getMessage() == "this host's clock agrees with the state database's again"


def test_lease_timers_fence_before_the_guardian_before_the_expiry() -> None:
    timers = LeaseTimers(30.0)
    assert timers.renewal_due(0.0) and timers.fence_at() is None
    guardian = timers.renewed(100.0)
    fence = timers.fence_at()
    assert fence is not None
    # SIGTERM from the loop, then the guardian's SIGKILL, both before the lease (130) runs out.
    assert (fence, guardian) == (124.0, 127.0)
    assert timers.next_renewal == 110.0 and not timers.renewal_due(109.9)


def test_the_reaper_looks_again_at_the_earliest_expiry() -> None:
    timers = LeaseTimers(30.0)
    timers.renewed(100.0)
    assert timers.reap_due(100.0)  # at every renewal
    timers.reaped(100.0, next_expiry_in=4.0)
    assert timers.next_reap == pytest.approx(104.0 + REAP_SLACK_S)
    timers.reaped(105.0, next_expiry_in=None)  # none known: within a third of a lease
    assert timers.next_reap == 115.0
    timers.reaped(105.0, next_expiry_in=25.0)
    assert timers.next_reap == 115.0
    assert timers.next_due() == 110.0
