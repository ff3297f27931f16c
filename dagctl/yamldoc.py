"""Safe YAML reading that can say on which line a field lives.

Documents are loaded with libyaml's safe loader when available. Line numbers are only
needed when something is wrong, so the node tree is composed again lazily, for the
failing document only: valid files pay nothing for error reporting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

# An alias-heavy document ("billion laughs") loads as a small graph of shared objects
# but explodes when anything walks it (schema validation, JSON encoding). Past this
# many expanded nodes the document is refused.
MAX_EXPANDED_NODES = 100_000


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
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
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
        raise YamlProblem("YAML nesting is too deep", None) from None
    _check_expansion(data, line_offset)
    return YamlDoc(data=data, text=text, line_offset=line_offset)


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
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_expansion(data: Any, line_offset: int) -> None:
    # Memoised by object identity: a shared (aliased) subtree is sized once, so the
    # check itself stays linear in the document even when its expansion is not.
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > 200:
            raise YamlProblem("YAML nesting is too deep", line_offset + 1 if line_offset else None)
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
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
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
