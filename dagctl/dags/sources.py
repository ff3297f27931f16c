"""Reading DAG files safely: size and encoding checks, YAML with line numbers, schema
checks, and the task header of each file type (`#` block, `/* */` block, docstring).

Nothing here imports or runs user code; problems are collected, never raised past
`Invalid`, which only stops the file at hand.
"""

from __future__ import annotations

import ast
import os
import re
import stat
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from dagctl.dags import schemas
from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import Problem
from dagctl.dags.yamldoc import YamlDoc, YamlProblem
from dagctl.dags.yamldoc import load as load_yaml

# A task file bigger than this is refused without being read whole.
MAX_SCRIPT_BYTES = 4 * 1024 * 1024


class Invalid(Exception):
    """Stops loading one file; its problems are already recorded."""


@dataclass
class Collector:
    """Problems of one DAG (or of the root config), with paths shown relative to the tree."""

    base: Path
    dag: str | None
    problems: list[Problem] = field(default_factory=list)

    def shown(self, path: Path) -> str:
        text = str(path)
        parent = _text_of_parent(self.base)
        if parent not in ("/", ".") and text.startswith(parent + "/"):
            # What relative_to gives for a path under the parent, without its parsing
            # (which made reporting 10,000 problems take a second).
            return printable(text[len(parent) + 1 :])
        try:
            text = str(path.relative_to(self.base.parent)) if self.base.parent != path else text
        except ValueError:
            return printable(text)
        return printable(text)

    def add(
        self,
        path: Path,
        line: int | None,
        message: str,
        hint: str | None = None,
        pointer: str | None = None,
        severity: str = "error",
    ) -> None:
        self.problems.append(
            Problem(
                path=self.shown(path),
                line=line,
                message=message,
                hint=hint,
                pointer=pointer,
                severity="warning" if severity == "warning" else "error",
                dag=self.dag,
            )
        )

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


@lru_cache(maxsize=64)
def _text_of_parent(base: Path) -> str:
    return str(base.parent)


def printable(text: str) -> str:
    """A path as text that can be printed and stored: bytes of a file name that are not
    UTF-8 (surrogate escapes in Python) are shown as \\xNN."""
    if text.isascii():
        return text
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_utf8(name: str) -> bool:
    return printable(name) == name


# ---------------------------------------------------------------- reading files


def read_text(path: Path, limit: int, out: Collector) -> str:
    raw = _read_regular(path, limit, out)
    if b"\x00" in raw:
        out.add(path, None, "binary file, not text", "remove it or give it another extension")
        raise Invalid
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        out.add(path, line, "not valid UTF-8 text", "save the file as UTF-8")
        raise Invalid from None


# Opened first and checked with fstat: one system call fewer a file than stat then
# open, and no pathlib read (~9 µs of ~17 a file). Non-blocking, so that a FIFO named
# like a task is refused instead of waited on.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_regular(path: Path, limit: int, out: Collector) -> bytes:
    """The bytes of a regular file within `limit`; a problem and Invalid otherwise."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return _stat_then_read(path, limit, out)  # what cannot be opened: say why as before
    try:
        info = os.fstat(fd)
        _check_regular(path, info, limit, out)
        chunks = [os.read(fd, info.st_size + 1)]
        while chunks[-1]:  # to the end, should the file have grown meanwhile
            chunks.append(os.read(fd, 1 << 16))
    except OSError as exc:
        out.add(path, None, f"cannot read: {exc.strerror or exc}", "check the file and its permissions")
        raise Invalid from None
    finally:
        os.close(fd)
    return b"".join(chunks) if len(chunks) > 2 else chunks[0]


def _stat_then_read(path: Path, limit: int, out: Collector) -> bytes:
    try:
        _check_regular(path, path.stat(), limit, out)
        return path.read_bytes()
    except OSError as exc:
        out.add(path, None, f"cannot read: {exc.strerror or exc}", "check the file and its permissions")
        raise Invalid from None


def _check_regular(path: Path, info: os.stat_result, limit: int, out: Collector) -> None:
    if not stat.S_ISREG(info.st_mode):
        out.add(path, None, "not a regular file", "replace it with a file")
        raise Invalid
    if info.st_size > limit:
        out.add(
            path,
            None,
            f"file is {info.st_size:,} bytes, over the {limit:,}-byte limit",
            "split it or move data out of the DAG folder",
        )
        raise Invalid


def parse_yaml(path: Path, text: str, out: Collector, line_offset: int = 0) -> YamlDoc:
    try:
        return load_yaml(text, line_offset)
    except YamlProblem as exc:
        out.add(path, exc.line, exc.message, exc.hint)
        raise Invalid from None


def check_schema(path: Path, doc: YamlDoc, schema_name: str, out: Collector) -> None:
    for pointer, message, hint in schemas.problems(schema_name, doc.data):
        out.add(path, doc.line_of(pointer), message, hint, pointer)


_KIND_NAMES = {"str": "string", "int": "number", "float": "number", "bool": "boolean", "date": "date"}


def mapping_or_problem(path: Path, doc: YamlDoc, what: str, out: Collector) -> Mapping[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        kind = _KIND_NAMES.get(type(doc.data).__name__, type(doc.data).__name__)
        out.add(
            path, doc.line_of(""), f"{what} must be a mapping of keys, not a {kind}", "write key: value lines"
        )
        raise Invalid
    return doc.data


# ---------------------------------------------------------------- task headers


@dataclass(frozen=True, slots=True)
class Header:
    doc: YamlDoc | None
    line: int


# The keys a task header may hold (task.schema.json): a comment line starting with one
# of them begins the header, so a licence or a note above it is skipped, not parsed.
@cache
def header_keys() -> frozenset[str]:
    return frozenset(schemas.schema("task")["properties"])


_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:(\s|$)")


def header_start(block: list[str]) -> int | None:
    """Where the header begins in a leading comment block (comment markers removed):
    the first line starting with a header key (`description:`, `inputs:`...); failing
    that, the first `key:` line whose key looks like a misspelt header key, so that the
    schema check names it; None when the block is only prose."""
    for index, line in enumerate(block):
        match = _KEY_LINE.match(line)
        if match and match.group(1) in header_keys():
            return index
    for index, line in enumerate(block):
        match = _KEY_LINE.match(line)
        if match and did_you_mean(match.group(1), header_keys()):
            return index
    return None


def _comment_header(path: Path, text: str, out: Collector, marker: str) -> Header:
    """A header written as a block of comment lines (`#` in shell, `--` in SQL) at the
    top of the file, after a shebang and blank lines."""
    lines = text.split("\n")
    index = 1 if marker == "#" and lines and lines[0].startswith("#!") else 0
    # Blank lines before the header are allowed: a header that silently stopped
    # counting would make a task with inputs a root that runs at once.
    while index < len(lines) - 1 and not lines[index].strip():
        index += 1
    first = index
    block: list[str] = []
    while index < len(lines) and lines[index].startswith(marker):
        body = lines[index][len(marker) :]
        block.append(body[1:] if body.startswith(" ") else body)
        index += 1
    start = header_start(block)
    if start is None:
        return Header(None, first + 1)
    return Header(
        parse_yaml(path, "\n".join(block[start:]), out, line_offset=first + start), first + start + 1
    )


def _shell_header(path: Path, text: str, out: Collector) -> Header:
    return _comment_header(path, text, out, "#")


def _sql_header(path: Path, text: str, out: Collector) -> Header:
    """`/* ... */` at the top (after `--` comment lines, if any), or a block of `--`
    comment lines."""
    stripped = text.lstrip()
    if stripped.startswith("--"):
        header = _comment_header(path, text, out, "--")
        if header.doc is not None:
            return header
        # Prose in `--` lines, then perhaps a /* */ header: look past the comments.
        lines = text.split("\n")
        index = 0
        while index < len(lines) and (lines[index].lstrip().startswith("--") or not lines[index].strip()):
            index += 1
        rest = "\n".join(lines[index:])
        if not rest.lstrip().startswith("/*"):
            return header
        stripped = rest.lstrip()
    if not stripped.startswith("/*"):
        return Header(None, 1)
    begin = text.index("/*")
    first_line = text.count("\n", 0, begin)
    end = text.find("*/", begin + 2)
    if end == -1:
        out.add(path, first_line + 1, "unterminated /* header", "close the header with */")
        raise Invalid
    body = textwrap.dedent(text[begin + 2 : end])
    return Header(parse_yaml(path, body, out, line_offset=first_line), first_line + 1)


class NotATask(Exception):
    """A `.py` file that is a helper module, not a task: ignored like any other file."""


PYTHON_TASK_RULE = "a .py file is a task when its docstring is a task header or it defines run(context)"


def _python_header(path: Path, text: str, out: Collector) -> Header:
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        out.add(path, exc.lineno, f"Python syntax error: {exc.msg}", "fix the syntax")
        raise Invalid from None
    except (ValueError, RecursionError, MemoryError) as exc:
        out.add(path, None, f"cannot parse Python: {exc}", "fix the file")
        raise Invalid from None
    first = tree.body[0] if tree.body else None
    lines: list[str] = []
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines = textwrap.dedent(first.value.value).split("\n")
    start = header_start(lines)
    defines_run = any(_defines_run(node) for node in tree.body)
    if start is None and not defines_run:
        raise NotATask  # a helper module the tasks import
    if not defines_run:
        out.add(
            path,
            None,
            "no run(context) function",
            f"define def run(context): at module level; {PYTHON_TASK_RULE}",
        )
    if first is None or start is None:
        return Header(None, 1)
    offset = first.lineno - 1 + start
    return Header(parse_yaml(path, "\n".join(lines[start:]), out, line_offset=offset), first.lineno)


def _defines_run(node: ast.stmt) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name == "run"
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "run" for t in node.targets)
    if isinstance(node, ast.ImportFrom):
        return any((alias.asname or alias.name) == "run" for alias in node.names)
    return False


def _yaml_task_header(path: Path, text: str, out: Collector) -> Header:
    return Header(parse_yaml(path, text, out), 1)


HEADER_READERS = {
    ".sh": _shell_header,
    ".sql": _sql_header,
    ".py": _python_header,
    ".yaml": _yaml_task_header,
    ".yml": _yaml_task_header,
}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like '90s', '5m', '1h30m', '250ms'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    total = 0.0
    number = ""
    text = str(value).replace(" ", "")
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    return total
