"""Presence: what the state database says about one DAG and the live schedulers.

Apart from records.py (which re-exports it) so that `dagctl trigger`, which reads it
on its fast path, does not import the store's other record classes: ~20 frozen
dataclasses, a tenth of that command's start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Presence:
    """What the state database says about one DAG and the live schedulers."""

    paused: bool
    live_schedulers: int  # alive: not stopped, heartbeat within the stale limit
    live_knowing: int  # of those, how many have loaded the DAG
