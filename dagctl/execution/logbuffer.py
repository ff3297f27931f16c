"""Capped, secret-masked capture of one task attempt's output.

A task may print 200 MB; the scheduler must keep a flat memory and the database a
bounded log. So the first half of the cap is kept as it arrives (and can be handed
over live), the last half is a ring of raw bytes, and whatever falls out of the
ring is only counted.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable

from dagctl.secrets import masking

DEFAULT_LOG_CAP_BYTES = 1024 * 1024
# A line longer than this is flushed without its end, so a task printing megabytes
# without a newline cannot grow the pending text; a secret cut by such a flush can
# escape masking (documented limit).
MAX_PENDING_LINE = 64 * 1024


def default_log_cap_bytes() -> int:
    """`DAGCTL_LOG_CAP_BYTES` (see dagctl.config)."""
    from dagctl.config import tuning

    return tuning().log_cap_bytes


def truncation_marker(dropped: int) -> str:
    return f"[dagctl: {dropped} bytes of output truncated]\n"


def masker(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function replacing every secret (the attempt's, and every password this process
    knows: `dagctl.secrets`) by `***`, whatever its length."""
    return masking(secrets)


class _LineMasker:
    """Bytes in, masked text out, one complete line at a time.

    Decoding is incremental, so a UTF-8 character split across two reads is decoded
    whole; masking works on complete lines, so a secret split across two reads is
    still masked (unless a single line exceeds MAX_PENDING_LINE)."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        self._mask = mask
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def feed(self, data: bytes, final: bool = False) -> str:
        text = self._pending + self._decoder.decode(data, final)
        if final:
            self._pending = ""
            return self._mask(text) if text else ""
        cut = text.rfind("\n") + 1
        if cut == 0:
            if len(text) < MAX_PENDING_LINE:
                self._pending = text
                return ""
            cut = len(text)
        self._pending = text[cut:]
        return self._mask(text[:cut])


class LogBuffer:
    """The stored log of one attempt: at most `cap_bytes` of raw output.

    - The first `cap_bytes // 2` bytes ("head") are decoded and masked line by line as
      they arrive; `take_new()` hands over the head text completed since the last call.
    - Later bytes go to a ring holding the last `cap_bytes - cap_bytes // 2` bytes;
      bytes pushed out of the ring are counted in `truncated_bytes`. The ring is only
      decoded and masked by `finish()`, because until the task ends nobody knows which
      of those bytes will survive.
    - `finish()` returns everything not yet taken: the rest of the head, then, if bytes
      were dropped, the line `[dagctl: N bytes of output truncated]`, then the ring.
      So the texts returned by all `take_new()` calls followed by `finish()` are the
      attempt's complete stored log, each byte of output appearing at most once.
    - `on_text`, if given, receives ALL output (uncapped, masked, line by line) as it
      arrives: what `dagctl run` prints to the terminal. It costs decoding every byte,
      so the worker manager does not use it.

    The cap counts raw output bytes; the stored text has at most that many characters
    plus the marker line (invalid UTF-8 becomes U+FFFD, one character per bad byte).
    """

    def __init__(
        self,
        cap_bytes: int | None = None,
        secrets: Iterable[str] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        cap = default_log_cap_bytes() if cap_bytes is None else max(2, cap_bytes)
        self._head_cap = cap // 2
        self._tail_cap = cap - self._head_cap
        self._mask = masker(secrets)
        self._head = _LineMasker(self._mask)
        self._head_bytes = 0
        self._ready: list[str] = []
        self._tail = bytearray()
        self._stream = _LineMasker(self._mask) if on_text is not None else None
        self._on_text = on_text
        self._finished = False
        self.total_bytes = 0
        self.truncated_bytes = 0

    def feed(self, data: bytes) -> None:
        if not data or self._finished:
            return
        self.total_bytes += len(data)
        if self._stream is not None and self._on_text is not None:
            text = self._stream.feed(data)
            if text:
                self._on_text(text)
        room = self._head_cap - self._head_bytes
        if room > 0:
            head, data = data[:room], data[room:]
            self._head_bytes += len(head)
            text = self._head.feed(head)
            if text:
                self._ready.append(text)
        if data:
            self._tail += data
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                # Deleting from the front of a bytearray is cheap in CPython: it moves
                # a start offset, not the bytes.
                del self._tail[:excess]
                self.truncated_bytes += excess

    @property
    def has_new(self) -> bool:
        """Whether take_new() would return text."""
        return bool(self._ready)

    def take_new(self) -> str:
        """Masked head text completed since the last call (empty once in ring mode)."""
        text = "".join(self._ready)
        self._ready.clear()
        return text

    def finish(self) -> str:
        """Everything not yet taken (see the class docstring). Later calls return ""."""
        if self._finished:
            return ""
        self._finished = True
        if self._stream is not None and self._on_text is not None:
            text = self._stream.feed(b"", final=True)
            if text:
                self._on_text(text)
        parts = [self.take_new()]
        if not self.truncated_bytes:
            # Head and ring are contiguous: decode and mask them as one text, so a
            # character or a secret straddling the boundary survives intact.
            parts.append(self._head.feed(bytes(self._tail), final=True))
        else:
            head_rest = self._head.feed(b"", final=True)
            parts.append(head_rest)
            tail = bytes(self._tail)
            # The ring may start inside a multi-byte character: skip its continuation
            # bytes rather than show a replacement character.
            skip = 0
            while skip < min(3, len(tail)) and 0x80 <= tail[skip] < 0xC0:
                skip += 1
            self.truncated_bytes += skip
            if (parts[0] + head_rest) and not (parts[0] + head_rest).endswith("\n"):
                parts.append("\n")
            parts.append(truncation_marker(self.truncated_bytes))
            parts.append(self._mask(tail[skip:].decode("utf-8", "replace")))
        self._tail = bytearray()
        return "".join(parts)
