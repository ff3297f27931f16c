"""Settings resolved once per process: flag, then environment, then default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_HELP = "an SQLite file at $XDG_STATE_HOME/dagctl/state.db (~/.local/state/dagctl/state.db)"


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
        dags_path = Path(dags or os.environ.get("DAGCTL_DAGS") or "dags")
        url = db or os.environ.get("DATABASE_URL") or default_db_url()
        return cls(dags=dags_path, db_url=normalise_db_url(url), verbose=verbose)
