"""Every setting dagctl reads from its environment, read once per process and typed.

`Settings` holds what the command line can also give (flag, then environment, then
default); `Tuning` holds the operations and test knobs that have no flag. `SETTINGS`
lists them all, for `dagctl --help` and the README. Nothing is read at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from dagctl.errors import UsageError

DEFAULT_DB_HELP = "an SQLite file at $XDG_STATE_HOME/dagctl/state.db (~/.local/state/dagctl/state.db)"

DEFAULT_DAGS = "dags"
DEFAULT_LEASE_S = 30.0
DEFAULT_RELOAD_INTERVAL_S = 5.0
# A database outage longer than this ends the scheduler with exit code 3, so a
# supervisor can restart or alert, instead of a process that looks alive but does nothing.
DEFAULT_MAX_OUTAGE_S = 120.0
DEFAULT_ORPHAN_GRACE_S = 300.0
DEFAULT_KILL_GRACE_S = 5.0
DEFAULT_LOG_CAP_BYTES = 1024 * 1024
DEFAULT_OUTPUT_MAX_BYTES = 64 * 1024
DEFAULT_KUBE_POLL_S = 0.5
MIN_KUBE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Setting:
    env: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("DAGCTL_DAGS", DEFAULT_DAGS, "the DAGs folder (--dags)"),
    Setting(
        "DATABASE_URL",
        "SQLite file",
        "the state database (--db); postgres:// or postgresql:// for PostgreSQL",
    ),
    Setting("XDG_STATE_HOME", "~/.local/state", "where the default SQLite file lives (dagctl/state.db)"),
    Setting(
        "DAGCTL_LEASE_SECONDS",
        f"{DEFAULT_LEASE_S:g}",
        "lease of a running attempt; a dead scheduler's attempts are retried after it",
    ),
    Setting(
        "DAGCTL_RELOAD_SECONDS", f"{DEFAULT_RELOAD_INTERVAL_S:g}", "how often the scheduler re-reads the DAGs"
    ),
    Setting(
        "DAGCTL_MAX_OUTAGE_SECONDS",
        f"{DEFAULT_MAX_OUTAGE_S:g}",
        "state database outage after which the scheduler exits with code 3",
    ),
    Setting(
        "DAGCTL_ORPHAN_GRACE_SECONDS",
        f"{DEFAULT_ORPHAN_GRACE_S:g}",
        "how long a DAG may be deleted, renamed away or broken before its active runs end failed",
    ),
    Setting(
        "DAGCTL_KILL_GRACE", f"{DEFAULT_KILL_GRACE_S:g}", "seconds between SIGTERM and SIGKILL of a task"
    ),
    Setting(
        "DAGCTL_LOG_CAP_BYTES", str(DEFAULT_LOG_CAP_BYTES), "output stored per attempt; the rest is counted"
    ),
    Setting(
        "DAGCTL_OUTPUT_MAX_BYTES",
        str(DEFAULT_OUTPUT_MAX_BYTES),
        "largest task output ($DAGCTL_OUTPUT) stored per attempt; beyond it the attempt fails",
    ),
    Setting(
        "DAGCTL_KUBE_POLL_SECONDS", f"{DEFAULT_KUBE_POLL_S:g}", "how often the kubernetes manager lists pods"
    ),
    Setting("DAGCTL_FAKE_NOW", "unset", "tests and demos only: the clock starts at this UTC instant"),
    Setting("DAGCTL_UI_TOKEN", "unset", "the token `dagctl serve --allow-actions` asks for to act"),
    Setting("DAGCTL_UI_URL", "unset", "base URL of the dashboard; alerts then link to the run"),
    Setting("DAGCTL_NOTIFY_RETRY_SECONDS", "2", "first delay before an alert is sent again (doubles)"),
    Setting("DAGCTL_NOTIFY_MAX_ATTEMPTS", "12", "delivery passes of one alert before it is given up"),
    Setting(
        "DAGCTL_NOTIFY_CLAIM_SECONDS", "120", "how long a scheduler holds alerts it sends; then others may"
    ),
)


def ui_token() -> str | None:
    """The dashboard's action token (DAGCTL_UI_TOKEN); None when unset or empty."""
    return os.environ.get("DAGCTL_UI_TOKEN") or None


def settings_epilog() -> str:
    """The environment settings as `dagctl --help` lists them."""
    width = max(len(s.env) for s in SETTINGS)
    rows = [f"{s.env:<{width}}  {s.meaning} (default {s.default})" for s in SETTINGS]
    return "Environment (each read once at start):\n\n\b\n" + "\n".join(rows)


def default_db_url() -> str:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return f"sqlite:///{Path(state_home) / 'dagctl' / 'state.db'}"


def normalise_db_url(url: str) -> str:
    """Heroku-style postgres:// URLs are accepted; SQLAlchemy only knows postgresql://."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


@dataclass(frozen=True, slots=True)
class Settings:
    dags: Path
    db_url: str
    verbose: bool = False

    @classmethod
    def resolve(
        cls, dags: Path | str | None = None, db: str | None = None, verbose: bool = False
    ) -> Settings:
        dags_path = Path(dags or os.environ.get("DAGCTL_DAGS") or DEFAULT_DAGS)
        url = db or os.environ.get("DATABASE_URL") or default_db_url()
        from dagctl import secrets

        secrets.register_url(url)
        return cls(dags=dags_path, db_url=normalise_db_url(url), verbose=verbose)


@dataclass(frozen=True, slots=True)
class Tuning:
    lease_seconds: float = DEFAULT_LEASE_S
    reload_seconds: float = DEFAULT_RELOAD_INTERVAL_S
    max_outage_seconds: float = DEFAULT_MAX_OUTAGE_S
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_S
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_S
    log_cap_bytes: int = DEFAULT_LOG_CAP_BYTES
    output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES
    kube_poll_seconds: float = DEFAULT_KUBE_POLL_S
    fake_now: datetime | None = None  # naive UTC

    @property
    def stale_after_seconds(self) -> float:
        """A scheduler is alive while its heartbeat (renewed every lease/3) is younger
        than three lease periods."""
        return 3 * self.lease_seconds


def _number(name: str, default: float, *, minimum: float, above: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > minimum if above else value >= minimum):
        bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
        raise UsageError(f"{name}={raw!r} is not a number {bound}", f"unset {name} or give e.g. {default:g}")
    return value


def _instant(name: str) -> datetime | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an ISO 8601 time", "e.g. 2024-03-31T00:30:00Z") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


@cache
def tuning() -> Tuning:
    """The knobs, read from the environment on first use; an invalid value is a
    UsageError naming the variable."""
    return Tuning(
        lease_seconds=_number("DAGCTL_LEASE_SECONDS", DEFAULT_LEASE_S, minimum=0, above=True),
        reload_seconds=_number("DAGCTL_RELOAD_SECONDS", DEFAULT_RELOAD_INTERVAL_S, minimum=0),
        max_outage_seconds=_number("DAGCTL_MAX_OUTAGE_SECONDS", DEFAULT_MAX_OUTAGE_S, minimum=0),
        orphan_grace_seconds=_number("DAGCTL_ORPHAN_GRACE_SECONDS", DEFAULT_ORPHAN_GRACE_S, minimum=0),
        kill_grace_seconds=_number("DAGCTL_KILL_GRACE", DEFAULT_KILL_GRACE_S, minimum=0),
        log_cap_bytes=int(_number("DAGCTL_LOG_CAP_BYTES", DEFAULT_LOG_CAP_BYTES, minimum=2)),
        output_max_bytes=int(_number("DAGCTL_OUTPUT_MAX_BYTES", DEFAULT_OUTPUT_MAX_BYTES, minimum=2)),
        kube_poll_seconds=max(
            MIN_KUBE_POLL_S, _number("DAGCTL_KUBE_POLL_SECONDS", DEFAULT_KUBE_POLL_S, minimum=0, above=True)
        ),
        fake_now=_instant("DAGCTL_FAKE_NOW"),
    )


@dataclass(frozen=True, slots=True)
class AlertTuning:
    ui_url: str | None
    retry_seconds: float
    max_attempts: int
    claim_seconds: float


@cache
def alert_tuning() -> AlertTuning:
    """The alert delivery knobs (dagctl/notify/), read on first use."""
    return AlertTuning(
        ui_url=os.environ.get("DAGCTL_UI_URL", "").strip().rstrip("/") or None,
        retry_seconds=_number("DAGCTL_NOTIFY_RETRY_SECONDS", 2.0, minimum=0),
        max_attempts=int(_number("DAGCTL_NOTIFY_MAX_ATTEMPTS", 12, minimum=1)),
        claim_seconds=_number("DAGCTL_NOTIFY_CLAIM_SECONDS", 120.0, minimum=0, above=True),
    )
