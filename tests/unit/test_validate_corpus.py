"""A corpus of broken DAGs, one per kind of mistake, each with the exact line `validate` prints.

The committed corpus is tests/fixtures/broken/. What cannot be committed sensibly (a
10 MB file, binary bytes, symlink loops, FIFOs, unreadable files) is generated into
tmp_path by the tests below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dagctl.dags.tree import load_tree

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "broken"
EXAMPLES = REPO / "dags_example"

# Every problem of each broken DAG, in the order `dagctl validate` prints them. Paths are
# shown relative to the folder above the one validated, so they start with "broken/".
EXPECTED: dict[str, list[str]] = {
    "yaml_unclosed_quote": [
        "broken/yaml_unclosed_quote/workflow.yaml:2: YAML syntax error: found unexpected end of stream"
        " while scanning a quoted scalar (close the quote)",
    ],
    "yaml_tab_indent": [
        "broken/yaml_tab_indent/workflow.yaml:4: YAML syntax error: a tab is used for indentation"
        " (indent with spaces)",
    ],
    "yaml_impossible_date": [
        "broken/yaml_impossible_date/workflow.yaml:5: YAML error: '2024-02-30' is not a valid date"
        " (quote the value, or fix it)",
    ],
    "schema_wrong_type": [
        "broken/schema_wrong_type/workflow.yaml:3: retries: expected integer, got string 'three'",
    ],
    "schema_bad_duration": [
        "broken/schema_bad_duration/workflow.yaml:2: timeout: '5 minutes' is not a duration"
        " (use seconds, or 30s, 5m, 1h30m)",
    ],
    "unknown_key": [
        "broken/unknown_key/workflow.yaml:2: unknown key 'schedul' (did you mean 'schedule'?)",
    ],
    "missing_description": [
        "broken/missing_description/workflow.yaml:2: missing required key 'description'"
        " (add description: ...)",
    ],
    "cron_out_of_range": [
        "broken/cron_out_of_range/workflow.yaml:2: bad cron expression '61 * * * *': the minute field"
        " '61' is not valid (minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6)",
    ],
    "cron_three_fields": [
        "broken/cron_three_fields/workflow.yaml:2: cron expression '* * *' has 3 fields, expected 5"
        " (use 5 fields: minute hour day-of-month month day-of-week)",
    ],
    "cron_never_fires": [
        "broken/cron_never_fires/workflow.yaml:2: warning: schedule '0 0 30 2 *' never fires"
        " (check the day-of-month and month fields)",
    ],
    "timezone_unknown": [
        "broken/timezone_unknown/workflow.yaml:3: unknown time zone 'Europe/Berln'"
        " (did you mean 'Europe/Berlin'?)",
    ],
    "input_unknown_same_dag": [
        "broken/input_unknown_same_dag/load.sh:5: unknown input 'transfrom.py'"
        " (did you mean 'transform.py'?)",
    ],
    "input_unknown_dag": [
        "broken/input_unknown_dag/report.sh:3: unknown DAG 'upstrem' in input upstrem:done.yaml"
        " (did you mean 'upstream'?)",
    ],
    "input_unknown_task_of_dag": [
        "broken/input_unknown_task_of_dag/report.sql:6: DAG 'upstream' has no task 'done.yml'"
        " (did you mean 'done.yaml'?)",
    ],
    "cycle": [
        "broken/cycle/a.sh:3: cycle: a.sh -> b.sh -> c.sh -> a.sh (remove one of these inputs)",
    ],
    "self_loop": [
        "broken/self_loop/again.sh:3: cycle: again.sh -> again.sh (a task cannot be its own input)",
    ],
    "py_without_run": [
        "broken/py_without_run/fetch.py: no run(context) function (define def run(context): at module level;"
        " a .py file is a task when its docstring is a task header or it defines run(context))",
    ],
    "py_syntax_error": [
        "broken/py_syntax_error/fetch.py:6: Python syntax error: expected ':' (fix the syntax)",
    ],
    "sql_unterminated_header": [
        "broken/sql_unterminated_header/load.sql:3: unterminated /* header (close the header with */)",
    ],
    "empty_dag": [
        "broken/empty_dag: the DAG has no tasks"
        " (add a task file (.sh, .py, .sql or .yaml) next to workflow.yaml)",
    ],
    "param_default_type": [
        "broken/param_default_type/workflow.yaml:5: default of param 'limit': expected an integer,"
        " got 'ten' (make the default an integer)",
    ],
    "scheduled_param_no_default": [
        "broken/scheduled_param_no_default/workflow.yaml:4: param 'date' has no default,"
        " so scheduled runs cannot start (give it a default)",
    ],
    "yaml_task_without_type": [
        "broken/yaml_task_without_type/notify.yaml:1: missing type (add type: no_op or type: command)",
    ],
    "command_without_command": [
        "broken/command_without_command/notify.yaml:1: a command task needs command:"
        ' (add command: ["prog", "arg"])',
    ],
    "unknown_task_type": [
        "broken/unknown_task_type/marker.yaml:1: unknown task type 'noop' (did you mean 'no_op'?)",
    ],
    "empty_workflow": [
        "broken/empty_workflow/workflow.yaml:1: empty workflow.yaml (add at least description: ...)",
    ],
    "top_level_list": [
        "broken/top_level_list/workflow.yaml:1: workflow.yaml must be a mapping of keys, not a list"
        " (write key: value lines)",
    ],
    "alias_bomb": [
        "broken/alias_bomb/laughs.yaml: YAML document expands to more than 100,000 nodes"
        " (use fewer anchors and aliases)",
    ],
}
GOOD_DAGS = {"upstream", "cron_never_fires"}  # cron_never_fires only has a warning
WARNING_ONLY = {"cron_never_fires"}

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def dagctl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command line, as a user runs it."""
    script = Path(sys.executable).with_name("dagctl")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "dagctl"]
    env = {k: v for k, v in os.environ.items() if k not in ("DAGCTL_DAGS", "DATABASE_URL")}
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def corpus_tree():
    return load_tree(CORPUS)


# ---------------------------------------------------------------- the committed corpus


def test_corpus_has_one_dag_per_kind() -> None:
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED) | GOOD_DAGS


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_kind_reports_its_exact_lines(corpus_tree, kind: str) -> None:
    lines = [p.render() for p in corpus_tree.problems if p.dag == kind]
    assert lines == EXPECTED[kind]


@pytest.mark.parametrize("kind", sorted(set(EXPECTED) - WARNING_ONLY))
def test_each_broken_kind_breaks_only_its_dag(corpus_tree, kind: str) -> None:
    assert kind in corpus_tree.broken
    assert corpus_tree.broken[kind].reason == EXPECTED[kind][0]


def test_a_never_firing_schedule_is_a_warning_not_an_error(corpus_tree) -> None:
    (problem,) = [p for p in corpus_tree.problems if p.dag == "cron_never_fires"]
    assert problem.severity == "warning"
    assert "cron_never_fires" in corpus_tree.dags
    assert corpus_tree.dags["cron_never_fires"].schedule == "0 0 30 2 *"


def test_broken_dags_do_not_stop_the_good_ones(corpus_tree) -> None:
    assert set(corpus_tree.dags) == GOOD_DAGS
    upstream = corpus_tree.dags["upstream"]
    assert set(upstream.tasks) == {"extract.sh", "done.yaml"}
    assert upstream.tasks["done.yaml"].inputs == ("extract.sh",)


def test_other_files_in_a_dag_folder_are_ignored_not_errors(corpus_tree) -> None:
    assert not [p for p in corpus_tree.problems if p.dag == "upstream"]
    ignored = {Path(p).relative_to(CORPUS).as_posix() for p in corpus_tree.ignored_files}
    # README.md is listed as ignored; dot-files such as .gitignore are skipped silently.
    assert ignored == {"upstream/README.md", "empty_dag/README.md"}
    assert not any(".gitignore" in p.path for p in corpus_tree.problems)


def test_problem_fields(corpus_tree) -> None:
    (problem,) = [p for p in corpus_tree.problems if p.dag == "input_unknown_same_dag"]
    assert problem.path == "broken/input_unknown_same_dag/load.sh"
    assert problem.line == 5
    assert problem.pointer == "/inputs/1"
    assert problem.hint == "did you mean 'transform.py'?"


# ---------------------------------------------------------------- through the command line


def test_cli_prints_every_expected_line_and_exits_1() -> None:
    done = dagctl("validate", str(CORPUS))
    assert done.returncode == 1, done.stderr
    printed = done.stdout.splitlines()
    expected = [line for lines in EXPECTED.values() for line in lines]
    assert sorted(printed) == sorted(expected)
    assert "Traceback" not in done.stdout + done.stderr
    errors = len(expected) - len(WARNING_ONLY)
    assert done.stderr.strip() == (
        f"{len(EXPECTED) + 1} DAGs ({errors} broken), 3 tasks in valid DAGs: "
        f"{errors} errors, {len(WARNING_ONLY)} warnings, 2 other files ignored"
    )


def test_cli_json_output_shape() -> None:
    done = dagctl("validate", "-o", "json", str(CORPUS))
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert set(report) == {"ok", "dags", "broken_dags", "tasks", "problems"}
    assert report["ok"] is False
    assert report["dags"] == len(EXPECTED) + 1
    assert report["broken_dags"] == sorted(set(EXPECTED) - WARNING_ONLY)
    assert report["tasks"] == 3
    assert len(report["problems"]) == sum(len(v) for v in EXPECTED.values())
    for problem in report["problems"]:
        assert list(problem) == ["path", "line", "severity", "dag", "field", "message", "hint"]
        assert problem["severity"] in ("error", "warning")
        assert problem["dag"] in EXPECTED
        assert problem["line"] is None or isinstance(problem["line"], int)
    by_dag = {p["dag"]: p for p in report["problems"]}
    assert by_dag["unknown_key"] == {
        "path": "broken/unknown_key/workflow.yaml",
        "line": 2,
        "severity": "error",
        "dag": "unknown_key",
        "field": "/schedul",
        "message": "unknown key 'schedul'",
        "hint": "did you mean 'schedule'?",
    }
    assert by_dag["cron_never_fires"]["severity"] == "warning"
    assert by_dag["empty_dag"]["line"] is None


def test_cli_json_for_a_clean_tree() -> None:
    done = dagctl("validate", "-o", "json", str(EXAMPLES))
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout) == {
        "ok": True,
        "dags": 7,
        "broken_dags": [],
        "tasks": 24,
        "problems": [],
    }


def test_cli_exit_0_on_the_examples() -> None:
    done = dagctl("validate", str(EXAMPLES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("7 DAGs (0 broken), 24 tasks in valid DAGs: 0 errors, 0 warnings")


def test_cli_exit_2_on_a_missing_path(tmp_path: Path) -> None:
    done = dagctl("validate", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_exit_2_on_a_missing_dags_folder(tmp_path: Path) -> None:
    done = dagctl("--dags", str(tmp_path / "nope"), "validate")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"dagctl: error: cannot read the DAGs folder {str(tmp_path / 'nope')!r}: "
        "No such file or directory (pass --dags PATH or set DAGCTL_DAGS)"
    )


def test_validating_one_dag_folder(tmp_path: Path) -> None:
    done = dagctl("validate", str(CORPUS / "cycle"))
    assert done.returncode == 1
    assert done.stdout.splitlines() == EXPECTED["cycle"]


# ---------------------------------------------------------------- generated at run time


def _dag(root: Path, name: str, **files: bytes | str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(f"description: {name}\n")
    for file_name, content in files.items():
        path = folder / file_name.replace("__", ".")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    _dag(root, "binary_task", run__sh=b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x03\x00>\x00")
    big = _dag(root, "huge_file", run__sh="echo hi\n")
    with (big / "workflow.yaml").open("w") as fh:
        fh.write("description: big\n")
        fh.write("# padding\n" * (10 * 1024 * 1024 // 10))
    _dag(root, "huge_task", load__sql="/* description: x */\n" + "SELECT 1;\n" * (1024 * 1024))
    loop = _dag(root, "symlink_loop")
    (loop / "a.sh").symlink_to("b.sh")
    (loop / "b.sh").symlink_to("a.sh")
    dangling = _dag(root, "dangling_symlink")
    (dangling / "gone.sh").symlink_to("nowhere.sh")
    fifo = _dag(root, "fifo_task", ok__sh="echo ok\n")
    os.mkfifo(fifo / "pipe.sh")
    folder = _dag(root, "folder_task", ok__sh="echo ok\n")
    (folder / "x.sh").mkdir()
    _dag(root, "not_utf8", run__sh=b"#!/bin/bash\necho caf\xe9\n")
    _dag(root, "good", run__sh="#!/bin/bash\necho ok\n")
    return root


GENERATED_LINES = {
    "binary_task": [
        "corpus/binary_task/run.sh: binary file, not text (remove it or give it another extension)"
    ],
    "huge_file": [
        "corpus/huge_file/workflow.yaml: file is 10,485,777 bytes, over the 1,048,576-byte limit"
        " (split it or move data out of the DAG folder)"
    ],
    "huge_task": [
        "corpus/huge_task/load.sql: file is 10,485,781 bytes, over the 4,194,304-byte limit"
        " (split it or move data out of the DAG folder)"
    ],
    "symlink_loop": [
        "corpus/symlink_loop/a.sh: cannot read: Too many levels of symbolic links"
        " (check the file and its permissions)",
        "corpus/symlink_loop/b.sh: cannot read: Too many levels of symbolic links"
        " (check the file and its permissions)",
    ],
    "dangling_symlink": [
        "corpus/dangling_symlink/gone.sh: cannot read: No such file or directory"
        " (check the file and its permissions)"
    ],
    "fifo_task": ["corpus/fifo_task/pipe.sh: not a regular file (replace it with a file)"],
    "folder_task": ["corpus/folder_task/x.sh: not a regular file (replace it with a file)"],
    "not_utf8": ["corpus/not_utf8/run.sh:2: not valid UTF-8 text (save the file as UTF-8)"],
}


@pytest.mark.parametrize("kind", sorted(GENERATED_LINES))
def test_generated_kinds_report_their_exact_lines(generated: Path, kind: str) -> None:
    tree = load_tree(generated)
    assert [p.render() for p in tree.problems if p.dag == kind] == GENERATED_LINES[kind]
    assert kind in tree.broken
    assert set(tree.dags) == {"good"}


def test_generated_corpus_through_the_cli(generated: Path) -> None:
    done = dagctl("validate", str(generated))
    assert done.returncode == 1
    expected = [line for lines in GENERATED_LINES.values() for line in lines]
    assert sorted(done.stdout.splitlines()) == sorted(expected)
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")
def test_an_unreadable_file(tmp_path: Path) -> None:
    folder = _dag(tmp_path / "corpus", "unreadable", secret__sh="echo hi\n")
    (folder / "secret.sh").chmod(0)
    try:
        tree = load_tree(tmp_path / "corpus")
    finally:
        (folder / "secret.sh").chmod(0o644)
    assert [p.render() for p in tree.problems] == [
        "corpus/unreadable/secret.sh: cannot read: Permission denied (check the file and its permissions)"
    ]


def test_a_read_error_after_stat_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an unreadable file does, for root too: the OSError from reading becomes a problem."""
    _dag(tmp_path / "corpus", "unreadable", secret__sh="echo hi\n")
    real_open, real_read = os.open, os.read
    secret: set[int] = set()

    def opened(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if os.path.basename(path) == "secret.sh":
            secret.add(fd)
        return fd

    def read(fd: int, size: int) -> bytes:
        if fd in secret:
            secret.discard(fd)
            raise PermissionError(13, "Permission denied")
        return real_read(fd, size)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "read", read)
    tree = load_tree(tmp_path / "corpus")
    assert [p.render() for p in tree.problems] == [
        "corpus/unreadable/secret.sh: cannot read: Permission denied (check the file and its permissions)"
    ]


def test_deep_nesting_does_not_crash_the_process(tmp_path: Path) -> None:
    """libyaml's composer recurses in C: 100,000 '[' used to end in a segfault (exit -11)."""
    root = tmp_path / "corpus"
    _dag(root, "deep", run__sh="echo hi\n")
    (root / "deep" / "workflow.yaml").write_text("description: deep\nparams: " + "[" * 100_000 + "\n")
    _dag(root, "deep_header", run__sh="#!/bin/bash\n# inputs: " + "[" * 50_000 + "\necho hi\n")
    _dag(root, "deep_dashes", run__yaml="- " * 60_000 + "x\n")
    done = dagctl("validate", str(root))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "corpus/deep/workflow.yaml: YAML nesting is too deep (nest at most 200 levels)",
        "corpus/deep_dashes/run.yaml: YAML nesting is too deep (nest at most 200 levels)",
        "corpus/deep_header/run.sh:2: YAML nesting is too deep (nest at most 200 levels)",
    ]


def test_copied_corpus_gives_the_same_lines(tmp_path: Path) -> None:
    """Paths are shown relative to the folder above the one validated, wherever it is."""
    copy = tmp_path / "broken"
    shutil.copytree(CORPUS, copy, symlinks=True)
    tree = load_tree(copy)
    assert sorted(p.render() for p in tree.problems) == sorted(
        line for lines in EXPECTED.values() for line in lines
    )
