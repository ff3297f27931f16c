"""Safe YAML reading that can say on which line a field lives.

Documents are loaded with libyaml's safe loader when available. Line numbers are only
needed when something is wrong, so the node tree is composed again lazily, for the
failing document only: valid files pay nothing for error reporting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from dagctl.dags import yamlfast

# How a plain scalar is typed ("5m" a string, "100" an int, "no" a boolean) depends on
# its text alone (the safe loaders have no path resolvers), and the same few texts
# (keys, task names, durations) recur in every file of a tree. libyaml calls back into
# PyYAML's Python resolver for every node, which tries a list of regular expressions:
# a fifth of composing a small document. Remembered answers, bounded.
_RESOLVED: dict[tuple[Any, Any, Any], str] = {}
_RESOLVED_MAX = 20_000
_RESOLVED_TEXT_MAX = 64
_resolve: Callable[[Any, Any, Any, Any], str] = yaml.resolver.Resolver.resolve


def _remembered_resolve(loader: Any, kind: Any, value: Any, implicit: Any) -> str:
    key = (kind, value, implicit)
    try:
        return _RESOLVED[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value: never from libyaml, but stay general
        return _resolve(loader, kind, value, implicit)
    tag = _resolve(loader, kind, value, implicit)
    if (value is None or len(value) <= _RESOLVED_TEXT_MAX) and len(_RESOLVED) < _RESOLVED_MAX:
        _RESOLVED[key] = tag
    return tag


try:

    class _CLoader(yaml.CSafeLoader):
        resolve = _remembered_resolve

    _Loader: type[yaml.SafeLoader] = _CLoader  # type: ignore[assignment]
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

# An alias-heavy document ("billion laughs") loads as a small graph of shared objects
# but explodes when anything walks it (schema validation, JSON encoding). Past this
# many expanded nodes the document is refused.
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 200
_DEPTH_HINT = f"nest at most {MAX_DEPTH} levels"


# libyaml's composer recurses in C for each level of nesting and overflows the C stack
# (a segfault, not an exception) somewhere past 20,000 levels: a file of 30,000 "["
# kills the process. Every level of nesting needs one of these indicators, so a text
# with few of them is safe for libyaml; any other text is parsed by PyYAML's pure-Python
# loader, which stops at Python's recursion limit instead.
_NESTING_INDICATORS = "[{-?:"
MAX_INDICATORS_FOR_LIBYAML = 1000


def _loader_for(text: str) -> type[yaml.SafeLoader]:
    if _Loader is yaml.SafeLoader:
        return _Loader
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (from an escape such as \ud800 in a .py docstring): libyaml's
            # binding raises UnicodeEncodeError, PyYAML's reader reports the character.
            return yaml.SafeLoader
    count = 0
    for char in _NESTING_INDICATORS:
        count += text.count(char)
        if count > MAX_INDICATORS_FOR_LIBYAML:
            return yaml.SafeLoader
    return _Loader


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """A loaded document plus what is needed to locate its fields later."""

    data: Any
    text: str
    line_offset: int = 0  # file line of the document's first line, minus one

    def line_of(self, pointer: str) -> int | None:
        return line_of_pointer(self.text, pointer, self.line_offset)


def load(text: str, line_offset: int = 0) -> YamlDoc:
    """Parse one YAML document; raise YamlProblem with a file line on any mistake."""
    if "\t" in text:
        _reject_tab_indentation(text, line_offset)
    simple = _PLAIN.load(text)
    if simple is not yamlfast.NOT_SIMPLE:
        return YamlDoc(data=simple, text=text, line_offset=line_offset)
    try:
        loader = _loader_for(text)
        try:
            data = _construct(yaml.compose(text, Loader=loader), line_offset)
        except _Fallback:
            try:
                data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
            except _CONSTRUCTOR_ERRORS as exc:  # PyYAML lets these out of its constructors
                raise YamlProblem(f"YAML error: a value cannot be read: {exc}", None) from None
            _check_expansion(data, line_offset)
    except yaml.MarkedYAMLError as exc:
        reason = exc.problem or "invalid YAML"
        if exc.context:
            reason = f"{reason} {exc.context}"
        # An unclosed quote or bracket is reported at the end of the file; where it was
        # opened (the context mark) is the line the user needs.
        mark = exc.context_mark if "end of stream" in reason and exc.context_mark else exc.problem_mark
        mark = mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark is not None else None
        raise YamlProblem(f"YAML syntax error: {reason}", line, _syntax_hint(reason)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML error: {_one_line(str(exc))}", None) from None
    except RecursionError:
        raise _too_deep(line_offset) from None
    return YamlDoc(data=data, text=text, line_offset=line_offset)


# ---------------------------------------------------------------- construction
# PyYAML's constructor is generic Python and costs about as much as libyaml's parsing.
# Documents made of plain mappings, sequences and the usual scalars are built here
# from the composed node tree instead, sizing aliased subtrees on the way (see
# _check_expansion). Anything else (merge keys, !!set, !!binary, complex keys,
# recursive aliases, ...) is handed to PyYAML's safe loader unchanged.

_STR = "tag:yaml.org,2002:str"
_INTERN_UP_TO = 64
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_SAFE = yaml.constructor.SafeConstructor()
_SCALARS: dict[str, Callable[[Any], Any]] = {
    "tag:yaml.org,2002:null": _SAFE.construct_yaml_null,
    "tag:yaml.org,2002:bool": _SAFE.construct_yaml_bool,
    "tag:yaml.org,2002:int": _SAFE.construct_yaml_int,
    "tag:yaml.org,2002:float": _SAFE.construct_yaml_float,
    "tag:yaml.org,2002:timestamp": _SAFE.construct_yaml_timestamp,
}


_TAG_NAMES = {
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:bool": "boolean",
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:timestamp": "date",
}
_CONSTRUCTOR_ERRORS = (ValueError, TypeError, AttributeError, OverflowError)


def _resolve_plain(kind: Any, value: Any, implicit: Any) -> str:
    return _remembered_resolve(_Loader, kind, value, implicit)


_PLAIN = yamlfast.PlainYaml(_resolve_plain, _SCALARS)


class _Fallback(Exception):
    """The document needs PyYAML's own constructor."""


def _construct(root: yaml.Node | None, line_offset: int) -> Any:
    if root is None:
        return None
    return _Builder(line_offset).build(root, 0)[0]


class _Builder:
    # A class, not a nested function calling itself: such a function refers to itself
    # through its closure, a cycle only the garbage collector frees, with every value of
    # the document attached (87 objects a small DAG: a full collection pass every few
    # hundred DAGs loaded).
    __slots__ = ("busy", "done", "line_offset")

    def __init__(self, line_offset: int) -> None:
        self.line_offset = line_offset
        self.done: dict[int, tuple[Any, int]] = {}  # id(node) -> (value, expanded size): aliases share
        self.busy: set[int] = set()

    def build(self, node: yaml.Node, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise _too_deep(self.line_offset)
        kind = type(node)
        if kind is yaml.ScalarNode:  # immutable: aliases need not share them
            if node.tag == _STR:
                # Keys, task names, durations: the same few strings in every file of a
                # tree, kept by a scheduler for as long as it runs; one copy of each.
                value = node.value
                return (sys.intern(value) if len(value) <= _INTERN_UP_TO else value), 1
            make = _SCALARS.get(node.tag)
            if make is None:
                raise _Fallback
            try:
                return make(node), 1
            except _CONSTRUCTOR_ERRORS:
                # 2024-02-30 is a timestamp to YAML's resolver but not a date; !!float x, ...
                shown = node.value if len(node.value) <= 40 else node.value[:40] + "..."
                raise YamlProblem(
                    f"YAML error: {shown!r} is not a valid {_TAG_NAMES.get(node.tag, node.tag)}",
                    node.start_mark.line + 1 + self.line_offset,
                    "quote the value, or fix it",
                ) from None
        key = id(node)
        known = self.done.get(key)
        if known is not None:
            return known
        if key in self.busy:
            raise _Fallback  # a recursive alias: PyYAML reports it
        if kind is yaml.SequenceNode and node.tag == _SEQ:
            self.busy.add(key)
            items = []
            size = 1
            for child in node.value:
                value, count = self.build(child, depth + 1)
                items.append(value)
                size = _grown(size, count)
            result: tuple[Any, int] = (items, size)
        elif kind is yaml.MappingNode and node.tag == _MAP:
            self.busy.add(key)
            mapping = {}
            size = 1
            for key_node, value_node in node.value:
                if key_node.tag != _STR and key_node.tag not in _SCALARS:
                    raise _Fallback  # merge keys (<<), complex keys, ...
                name, key_count = self.build(key_node, depth + 1)
                value, count = self.build(value_node, depth + 1)
                mapping[name] = value
                size = _grown(size, key_count + count)
            result = (mapping, size)
        else:
            raise _Fallback
        self.done[key] = result
        return result


def _grown(size: int, more: int) -> int:
    size += more
    if size > MAX_EXPANDED_NODES:
        raise YamlProblem(
            f"YAML document expands to more than {MAX_EXPANDED_NODES:,} nodes",
            None,
            "use fewer anchors and aliases",
        )
    return size


def _too_deep(line_offset: int) -> YamlProblem:
    # The header's first line for a header inside a script; no line for a whole file.
    return YamlProblem("YAML nesting is too deep", line_offset + 1 if line_offset else None, _DEPTH_HINT)


def _reject_tab_indentation(text: str, line_offset: int) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip(" ")
        if stripped.startswith("\t"):
            raise YamlProblem(
                "YAML syntax error: a tab is used for indentation",
                number + line_offset,
                "indent with spaces",
            )


def _syntax_hint(reason: str) -> str | None:
    if "quoted scalar" in reason:
        return "close the quote"
    if "flow sequence" in reason or "flow mapping" in reason:
        return "close the bracket"
    if "mapping values are not allowed" in reason:
        return "quote values that contain ': '"
    if "could not find expected ':'" in reason:
        return "write each entry as key: value"
    if "did not find expected key" in reason:
        return "check the indentation, and for a quote left open on a line above"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_expansion(data: Any, line_offset: int) -> None:
    # Memoised by object identity: a shared (aliased) subtree is sized once, so the
    # check itself stays linear in the document even when its expansion is not.
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _too_deep(line_offset)
        if isinstance(node, dict):
            children: Any = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            return 1
        key = id(node)
        cached = sizes.get(key)
        if cached is not None:
            return cached
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_EXPANDED_NODES:
                raise YamlProblem(
                    f"YAML document expands to more than {MAX_EXPANDED_NODES:,} nodes",
                    None,
                    "use fewer anchors and aliases",
                )
        sizes[key] = total
        return total

    size(data, 0)


def line_of_pointer(text: str, pointer: str, line_offset: int = 0) -> int | None:
    """File line of the node at a JSON pointer (a key's line for mapping members).

    Falls back to the deepest ancestor that exists, so a missing field points at the
    mapping it is missing from.
    """
    try:
        node = yaml.compose(text, Loader=_loader_for(text))
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return 1 + line_offset
    line = node.start_mark.line
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == part:
                    line = key_node.start_mark.line
                    node = value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line
        else:
            break
    return line + 1 + line_offset
