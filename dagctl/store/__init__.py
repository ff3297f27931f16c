"""The state store: the only package that imports SQLAlchemy.

SQLAlchemy is imported when `Store` is first used, not with the package: the records
(plain values, records.py) and `dagctl.store.fast_trigger` (the `trigger` fast path)
work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagctl.store.records import ClaimedAttempt, DagState, FinishedAttempt, LostAttempt
    from dagctl.store.store import Store

__all__ = ["ClaimedAttempt", "DagState", "FinishedAttempt", "LostAttempt", "Store", "open_store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from dagctl.store.store import Store

        return Store
    if name in __all__:
        from dagctl.store import records

        return getattr(records, name)
    raise AttributeError(f"module 'dagctl.store' has no attribute {name!r}")


def open_store(url: str, *, migrate: bool) -> Store:
    """Connect, and check (or, with `migrate`, bring) the schema to the current revision."""
    from dagctl.store.store import Store

    store = Store(url)
    try:
        store.ensure_schema(migrate=migrate)
    except BaseException:
        store.close()
        raise
    return store
