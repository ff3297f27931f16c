"""A fast path for the plain YAML that DAG files are almost always made of.

Composing a document in libyaml builds a Python node and two mark objects for every
value, then the node tree is walked again to build the values: ~40 % of loading a DAG.
Most DAG files are block mappings of `key: value` lines, nested mappings, `- item`
lists and `[a, "b"]` lists of scalars. Such a document is read here line by line,
with PyYAML's own resolver typing each plain scalar, so the values are the ones
libyaml would give.

Anything outside that subset, and anything doubtful (a `#` after a value, a quote
with an escape, a multi-line scalar, an anchor, a tab, a character YAML does not
print, a duplicate key, a value its constructor refuses), makes `load` return
NOT_SIMPLE: the caller then parses the text the usual way, which is also what reports
every mistake with its line. Only documents that parse cleanly are read here.
"""

from __future__ import annotations

import datetime
import re
import sys
from collections.abc import Callable
from typing import Any

import yaml

NOT_SIMPLE: Any = object()

_STR = "tag:yaml.org,2002:str"
_INTERN_UP_TO = 64  # as yamldoc: one copy of the short strings every file repeats
# Deeper than this the general path handles it (and its depth limit applies).
_MAX_NESTING = 20
# A key the fast path takes (quoted keys and others go to libyaml), and a list item
# that is a `key: value` pair (a mapping in a list: left to libyaml too).
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_KEY_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*:(?: .*)?")
# A plain scalar may not begin with an indicator; `-`, `?` and `:` may begin one when a
# non-space follows, but are left to the general path.
_PLAIN_START_REFUSED = frozenset("-?:,[]{}#&*!|>'\"%@` ")
# Items of a one-line flow list: "double" (no escapes), 'single' (no doubled quote),
# or plain (not beginning with an indicator, without flow indicators or quotes).
_FLOW_ITEM = r"\"[^\"\\]*\"|'[^']*'|[^\s\-?:,\[\]{}#&*!|>'\"%@`][^,\[\]{}#'\"]*"
_FLOW_LIST = re.compile(rf"\[ *(?:(?:{_FLOW_ITEM}) *(?:, *(?:{_FLOW_ITEM}) *)*)?\]")
_FLOW_ITEMS = re.compile(_FLOW_ITEM)
# ASCII control characters but the newline: YAML refuses most, libyaml reports them.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


class _NotSimple(Exception):
    pass


_NOT_CACHED: Any = object()
# Values and keys by their text: the same few (`type: no_op`, `retries: 2`, task names)
# recur in every file of a tree. Bounded; only immutable values are kept.
_CACHE_MAX = 50_000
_CACHE_TEXT_MAX = 200
_IMMUTABLE = (str, int, float, bool, type(None), datetime.date, datetime.datetime)
Lines = list[tuple[int, str]]


class PlainYaml:
    """Reads plain documents with one loader's resolver and scalar constructors."""

    def __init__(
        self, resolve: Callable[[Any, Any, Any], str], scalars: dict[str, Callable[[Any], Any]]
    ) -> None:
        self.resolve = resolve  # resolve(kind, value, implicit), as the loader's
        self.scalars = scalars  # the constructors of the non-string scalar tags
        self._values: dict[str, Any] = {}  # text -> a scalar, or a flow list as a tuple
        self._keys: dict[str, Any] = {}  # text -> the interned key, or None

    def load(self, text: str) -> Any:
        """The document's data, or NOT_SIMPLE."""
        if _CONTROL.search(text) or "\r" in text or (not text.isascii() and not _printable(text)):
            return NOT_SIMPLE
        lines: Lines = []
        for raw in text.split("\n"):
            content = raw.lstrip(" ")
            if not content or content[0] == "#":
                continue
            lines.append((len(raw) - len(content), content.rstrip(" ")))
        if not lines:
            return None
        try:
            value, end = self._block(lines, 0, lines[0][0], 0)
        except (_NotSimple, RecursionError):
            return NOT_SIMPLE
        return value if end == len(lines) else NOT_SIMPLE

    def _block(self, lines: Lines, index: int, indent: int, depth: int) -> tuple[Any, int]:
        """The mapping or list whose lines start at `index`, indented by `indent`;
        returns it and the index of the first line after it."""
        if depth > _MAX_NESTING:
            raise _NotSimple
        if _is_item(lines[index][1]):
            return self._sequence(lines, index, indent)
        return self._mapping(lines, index, indent, depth)

    def _mapping(self, lines: Lines, index: int, indent: int, depth: int) -> tuple[dict[str, Any], int]:
        count = len(lines)
        mapping: dict[str, Any] = {}
        while index < count:
            line_indent, content = lines[index]
            if line_indent < indent:
                break
            if line_indent > indent:
                raise _NotSimple  # a continued scalar, or a mistake: the general path says
            # `key:` then the end of the line or a space: a bare `a:b` is one plain scalar.
            text, colon, rest = content.partition(":")
            key = self._key(text) if colon and (not rest or rest[0] == " ") else None
            if key is None or key in mapping:
                raise _NotSimple
            rest = rest.lstrip(" ")
            index += 1
            if rest:
                value = self._value(rest)
            elif index < count and (
                lines[index][0] > indent or (lines[index][0] == indent and _is_item(lines[index][1]))
            ):
                value, index = self._block(lines, index, lines[index][0], depth + 1)
            else:
                value = None
            mapping[key] = value
        return mapping, index

    def _sequence(self, lines: Lines, index: int, indent: int) -> tuple[list[Any], int]:
        count = len(lines)
        items: list[Any] = []
        while index < count:
            line_indent, content = lines[index]
            if line_indent < indent:
                break
            if line_indent > indent:
                raise _NotSimple  # a nested block in a list item, a continued scalar...
            if not content.startswith("- "):
                break  # the next key of the mapping holding a list written at its own indent
            item = content[2:].lstrip(" ")
            if not item or _KEY_LINE.fullmatch(item):
                raise _NotSimple  # a mapping in a list
            items.append(self._value(item))
            index += 1
        return items, index

    def _key(self, text: str) -> str | None:
        """The key, interned as libyaml's reading interns it (the same few keys in every
        file, kept by a scheduler for as long as it runs); None when not a plain string
        key (`on:`, `null:`, `1:`, quoted keys are left to the general path)."""
        key = self._keys.get(text, _NOT_CACHED)
        if key is _NOT_CACHED:
            plain = _KEY.fullmatch(text) is not None
            string = plain and self.resolve(yaml.ScalarNode, text, (True, False)) == _STR
            key = _interned(text) if string else None
            if len(self._keys) < _CACHE_MAX:
                self._keys[_interned(text)] = key
        return key  # type: ignore[no-any-return]

    def _value(self, text: str) -> Any:
        """One scalar, or a one-line flow list of scalars."""
        value = self._values.get(text, _NOT_CACHED)
        if value is _NOT_CACHED:
            value = self._read_value(text)
            if len(text) <= _CACHE_TEXT_MAX and len(self._values) < _CACHE_MAX:
                self._values[text] = value
        return list(value) if type(value) is tuple else value

    def _read_value(self, text: str) -> Any:
        if "#" in text:
            raise _NotSimple  # a comment, or a `#` in a value: left to the general path
        if text[0] == "[":
            if _FLOW_LIST.fullmatch(text) is None:
                raise _NotSimple
            return tuple(self._scalar(item.rstrip(" ")) for item in _FLOW_ITEMS.findall(text[1:-1]))
        return self._scalar(text)

    def _scalar(self, text: str) -> Any:
        first = text[0]
        if first in "\"'":
            if len(text) < 2 or text[-1] != first or "\\" in text or first in text[1:-1]:
                raise _NotSimple
            return _interned(text[1:-1])
        if first in _PLAIN_START_REFUSED or ": " in text or text.endswith(":"):
            raise _NotSimple
        tag = self.resolve(yaml.ScalarNode, text, (True, False))
        if tag == _STR:
            return _interned(text)
        make = self.scalars.get(tag)
        if make is None:
            raise _NotSimple
        try:
            value = make(yaml.ScalarNode(tag, text))
        except (ValueError, TypeError, AttributeError, OverflowError):
            raise _NotSimple from None  # the general path reports it with its line
        if not isinstance(value, _IMMUTABLE):
            raise _NotSimple  # the safe scalars are all immutable; a cached value must be
        return value


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _printable(text: str) -> bool:
    # Python's printable set is narrower than YAML's (it refuses U+2028, NEL, ...): what
    # it refuses goes the general way, which knows YAML's rules.
    return all(line.isprintable() for line in text.split("\n"))


def _interned(text: str) -> str:
    return sys.intern(text) if len(text) <= _INTERN_UP_TO else text
