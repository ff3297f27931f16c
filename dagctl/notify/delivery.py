"""The outbox sender every scheduler runs: a daemon thread with its own connection,
so a slow or dead channel never holds up scheduling. It takes due events (see
store/notifications.py: one owner at a time across every scheduler), sends each to
the channels it has not reached yet, and records the outcome; a failed pass is tried
again with doubling delays, up to DAGCTL_NOTIFY_MAX_ATTEMPTS passes.

A channel that keeps failing is logged once when it starts failing and once when it
works again, not once per event; `dagctl why` lists the events it holds up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dagctl.config import alert_tuning
from dagctl.dags.model import Dag, NotifyRule
from dagctl.errors import DagctlError, DatabaseError
from dagctl.notify import channels_by_event, rules_by_dag
from dagctl.notify.channels import Channel, ChannelError, register_secrets
from dagctl.notify.deadlines import DEADLINE_MISSED, deadline_at
from dagctl.notify.messages import build_payload, render_text
from dagctl.store import Store
from dagctl.store.records import Notification

log = logging.getLogger("dagctl.notify")

BATCH = 20
POLL_INTERVAL_S = 1.0
MAX_RETRY_DELAY_S = 300.0


class AlertDelivery:
    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner
        self.channels: Mapping[str, Mapping[str, Any]] = {}  # replaced whole on each sync
        self.rules: dict[str, dict[str, tuple[str, ...]]] = {}
        # The rules of DAGs no longer loaded (deleted or broken) as last seen here, and
        # dagctl.yaml's own: what their orphaned runs' `failure` alerts go by.
        self._gone_rules: dict[str, dict[str, tuple[str, ...]]] = {}
        self._default_rules: dict[str, tuple[str, ...]] = {}
        self._deadline_dags: dict[str, Dag] = {}
        self._failing: dict[str, str] = {}
        # Left by a pass a database outage cut short: outcomes sent but not recorded, and
        # events taken but not sent yet (ours until `_held_until`, on the monotonic clock).
        self._unrecorded: list[tuple[int, str, set[str], str | None, float | None]] = []
        self._held: list[Notification] = []
        self._held_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_store = False

    def check_deadlines(self) -> list[int]:
        """Write a `deadline_missed` event for each run past its deadline (once per run,
        across schedulers: the store's unique key); the runs that got one now."""
        dags = self._deadline_dags
        if not dags:
            return []
        fired = self.store.enqueue_missed_deadlines(
            lambda name, slot: deadline_at(dags[name], slot),
            {name: self.rules[name][DEADLINE_MISSED] for name in dags},
        )
        for run_id in fired:
            log.warning("run %d missed its deadline: alert queued", run_id)
        return fired

    def rules_when_gone(self, dag_names: Collection[str]) -> dict[str, dict[str, tuple[str, ...]]]:
        """The rules for runs of DAGs that are no longer loaded (deleted, renamed away or
        broken), failed by `fail_orphaned_runs`: each DAG's rules as this scheduler last
        loaded them, else (it never loaded that DAG, e.g. it started since) dagctl.yaml's."""
        return {name: self._gone_rules.get(name, self._default_rules) for name in dag_names}

    def deliver_due(self, limit: int = BATCH) -> int:
        """One pass: record the outcomes an outage kept from being recorded, then take and
        deliver up to `limit` due events (or those an outage interrupted, while they are
        still surely ours); how many were taken. A DatabaseError leaves it midway."""
        while self._unrecorded:
            self.store.finish_notification(*self._unrecorded[0])
            self._unrecorded.pop(0)
        if self._held and time.monotonic() < self._held_until:
            taken, self._held = self._held, []
        else:
            # The hold must outlast one pass over the batch (each send has its timeout).
            hold = alert_tuning().claim_seconds
            taken, self._held = self.store.claim_notifications(self.owner, limit, hold), []
            # Resumed after an outage only well within the hold: past it, another
            # scheduler may have taken them (none of them was sent: no harm).
            self._held_until = time.monotonic() + hold / 2
        for index, event in enumerate(taken):
            payload: dict[str, Any] | None = None
            try:
                payload, problem = build_payload(self.store, event), None
            except DatabaseError:
                self._held = taken[index:]
                raise
            except DagctlError as exc:
                problem = f"cannot build the message: {exc}"
            outcome = self._send(event, payload, problem)
            try:
                self.store.finish_notification(*outcome)
            except DatabaseError:
                # Sent, not recorded: recorded once the database is back, so a restart
                # shorter than the hold sends nothing twice.
                self._unrecorded.append(outcome)
                self._held = taken[index + 1 :]
                raise
        return len(taken)

    def _send(
        self, event: Notification, payload: dict[str, Any] | None, problem: str | None
    ) -> tuple[int, str, set[str], str | None, float | None]:
        """Send `event` (`payload`, or `problem` when it could not be built) to the
        channels it has not reached; the outcome to record (`finish_notification`'s
        arguments)."""
        channels = self.channels
        sent = set(event.sent_to)
        errors = [problem] if problem else []
        if payload is not None:
            text = render_text(payload)
            for name in event.channels:
                if name in sent:
                    continue  # reached by an earlier pass: at-least-once, not again and again
                spec = channels.get(name)
                try:
                    if spec is None:
                        raise ChannelError(f"channel {name!r} is not declared in dagctl.yaml")
                    Channel(name, spec).send(payload, text, os.environ)
                except ChannelError as exc:
                    errors.append(f"{name}: {exc}")
                    self._channel_failed(name, str(exc))
                    continue
                sent.add(name)
                self._channel_works(name)
        error = "; ".join(errors) or None
        retry_in = None
        tuning = alert_tuning()
        if error is not None and event.attempts < tuning.max_attempts:
            retry_in = min(MAX_RETRY_DELAY_S, tuning.retry_seconds * 2 ** (event.attempts - 1))
        elif error is not None:
            log.error(
                "alert %d (%s of %s) given up after %d attempts: %s",
                event.id,
                event.event,
                event.dag_name,
                event.attempts,
                error,
            )
        return event.id, self.owner, sent, error, retry_in

    def _channel_failed(self, name: str, error: str) -> None:
        if name not in self._failing:
            log.warning("alert channel %s is failing (alerts are retried): %s", name, error)
        self._failing[name] = error

    def _channel_works(self, name: str) -> None:
        if self._failing.pop(name, None) is not None:
            log.info("alert channel %s works again", name)

    # ------------------------------------------------------------ the thread

    def wake(self) -> None:
        self._wake.set()

    def sync(
        self,
        channels: Mapping[str, Mapping[str, Any]],
        dags: Mapping[str, Dag],
        default_rules: Sequence[NotifyRule] = (),
    ) -> None:
        """New definitions: the channels to send through, the rules the store applies
        (each DAG's, and `default_rules`, dagctl.yaml's, for DAGs that are gone)."""
        register_secrets(channels, os.environ)
        rules = rules_by_dag(dags)
        gone = self._gone_rules | {name: r for name, r in self.rules.items() if name not in dags}
        self._gone_rules = {name: r for name, r in gone.items() if name not in dags}
        self._default_rules = channels_by_event(default_rules)
        self.channels, self.rules = channels, rules
        self._deadline_dags = {
            name: dag
            for name, dag in dags.items()
            if (dag.deadline is not None or dag.finish_by) and DEADLINE_MISSED in self.rules.get(name, {})
        }
        if self._own_store and self._thread is None:
            # Only once the channels are known: else the first events would fail.
            self._thread = threading.Thread(target=self._loop, name="dagctl-alerts", daemon=True)
            self._thread.start()

    def start(self) -> None:
        """Deliver from a thread with a connection of its own (a Store is not shared
        between threads); until then `deliver_due` works on the caller's store."""
        from dagctl.store.store import Store

        self.store, self._own_store = Store(self.store.url), True

    def stop(self, drain_seconds: float) -> None:
        """Stop after delivering what is due now, within `drain_seconds`."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(drain_seconds)
            if not self._thread.is_alive():
                self.store.close()
        elif self._own_store:
            self.store.close()

    def _loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                self.check_deadlines()
                busy = self.deliver_due() > 0
            except DagctlError as exc:  # database outage: the scheduler reports it
                log.debug("alert delivery pass abandoned: %s", exc)
                busy = False
            except Exception:  # a bug must not silently end alerting on this scheduler
                log.exception("alert delivery pass failed; trying again in %g s", POLL_INTERVAL_S)
                busy = False
            if stopping and not busy:
                return
            if not busy:
                self._wake.wait(POLL_INTERVAL_S)
                self._wake.clear()


__all__ = ["AlertDelivery"]
