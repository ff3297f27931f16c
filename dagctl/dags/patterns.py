"""User regular expressions (a param's `pattern`), run by RE2 in linear time.

Python's `re` backtracks: `^(a+)+$` against forty `a`s and a `!` takes longer than
the universe has left, and a DAG holding it would hang `validate`, `list` and the
scheduler (which then ignores SIGTERM, stuck inside one C call). RE2 guarantees time
linear in the input, at the price of backreferences and lookaround, which it refuses:
such a pattern is a validation error naming the fix.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

UNSUPPORTED_HINT = (
    "dagctl matches patterns with RE2, in linear time: no backreferences (\\1), lookahead"
    " (?=...) or lookbehind (?<=...); rewrite it without them"
)


class PatternError(ValueError):
    pass


@lru_cache(maxsize=512)
def _compile(pattern: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print to our stderr; the error is ours to report
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None
    except UnicodeEncodeError:
        raise PatternError("it is not valid UTF-8") from None


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used, or None."""
    try:
        _compile(pattern)
    except PatternError as exc:
        return f"pattern {pattern!r} cannot be used: {exc}"
    return None


def search(pattern: str, value: str) -> bool:
    """Whether `pattern` matches somewhere in `value` (JSON Schema's `pattern`), in time
    linear in len(value). Raises PatternError for a pattern RE2 refuses."""
    regex = _compile(pattern)
    try:
        return regex.search(value) is not None
    except UnicodeEncodeError:  # a lone surrogate (a YAML "\udcff"): RE2 reads UTF-8 only
        return regex.search(value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) is not None
