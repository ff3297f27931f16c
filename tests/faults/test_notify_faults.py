"""Alerts across schedulers on one PostgreSQL: every failure event written once, and
delivered once per idempotency key, through kill -9 of the scheduler sending them and
a PostgreSQL restart in the middle of their delivery."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import wait_until
from tests.pgserver import PgServer


class Receiver:
    """A webhook receiver on loopback. While `hang` is set, requests get no answer
    (the sender is stuck in its send, holding its claims) until it is cleared."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.arrived = threading.Event()
        self.hang = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrived.set()
                while receiver.hang.is_set():
                    time.sleep(0.05)
                receiver.keys.append(body["idempotency_key"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.hang.clear()
    r.server.shutdown()
    r.server.server_close()


def _alerting(harness: Harness, receiver: Receiver, timeout: str = "10") -> None:
    with (harness.dags / "dagctl.yaml").open("a") as config:
        config.write(
            f"channels:\n  hook: {{type: webhook, url: '{receiver.url}', timeout: {timeout}}}\n"
            "notify:\n  - events: [failure]\n    to: [hook]\n"
        )
    harness.dag("fails", "description: fails\nretries: 0\nmax_active_runs: 50\n", boom__sh="exit 3\n")
    harness.migrate()


def _events(harness: Harness) -> list[tuple[Any, ...]]:
    return harness.sql("SELECT dag_run_id, event, status FROM notification ORDER BY dag_run_id")


def test_four_schedulers_two_hundred_failing_runs_give_two_hundred_events_each_delivered_once(
    harness: Harness, receiver: Receiver
) -> None:
    _alerting(harness, receiver)
    runs = harness.trigger_many("fails", 200)
    for _ in range(4):
        harness.start("--concurrency", "8")
    harness.wait_runs_finished(60, expected=200)
    wait_until(lambda: len(set(receiver.keys)) >= 200, 30, "200 webhooks")
    time.sleep(1.0)  # a duplicate, were there one, would arrive now
    harness.kill_all()
    events = _events(harness)
    assert [(run, event) for run, event, _ in events] == [(run, "failure") for run in sorted(runs)]
    assert {status for _, _, status in events} == {"delivered"}
    assert len(receiver.keys) == 200 and max(Counter(receiver.keys).values()) == 1


def test_kill_9_of_the_delivering_scheduler_loses_no_event(harness: Harness, receiver: Receiver) -> None:
    _alerting(harness, receiver, timeout="30")
    receiver.hang.set()
    runs = harness.trigger_many("fails", 5)
    fast_claims = {"DAGCTL_NOTIFY_CLAIM_SECONDS": "2", "DAGCTL_NOTIFY_RETRY_SECONDS": "0.2"}
    first = harness.start(**fast_claims)
    assert receiver.arrived.wait(20), first.output()
    harness.wait_runs_finished(20, expected=5)  # every event written; one being sent
    first.signal(signal.SIGKILL)  # in the middle of a send, its claims held
    first.wait(10)
    receiver.hang.clear()
    assert {status for _, _, status in _events(harness)} == {"pending"}
    harness.start(**fast_claims)
    wait_until(lambda: [s for _, _, s in _events(harness)] == ["delivered"] * 5, 20, "every event delivered")
    harness.kill_all()
    assert sorted(run for run, _, _ in _events(harness)) == sorted(runs)
    # Each event arrived; the one whose send was cut by the kill may arrive twice (at
    # least once to the channel), and its idempotency key says so.
    counts = Counter(receiver.keys)
    assert len(counts) == 5 and sum(counts.values()) <= 6


@pytest.mark.postgres
def test_postgres_restart_during_delivery_sends_every_event_once(
    harness: Harness, receiver: Receiver, server: PgServer
) -> None:
    _alerting(harness, receiver, timeout="30")
    receiver.hang.set()
    runs = harness.trigger_many("fails", 10)
    for _ in range(2):
        harness.start(DAGCTL_NOTIFY_RETRY_SECONDS="0.2")
    assert receiver.arrived.wait(20), harness.schedulers[0].output()
    harness.wait_runs_finished(20, expected=10)  # every event written; some being sent
    server.stop("fast")
    receiver.hang.clear()  # the sends in flight arrive while their outcome cannot be recorded
    time.sleep(2.0)
    server.start()
    wait_until(lambda: [s for _, _, s in _events(harness)] == ["delivered"] * 10, 30, "every event delivered")
    time.sleep(1.0)  # a duplicate, were there one, would arrive now
    harness.kill_all()
    assert sorted(run for run, _, _ in _events(harness)) == sorted(runs)
    counts = Counter(receiver.keys)
    # An outage shorter than the claim (DAGCTL_NOTIFY_CLAIM_SECONDS) sends nothing twice.
    assert len(counts) == 10 and max(counts.values()) == 1, counts
    harness.check()
