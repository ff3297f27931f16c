"""The scheduler's options: its flags over the settings that have none (config.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagctl.config import (
    DEFAULT_LEASE_S,
    DEFAULT_MAX_OUTAGE_S,
    DEFAULT_ORPHAN_GRACE_S,
    DEFAULT_RELOAD_INTERVAL_S,
    Tuning,
)

DEFAULT_POLL_INTERVAL_S = 1.0
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    concurrency: int
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    lease_seconds: float = DEFAULT_LEASE_S
    reload_interval: float = DEFAULT_RELOAD_INTERVAL_S
    grace_seconds: float = DEFAULT_GRACE_S
    max_outage: float = DEFAULT_MAX_OUTAGE_S
    orphan_grace: float = DEFAULT_ORPHAN_GRACE_S
    once: bool = False
    until_idle: bool = False
    queues: tuple[str, ...] = ("default",)  # the work queues it claims from (--queue)

    @classmethod
    def from_tuning(cls, tuning: Tuning, **given: Any) -> SchedulerOptions:
        """The flags given, over the knobs without flags (DAGCTL_LEASE_SECONDS,
        DAGCTL_RELOAD_SECONDS, DAGCTL_MAX_OUTAGE_SECONDS; see dagctl.config)."""
        extra: dict[str, Any] = {
            "lease_seconds": tuning.lease_seconds,
            "reload_interval": tuning.reload_seconds,
            "max_outage": tuning.max_outage_seconds,
            "orphan_grace": tuning.orphan_grace_seconds,
        }
        return cls(**{**extra, **{k: v for k, v in given.items() if v is not None}})
