"""When a scheduler renews its leases, stops its own attempts, and reaps the others'.

Times are time.monotonic() seconds. The leases themselves live in the database and
run out on its clock; a renewal counts from when it was sent, never later than the
database's own expiry, so the deadlines below are on the safe side of it.

- renew every lease/3;
- past FENCE_FRACTION of the lease since the last confirmed renewal, the loop stops
  our running attempts (SIGTERM, then SIGKILL after the kill grace);
- past GUARDIAN_FRACTION, the guardian process SIGKILLs them whatever the loop does
  (it may be stalled): both before the lease can run out and another scheduler may
  take the attempt over;
- reap at the earliest expiry we know of among the others' leases (REAP_SLACK_S
  after it), and at every renewal: a lease taken after that look runs for a whole
  lease, so looking again within lease/3 is soon enough to be back at its expiry.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE_FRACTION = 0.8
GUARDIAN_FRACTION = 0.9
REAP_SLACK_S = 0.05


@dataclass
class LeaseTimers:
    lease_seconds: float
    # By when every lease we hold has surely been renewed, or is gone.
    valid_until: float | None = None
    next_renewal: float = 0.0
    next_reap: float = 0.0

    def renewal_due(self, clock: float) -> bool:
        return clock >= self.next_renewal

    def renewed(self, sent_at: float) -> float:
        """The renewal sent at `sent_at` was committed; returns the guardian's deadline."""
        self.valid_until = sent_at + self.lease_seconds
        self.next_renewal = sent_at + self.lease_seconds / 3
        self.next_reap = min(self.next_reap, sent_at)
        return sent_at + self.lease_seconds * GUARDIAN_FRACTION

    def reap_due(self, clock: float) -> bool:
        return clock >= self.next_reap

    def reaped(self, clock: float, next_expiry_in: float | None) -> None:
        """After a reap: `next_expiry_in`, seconds until the earliest lease of another
        scheduler runs out (None: there is none)."""
        wait = self.lease_seconds / 3
        if next_expiry_in is not None:
            wait = min(wait, next_expiry_in + REAP_SLACK_S)
        self.next_reap = clock + wait

    def fence_at(self) -> float | None:
        """When the loop must stop our attempts if no renewal got through by then."""
        if self.valid_until is None:
            return None
        return self.valid_until - self.lease_seconds * (1 - FENCE_FRACTION)

    def next_due(self) -> float:
        return min(self.next_renewal, self.next_reap)
