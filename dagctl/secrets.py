"""The one registry of secret values this process knows, and the one way to mask them.

What registers here: the state database URL's password (when the store is opened),
and every other password dagctl learns about (connection URLs, alert channel secrets
to come). Secret params are per attempt and join the registered values in each
attempt's masker (`dagctl.execution.logbuffer.masker`). Whatever is masked, stored
logs, printed task output and one-line errors, goes through `masking` so that a
value registered once is hidden everywhere, whatever its length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any
from urllib.parse import unquote

MASK = "***"

_registered: set[str] = set()
_mask_registered: Callable[[str], str] | None = None  # built again when a value joins


def register(value: str | None) -> None:
    """Mask `value` from now on, in everything this process stores or prints."""
    global _mask_registered
    if value and value not in _registered:
        _registered.add(value)
        _mask_registered = None


def register_url(url: str | None) -> None:
    """Mask the password of `url` (as written, and percent-decoded)."""
    for password in url_passwords(url):
        register(password)


def registered() -> frozenset[str]:
    return frozenset(_registered)


def url_passwords(url: str | None) -> list[str]:
    """The password in `scheme://user:password@host/...` as written in the URL and
    decoded (a task echoing the URL shows the first, a driver error the second).
    Read by hand, not by urllib: a URL urllib refuses (a bad port) still has one."""
    if not url or "://" not in url:
        return []
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    _, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return []
    return sorted({password, unquote(password)})


def masking(extra: Iterable[str] = ()) -> Callable[[str], str]:
    """A function replacing every registered value and every value of `extra` (the
    attempt's secret params) by `***`. Every non-empty value counts, however short:
    a one-character password is still a password."""
    values = sorted({v for v in (*_registered, *extra) if v}, key=len, reverse=True)
    if not values:
        return _identity
    # Longest first, so that a secret containing another is masked whole.
    pattern = re.compile("|".join(re.escape(v) for v in values))
    return lambda text: pattern.sub(MASK, text)


def mask(text: str) -> str:
    """`text` with every registered value masked."""
    global _mask_registered
    if not _registered:
        return text
    if _mask_registered is None:
        _mask_registered = masking()
    return _mask_registered(text)


def __getattr__(name: str) -> Any:
    # MaskingFormatter, built on first use: it subclasses logging's Formatter, and
    # importing logging cost every `dagctl` start ~4 ms for the scheduler's log lines.
    if name == "MaskingFormatter":
        return _masking_formatter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _masking_formatter() -> type[Any]:
    import logging

    class MaskingFormatter(logging.Formatter):
        """Log lines (tracebacks included) with every registered value masked."""

        def format(self, record: logging.LogRecord) -> str:
            return mask(super().format(record))

    return MaskingFormatter


def _identity(text: str) -> str:
    return text
