"""The loader's fast paths agree with the slow, reference implementations.

* schemas.is_valid (compiled checks) never calls a document valid that jsonschema rejects,
  and accepts every real, valid document (or the fast path would be useless);
* yamldoc.load builds the same data as PyYAML's safe loader, or reports a problem where
  PyYAML fails.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from dagctl.dags import schemas, yamldoc

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = settings(
    max_examples=int(os.environ.get("DAGCTL_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _property_names(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        found.update(node.get("properties", {}))
        for value in node.values():
            _property_names(value, found)
    elif isinstance(node, list):
        for value in node:
            _property_names(value, found)
    return found


KEYS = sorted(set().union(*(_property_names(schemas.schema(n), set()) for n in schemas.NAMES)))
STRINGS = [
    "5m",
    "1h30m",
    "90s",
    "250ms",
    " 2d ",
    "5 minutes",
    "",
    "a.sh",
    "etl:a.sh",
    "../a.sh",
    "latest",
    "none",
    "all",
    "string",
    "integer",
    "number",
    "boolean",
    "date",
    "date-time",
    "no_op",
    "command",
    "x",
    "1",
    "Europe/Berlin",
    "^[a-z]+$",
    "a b",
    "_ok",
    "9bad",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 2.5, -1.0]),
    st.sampled_from(STRINGS),
    st.text(max_size=6),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4) | st.integers(0, 3), inner, max_size=6)
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), values, max_size=8) | values


@EXAMPLES
@given(name=st.sampled_from(schemas.NAMES), instance=documents)
def test_fast_schema_check_never_accepts_an_invalid_document(name: str, instance: Any) -> None:
    if schemas.is_valid(name, instance):
        errors = list(Draft202012Validator(schemas.schema(name)).iter_errors(instance))
        assert errors == [], [e.message for e in errors]
        assert list(schemas.problems(name, instance)) == []


@EXAMPLES
@given(name=st.sampled_from(schemas.NAMES), instance=documents)
def test_fast_schema_check_is_exact_without_floats_or_odd_lists(name: str, instance: Any) -> None:
    """Outside the cases it leaves to jsonschema on purpose, the fast check is exact."""

    def plain(value: Any) -> bool:
        if isinstance(value, float):
            return False
        if isinstance(value, list):
            return all(plain(v) for v in value) and all(isinstance(v, str) for v in value)
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        return True

    if not plain(instance):
        return
    valid = not list(Draft202012Validator(schemas.schema(name)).iter_errors(instance))
    assert schemas.is_valid(name, instance) is valid


def test_fast_schema_check_accepts_every_real_document() -> None:
    documents = 0
    paths = [
        *REPO.joinpath("dags_example").rglob("*.yaml"),
        *REPO.glob("tests/fixtures/broken/upstream/*.yaml"),
    ]
    for path in paths:
        name = {"dagctl.yaml": "config", "workflow.yaml": "workflow"}.get(path.name, "task")
        data = yaml.safe_load(path.read_text())
        assert schemas.is_valid(name, data), path
        documents += 1
    assert documents >= 8


# ---------------------------------------------------------------- YAML construction


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


SNIPPETS = [
    "a: 1",
    "b: [1, 2, {c: d}]",
    "- x",
    "- y: z",
    "&anc {k: v}",
    "*anc",
    "<<: *anc",
    "? complex\n: key",
    "yes",
    "~",
    "0x1F",
    "1:30",
    "2024-06-01",
    "2024-06-01 10:00:00",
    ".nan",
    "-.inf",
    "1e3",
    "!!str 5",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "'quoted'",
    '"dq\\tesc"',
    "|\n  block",
    ">\n  fold",
    "k: &x [1, *x]",
    "key: value",
    "  indented: 1",
    "[a, [b, [c]]]",
    "{a: {b: {c: {}}}}",
    "2024-02-30",
    "!!int x",
    "!!float 1 x",
    ": bad",
    "- - - x",
    "---",
    "...",
    "%YAML 1.1\n---\na: 1",
    "a: 1\na: 2",
]
texts = st.one_of(
    st.lists(st.sampled_from(SNIPPETS), max_size=6).map("\n".join),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.dates(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: yaml.safe_dump(v, allow_unicode=True, default_flow_style=None)),
    st.text(max_size=60),
)


@EXAMPLES
@given(text=texts)
def test_yaml_construction_matches_pyyaml(text: str) -> None:
    try:
        # The reference: PyYAML's own constructor over the same parser yamldoc picks (libyaml
        # and the pure-Python parser disagree on a few odd texts, such as "0\t").
        expected = yaml.load(text, Loader=yamldoc._loader_for(text))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        expected = None
        failed = True
    else:
        failed = False
    try:
        got = yamldoc.load(text).data
    except yamldoc.YamlProblem as problem:
        # Refused: PyYAML failed too, or it is one of the documents we refuse on purpose.
        assert failed or "\t" in text or "nesting" in problem.message or "expands" in problem.message, (
            problem.message
        )
        return
    assert not failed, f"PyYAML refused {text!r} but yamldoc loaded it"
    assert same(got, expected), (got, expected)


def test_aliases_stay_shared() -> None:
    data = yamldoc.load("a: &x [1, 2]\nb: *x\n").data
    assert data == {"a": [1, 2], "b": [1, 2]}
    assert data["a"] is data["b"]
