"""Reading what a task wrote to $DAGCTL_OUTPUT: the two formats, the size cap, and
a real process whose outputs count only when it succeeds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dagctl.execution.outputs import OutputError, collect, parse
from dagctl.execution.taskprocess import Exit, Launch, TaskProcess


def test_key_value_lines_keep_everything_after_the_first_equals_sign() -> None:
    text = "# a comment\n\nrows=3\npath = /a b=c\nrows=4\n"
    assert parse(text) == {"rows": "4", "path": " /a b=c"}


def test_one_json_object_keeps_its_types() -> None:
    assert parse(' {"n": 1, "items": ["a", 2], "ok": true}\n') == {"n": 1, "items": ["a", 2], "ok": True}


def test_nothing_written_is_no_outputs() -> None:
    assert parse("") is None
    assert parse("\n  \n# only a comment\n") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just words\n", "outputs line 1 is not key=value: 'just words'"),
        ("=value\n", "outputs line 1 is not key=value"),
        ("{not json", "outputs look like JSON but are not valid"),
        ('{"a": 1} trailing', "outputs look like JSON but are not valid"),
    ],
)
def test_malformed_outputs_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(OutputError, match=message.replace("(", r"\(")):
        parse(text)


def test_the_size_cap_reads_no_more_than_one_byte_beyond_it(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("k=" + "x" * 98)
    assert collect(str(path), limit=100) == {"k": "x" * 98}
    path.write_text("k=" + "x" * 99)
    with pytest.raises(OutputError, match="over the 100-byte limit"):
        collect(str(path), limit=100)
    path.write_bytes(b"k=\xff\n")
    with pytest.raises(OutputError, match="not UTF-8"):
        collect(str(path), limit=100)


def _run(script: str, tmp_path: Path) -> Exit:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = TaskProcess(Launch(("bash", "-c", script), env, tmp_path, None), kill_grace=0)
    deadline = time.monotonic() + 10
    while (ended := proc.poll()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return ended


def test_a_process_outputs_count_only_when_it_succeeds_and_the_file_is_removed(tmp_path: Path) -> None:
    ok = _run('echo "rows=2" > "$DAGCTL_OUTPUT"; echo "$DAGCTL_OUTPUT" > where', tmp_path)
    assert (ok.status, ok.outputs) == ("success", {"rows": "2"})
    assert not Path((tmp_path / "where").read_text().strip()).exists()
    failed = _run('echo "rows=2" > "$DAGCTL_OUTPUT"; exit 4', tmp_path)
    assert (failed.status, failed.error, failed.outputs) == ("failed", "exit code 4", None)
    garbled = _run('echo "no equals" > "$DAGCTL_OUTPUT"', tmp_path)
    assert garbled.status == "failed" and garbled.exit_code == 0
    assert (
        garbled.error
        == "outputs line 1 is not key=value: 'no equals' (write key=value lines or one JSON object)"
    )
