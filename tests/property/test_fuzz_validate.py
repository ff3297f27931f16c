"""Mutated copies of the example DAGs: the loader never raises, `validate` never shows a
traceback, and one broken DAG never takes the others down with it."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagctl.cli import cli
from dagctl.dags.model import DagTree
from dagctl.dags.tree import load_tree

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_example"
FILES = sorted(
    p.relative_to(EXAMPLES).as_posix()
    for p in EXAMPLES.rglob("*")
    if p.is_file() and p.suffix in (".yaml", ".yml", ".sh", ".py", ".sql")
)
DAG_NAMES = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())

# DAGCTL_FUZZ_EXAMPLES=2000 for a longer hunt; the default keeps the file under ~30 s.
FUZZ = settings(
    max_examples=int(os.environ.get("DAGCTL_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def example_copy() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dagctl-fuzz-") as tmp:
        root = Path(tmp) / "dags"
        shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
        yield root


def check_tree(root: Path, mutated: str) -> DagTree:
    tree = load_tree(root)  # must not raise, whatever the files hold
    for problem in tree.problems:
        assert isinstance(problem.path, str)
        assert problem.line is None or (isinstance(problem.line, int) and problem.line >= 1)
        assert problem.severity in ("error", "warning")
        assert "\n" not in problem.render()
    dag_of_file = mutated.split("/", 1)[0] if "/" in mutated else None
    if dag_of_file is not None:
        # one broken file breaks at most its own DAG
        assert set(tree.dags) >= set(DAG_NAMES) - {dag_of_file}, [p.render() for p in tree.errors]
    return tree


def check_cli(root: Path) -> None:
    runner = CliRunner()
    for args in (["validate", str(root)], ["validate", "-o", "json", str(root)]):
        result = runner.invoke(cli, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        if "json" in args:
            report = json.loads(result.stdout)
            assert report["ok"] is (result.exit_code == 0)


# ---------------------------------------------------------------- byte-level mutations

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
)


def mutate(data: bytes, steps: list[tuple[str, int, object]]) -> bytes:
    for kind, position, arg in steps:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ int(arg)]) + data[at + 1 :]  # type: ignore[call-overload]
        elif kind == "insert":
            data = data[:at] + bytes(arg) + data[at:]  # type: ignore[call-overload]
        elif kind == "delete":
            data = data[:at] + data[at + int(arg) :]  # type: ignore[call-overload]
        elif kind == "truncate":
            data = data[:at]
    return data


@FUZZ
@given(name=st.sampled_from(FILES), steps=st.lists(mutation, min_size=1, max_size=6))
def test_byte_mutations(name: str, steps: list[tuple[str, int, object]]) -> None:
    with example_copy() as root:
        path = root / name
        path.write_bytes(mutate(path.read_bytes(), steps))
        check_tree(root, name)
        check_cli(root)


# ---------------------------------------------------------------- YAML values replaced

SNIPPETS = [
    "~",
    "null",
    "",
    "yes",
    "no",
    "on",
    "true",
    "0",
    "-1",
    "1e400",
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "1:30",
    "2024-06-01",
    "2024-06-01T10:00:00Z",
    "12:30:00",
    '"text"',
    "'text'",
    "[]",
    "{}",
    "[a, b, a]",
    "{a: 1, b: [1, 2]}",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!str 1",
    "!!float 1",
    "&anchor [1, 2]",
    "*undefined",
    "!!python/object:os.system x",
    "!custom x",
    "|\n  block\n  text",
    ">-\n  folded",
    "[unclosed",
    "{a: [",
    '"unclosed',
    "- item",
    "key: value: more",
    "? complex\n: key",
    "<<: {a: 1}",
    "a.sh",
    "other:a.sh",
    "../../etc/passwd",
    "1h30m",
    "5 minutes",
    "-5s",
    "61 * * * *",
    "0 0 30 2 *",
    "@daily",
    "Europe/Berln",
    "[print_params.sh, print_params.sh]",
    "{type: integer}",
    "{type: integer, default: x}",
    "{default: 1, minimum: 5}",
    "{pattern: '['}",
    "{enum: []}",
    "[{}, [], ~]",
    "\ufeffbom",
    "\u202eevil",
    "日本語",
    "😀",
    "\x85",
    "a\u2028b",
    "2024-02-30",
    "!!int x",
    "!!float 1 x",
    "!!timestamp x",
    "9" * 5000,
    "!!binary ???",
    "&a [*a]",
    "{<<: [*a]}",
    "!!seq x",
    "!!map [1]",
]

yaml_value = st.one_of(
    st.sampled_from(SNIPPETS),
    st.text(max_size=30).map(lambda s: json.dumps(s)),  # any unicode, as a JSON (= YAML) string
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)

KEY_LINE = re.compile(r"^(#?\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$")
# Files with `key:` lines to replace (a helper module such as etl/warehouse.py has none).
HEADER_FILES = [
    n
    for n in FILES
    if n.endswith((".yaml", ".sh", ".py", ".sql"))
    and any(KEY_LINE.match(line) for line in (EXAMPLES / n).read_text().split("\n"))
]


@FUZZ
@given(name=st.sampled_from(HEADER_FILES), data=st.data())
def test_yaml_values_replaced(name: str, data: st.DataObject) -> None:
    with example_copy() as root:
        path = root / name
        text = path.read_text()
        for _ in range(data.draw(st.integers(1, 3))):
            lines = text.split("\n")
            keyed = [(i, m) for i, m in enumerate(map(KEY_LINE.match, lines)) if m]
            index, match = data.draw(st.sampled_from(keyed))
            prefix, key, _old = match.groups()
            value = data.draw(yaml_value)
            if prefix.startswith("#"):  # keep the replacement inside the comment header
                value = value.replace("\n", "\n" + prefix)
            lines[index] = f"{prefix}{key}: {value}"
            text = "\n".join(lines)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check_tree(root, name)
        check_cli(root)


# ---------------------------------------------------------------- unicode, line endings, truncation


@FUZZ
@given(
    name=st.sampled_from(FILES),
    text=st.text(max_size=40),
    position=st.floats(0, 1),
    crlf=st.booleans(),
    bom=st.booleans(),
    cut=st.none() | st.floats(0, 1),
)
def test_unicode_line_endings_and_truncation(
    name: str, text: str, position: float, crlf: bool, bom: bool, cut: float | None
) -> None:
    with example_copy() as root:
        path = root / name
        content = path.read_text()
        at = int(len(content) * position)
        content = content[:at] + text + content[at:]
        if crlf:
            content = content.replace("\n", "\r\n")
        if bom:
            content = "\ufeff" + content
        raw = content.encode("utf-8", "surrogatepass")
        if cut is not None:
            raw = raw[: int(len(raw) * cut)]
        path.write_bytes(raw)
        check_tree(root, name)
        check_cli(root)


# ---------------------------------------------------------------- whole files replaced


@FUZZ
@given(
    name=st.sampled_from(FILES),
    content=st.one_of(
        st.binary(max_size=200),
        st.sampled_from(SNIPPETS),
        st.lists(st.sampled_from(SNIPPETS), max_size=8).map("\n".join),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v, ensure_ascii=False)),
    ),
)
def test_whole_file_replaced(name: str, content: bytes | str) -> None:
    with example_copy() as root:
        path = root / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        else:
            path.write_bytes(content)
        check_tree(root, name)
        check_cli(root)
