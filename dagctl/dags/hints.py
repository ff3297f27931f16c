"""'Did you mean' suggestions for typos in keys, task names and DAG names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    options = [str(c) for c in choices]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        # Task names are often typed without their extension.
        close = [c for c in options if c.rsplit(".", 1)[0] == word][:1]
    return f"did you mean {close[0]!r}?" if close else None
