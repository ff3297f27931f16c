"""What the scheduler loop needs from a task manager, and the values they exchange.

A manager starts claimed task attempts somewhere (a subprocess, a pod), never blocks
the loop, and reports outcomes when asked. The scheduler owns all database work: a
manager only hands back plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from dagctl.dags.model import Dag
from dagctl.execution.attempt import Attempt, PollResult


class Manager(Protocol):
    """The interface every task manager implements (built-in or from the
    `dagctl.managers` entry point group)."""

    name: str

    def launch(self, attempt: Attempt) -> None:
        """Start the attempt and return at once. Errors starting it are reported by poll()."""

    def poll(self) -> PollResult:
        """Outcomes of attempts that ended since the last call, and new log output."""

    def running(self) -> int:
        """How many attempts are in flight (they count against --concurrency)."""

    def wait_fds(self) -> Sequence[int]:
        """File descriptors that become readable when poll() has something new."""

    def next_wakeup(self) -> float | None:
        """Seconds from now by which poll() must be called again even if no descriptor
        becomes readable (timeouts, kill grace periods, log chunks due), or None."""

    def cancel(self, task_run_id: int, reason: str) -> None:
        """Stop an attempt; its outcome (failed, with `reason`) comes through poll()."""

    def shutdown(self, grace_seconds: float) -> PollResult:
        """Let running attempts finish within the grace period, then kill them."""


@runtime_checkable
class FencingManager(Manager, Protocol):
    """Optional, for managers whose attempts are processes of this host (the worker):
    after every lease renewal the database confirmed, the scheduler calls
    `kill_after(deadline)`, a time.monotonic() instant safely before those leases can
    run out. Past it, with no later call, something that does not depend on the
    scheduler's loop (the guardian process) must kill every running attempt, so that
    a stalled scheduler's tasks are dead before another scheduler may take them over."""

    def kill_after(self, deadline: float | None) -> None:
        """Kill every running attempt once `deadline` passes without a later call."""


@runtime_checkable
class AdoptingManager(Manager, Protocol):
    """Optional, for managers whose attempts live outside the scheduler's process (pods)
    and so outlive it. The scheduler then:

    - calls `bind(owner, installation)` once before the first launch;
    - calls `discard(ids)` after the outcomes of these attempts are committed to the
      state database: only then may what is left of them (a finished pod) be deleted;
    - every lease period/3, calls `found(dags)`: the task run ids of attempts alive out
      there that this manager does not track (a pod whose scheduler died). The store
      then hands back the ones whose lease expired: the scheduler takes their lease and
      calls `launch()` for them, which must watch the existing attempt instead of
      starting it again. The ids whose attempt already ended are passed to `discard`.
    """

    def bind(self, owner: str, installation: str) -> None:
        """The scheduler's id (recorded on what the manager starts) and the state
        database's installation id (what the manager's attempts belong to: the same
        whatever URL reaches the database, see store/installation.py)."""

    def found(self, dags: Mapping[str, Dag]) -> Sequence[int]:
        """Task run ids of attempts of `dags` running (or ended) outside this manager's
        knowledge. Never raises; an unreachable backend finds nothing."""

    def discard(self, task_run_ids: Sequence[int]) -> None:
        """Delete what is left of these attempts; unknown ids are ignored. Never raises."""
