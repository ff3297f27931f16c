"""The line-by-line reader of plain YAML (dags/yamlfast.py) gives what libyaml gives, or
declines: generated documents mixing the subset with what lies just outside it are
read both ways and compared, value and type."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dagctl.dags import yamlfast
from dagctl.dags.yamldoc import _PLAIN, load

LOADERS = [yaml.SafeLoader, *([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])]


def typed(value: Any) -> Any:
    """The value with every leaf's type spelt out (True == 1 and 1.0 == 1 in Python)."""
    if isinstance(value, dict):
        return {typed(k): typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def fast(text: str) -> Any:
    return _PLAIN.load(text)


def assert_same_as_pyyaml(text: str) -> bool:
    """True when the fast path took the text; then both PyYAML loaders agree with it."""
    data = fast(text)
    if data is yamlfast.NOT_SIMPLE:
        return False
    for loader in LOADERS:
        assert typed(yaml.load(text, Loader=loader)) == typed(data), (loader, text)
    return True


TYPICAL = [
    # What DAG files hold: the benchmark's workflow.yaml and task files.
    'description: Generated DAG 7.\nschedule: "7 0 1 * *"\ntimezone: UTC\ncatchup: latest\n'
    "retries: 2\nretry_delay: 30s\ntimeout: 1h30m\ntags: [bench, group0]\nparams:\n  date:\n"
    '    type: string\n    format: date\n    default: "2024-06-01"\n  limit:\n    type: integer\n'
    "    default: 100\n    minimum: 1\n  dry_run:\n    type: boolean\n    default: false\n",
    'type: command\ndescription: Publish.\ninputs: [transform.py, load.sql]\ncommand: ["echo", "x"]\n',
    "type: no_op\n# a comment line\n\ninputs: [dag_0008:done.yaml]\n",
    "inputs:\n- a.sh\n- b.sh\nretries: 1\n",
    "worker_config:\n  env:\n    A: '1'\n    B: x y z\n  cpu: 0.5\nlist:\n  - 1\n  - 2.5\n  - ~\n",
    "a: 12:30\nb: 2024-06-01\nc: 2024-06-01 10:00:00\nd: 0x1F\ne: .inf\nf: yes\ng: Null\nh: []\n",
    "a:\nb: ''\nc: \"\"\n",
    "",
    "# only a comment\n",
    "  indented: 1\n  more: 2\n",
]

DECLINED = [
    "a: 1 # comment",
    "a: |\n  text\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: 1\na: 2\n",
    "on: 1\n",
    "a: b\n  c\n",
    "a: 'it''s'\n",
    'a: "esc\\n"\n',
    "a: [x: y]\n",
    "a: {b: 1}\n",
    "- a: 1\n",
    "a:\t1\n",
    "a: 2024-02-30\n",
    "a: x\r\nb: y\r\n",
    "a: x\u2028b\n",
    "--- \na: 1\n",
    "a: 1\n  b: 2\n",
    "a: [b, c,]\n",
    "just a scalar\n",
]


@pytest.mark.parametrize("text", TYPICAL)
def test_typical_dag_documents_take_the_fast_path_and_agree(text: str) -> None:
    assert assert_same_as_pyyaml(text)


@pytest.mark.parametrize("text", DECLINED)
def test_what_is_outside_the_subset_is_declined(text: str) -> None:
    assert fast(text) is yamlfast.NOT_SIMPLE


def test_a_declined_document_still_reports_its_line() -> None:
    with pytest.raises(Exception, match="YAML") as info:
        load("a: 1\n  b: 2\n")  # a continued value, then a key: mapping values not allowed
    assert getattr(info.value, "line", None) == 2


KEYS = st.sampled_from(["a", "b", "key_1", "on", "null", "x.y", "t-1", "1", "~", "-k"])
SCALARS = st.sampled_from(
    [
        "1", "-1", "0o7", "0x1f", "1_000", "1.5", "1e3", ".NaN", "-.inf", "true", "False", "no",
        "Off", "null", "~", "", "2024-06-01", "2024-13-01", "2024-06-01T10:00:00Z", "12:30", "1:2:3",
        "a b", "a:b", "a: b", "a:", "x,y", "[", "]", "a]", "'q'", "'q''r'", '"d"', '"e\\"', '"a#b"',
        "a #b", "a#b", "&a", "*a", "!t", "|", ">", "%", "@", "`", "?x", "-x", "- x", ":x", "=", "<<",
        "é", "ü x", "\u00a0", "0b101", "+12", "1,2", "{a", "}", "30s", "1h30m", "dag_0001:done.yaml",
    ]
)  # fmt: skip


def flow_lists() -> st.SearchStrategy[str]:
    items = st.lists(SCALARS, max_size=4)
    return st.builds(lambda xs, sep: "[" + sep.join(xs) + "]", items, st.sampled_from([", ", ",", " , "]))


VALUES = st.one_of(SCALARS, flow_lists())


def line() -> st.SearchStrategy[str]:
    indent = st.sampled_from(["", "", "  ", "    ", " "])
    body = st.one_of(
        st.builds(lambda k, v: f"{k}: {v}", KEYS, VALUES),
        st.builds(lambda k: f"{k}:", KEYS),
        st.builds(lambda v: f"- {v}", VALUES),
        st.just("# note"),
        st.just(""),
        st.just("-"),
    )
    return st.builds(lambda i, b, tail: i + b + tail, indent, body, st.sampled_from(["", "", "  "]))


@settings(max_examples=400, deadline=None)
@given(st.lists(line(), min_size=1, max_size=8))
def test_generated_documents_agree_with_pyyaml_whenever_taken(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    data = fast(text)
    if data is yamlfast.NOT_SIMPLE:
        return
    for loader in LOADERS:
        assert typed(yaml.load(text, Loader=loader)) == typed(data), (loader, text)
