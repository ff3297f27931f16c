"""The grace period of a stopping scheduler: running attempts may end on their own,
while their leases are kept."""

from __future__ import annotations

import contextlib
import math
import selectors
import time
from collections.abc import Callable

from dagctl.errors import DatabaseError
from dagctl.managers.base import Manager
from dagctl.scheduling.leases import LeaseTimers


def grace_period(
    manager: Manager,
    leases: LeaseTimers,
    renew: Callable[[float], None],
    hurried: Callable[[], bool],
    poll: Callable[[], None],
    end: float,
) -> None:
    """Let running attempts end until `end` (monotonic; `hurried()`, a second signal,
    cuts it short), renewing their leases meanwhile: else a grace as long as the lease
    would let the guardian kill them, or another scheduler take them over while they
    still run. `poll` collects what ended."""
    with selectors.DefaultSelector() as selector:
        while manager.running() and not hurried() and time.monotonic() < end:
            clock = time.monotonic()
            if leases.renewal_due(clock):
                with contextlib.suppress(DatabaseError):  # then the guardian's deadline holds
                    renew(clock)
            timeout = min(end, leases.next_renewal) - clock
            wakeup = manager.next_wakeup()
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
            for fd in manager.wait_fds():
                selector.register(fd, selectors.EVENT_READ)
            selector.select(max(0.0, min(timeout, 0.5, math.inf if wakeup is None else wakeup)))
            poll()
