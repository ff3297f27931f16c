"""The state store: the only package that imports SQLAlchemy."""

from __future__ import annotations

from dagctl.store.store import ClaimedAttempt, DagState, FinishedAttempt, LostAttempt, Store

__all__ = ["ClaimedAttempt", "DagState", "FinishedAttempt", "LostAttempt", "Store", "open_store"]


def open_store(url: str, *, migrate: bool) -> Store:
    """Connect, and check (or, with `migrate`, bring) the schema to the current revision."""
    store = Store(url)
    try:
        store.ensure_schema(migrate=migrate)
    except BaseException:
        store.close()
        raise
    return store
