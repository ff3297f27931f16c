"""Bad input through the real CLI (F10-F15): broken DAG folders next to good ones,
oversized params, shell metacharacters and NUL bytes, and fuzzed `-p` values and
workflow files. Never a traceback; a broken DAG never stops the others."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagctl.cli import cli
from dagctl.errors import EXIT_USAGE, DagctlError
from tests.faults.conftest import Harness, InProcess

pytestmark = pytest.mark.postgres

BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "broken"
HOURLY = 'description: hourly\nschedule: "0 * * * *"\n'
WRITE_PARAM = """
#!/usr/bin/env bash
# parameters: [value]
printf '%s' "$value" > "$FAULT_DIR/out-$DAGCTL_RUN_ID"
"""


def test_broken_dags_are_reported_and_skipped_while_the_others_run(harness: Harness) -> None:
    for folder in BROKEN.iterdir():
        shutil.copytree(folder, harness.dags / folder.name)
    huge = harness.dags / "huge" / "workflow.yaml"
    huge.parent.mkdir()
    huge.write_text("description: big\n" + "# padding\n" * 1_100_000)  # over 10 MB
    (harness.dags / "huge" / "a.sh").write_text("echo a\n")
    binary = harness.dags / "binary"
    binary.mkdir()
    (binary / "workflow.yaml").write_bytes(os.urandom(4096) + b"\x00\xff\xfe")
    (binary / "a.sh").write_bytes(b"\x7fELF\x00\x00" + os.urandom(512))
    harness.dag("good_a", HOURLY, noop__yaml="type: no_op\n")
    harness.dag("good_b", HOURLY, work__sh="#!/usr/bin/env bash\necho fine\n")

    result = harness.run("validate", check=False)
    assert result.returncode == 1
    out = result.stdout
    for expected in (
        "cycle: a.sh -> b.sh -> c.sh -> a.sh",
        "cycle: again.sh -> again.sh",
        "unknown input 'transfrom.py' (did you mean 'transform.py'?)",
        "unknown DAG 'upstrem' in input upstrem:done.yaml (did you mean 'upstream'?)",
        "bad cron expression '61 * * * *'",
        "cron expression '* * *' has 3 fields",
        "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        "warning: schedule '0 0 30 2 *' never fires",
        "YAML syntax error: a tab is used for indentation",
        "YAML syntax error: found unexpected end of stream while scanning a quoted scalar",
        "YAML document expands to more than 100,000 nodes",
        "workflow.yaml must be a mapping of keys, not a list",
        "empty workflow.yaml",
    ):
        assert expected in out, expected
    assert "huge/workflow.yaml" in out and "binary/workflow.yaml" in out

    # The scheduler: the two good DAGs get their slot; every broken one is skipped.
    harness.run("schedule", "--once", DAGCTL_FAKE_NOW="2024-05-01T10:20:00")
    result = harness.run(
        "schedule", "--until-idle", "--poll-interval", "0.1", DAGCTL_FAKE_NOW="2024-05-01T11:00:30"
    )
    rows = harness.sql("SELECT dag_name, status FROM dag_run ORDER BY dag_name")
    assert rows == [("good_a", "success"), ("good_b", "success")]
    warnings = [line for line in result.stderr.splitlines() if "is broken and will not be scheduled" in line]
    broken_names = {line.split("DAG ", 1)[1].split(" ", 1)[0] for line in warnings}
    assert {"cycle", "self_loop", "timezone_unknown", "alias_bomb", "huge", "binary"} <= broken_names
    assert len(warnings) == len(broken_names)  # once each, not at every reload
    assert "Traceback" not in result.stderr

    # A broken DAG cannot be triggered; the error says why in one line.
    result = harness.run("trigger", "cycle", check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cycle" in result.stderr
    harness.check(all_finished=True)


def test_a_200_kb_param_gets_a_clear_size_error_at_trigger(harness: Harness) -> None:
    harness.dag("echo", "description: d\nparams:\n  value: {type: string}\n", write__sh=WRITE_PARAM)
    harness.migrate()
    big = harness.root / "big.json"
    big.write_text(json.dumps({"value": "x" * 200_000}))
    result = harness.run("trigger", "echo", "--params-file", str(big), check=False)
    assert result.returncode == EXIT_USAGE
    assert result.stderr == (
        "dagctl: error: param 'value' is 200,000 bytes, over the 65,536-byte limit "
        "(pass a path or a URL to the data instead)\n"
    )
    # On the command line too (one argv string may hold up to 128 KiB).
    result = harness.run("trigger", "echo", "-p", "value=" + "y" * 100_000, check=False)
    assert result.returncode == EXIT_USAGE and "over the 65,536-byte limit" in result.stderr
    assert harness.sql("SELECT count(*) FROM dag_run") == [(0,)]
    harness.check()


NASTY = [
    "x; touch {marker} #",
    "$(touch {marker})",
    "`touch {marker}`",
    "a && touch {marker}",
    "| touch {marker}",
    "line one\nline two\n",
    "--leading-dashes",
    "-p",
    "'single' \"double\" \\back\\slash",
    "%s%n%x ${{HOME}} $HOME ~ * ?",
    "ünïcødé ✓ 日本語 \u202e",
    "",
]


def test_shell_metacharacters_are_delivered_verbatim_and_nul_is_refused(harness: Harness) -> None:
    marker = harness.root / f"pwned-{uuid.uuid4().hex}"
    names = [f"v{i}" for i in range(len(NASTY))]
    params = "".join(f"  {name}: {{type: string}}\n" for name in names)
    # Each param reaches the task as an environment variable and inside DAGCTL_PARAMS.
    task = (
        "#!/usr/bin/env bash\n"
        + "".join(f'printf \'%s\' "${name}" > "$FAULT_DIR/{name}"\n' for name in names)
        + 'printf \'%s\' "$DAGCTL_PARAMS" > "$FAULT_DIR/params.json"\n'
    )
    harness.dag("echo", f"description: d\nparams:\n{params}", write__sh=task)
    harness.migrate()
    values = {name: template.format(marker=marker) for name, template in zip(names, NASTY, strict=True)}
    args = [arg for name, value in values.items() for arg in ("-p", f"{name}={value}")]
    run_id = int(harness.run("trigger", "echo", *args).stdout)
    nul = harness.root / "nul.json"
    nul.write_text(json.dumps({**values, "v0": "a\x00b"}))
    result = harness.run("trigger", "echo", "--params-file", str(nul), check=False)
    assert result.returncode == EXIT_USAGE
    assert result.stderr == (
        "dagctl: error: param 'v0' contains a NUL byte (NUL cannot be passed to a process)\n"
    )
    harness.run("schedule", "--until-idle", "--poll-interval", "0.1")
    for name, value in values.items():
        assert (harness.root / name).read_bytes() == value.encode(), value
    assert json.loads((harness.root / "params.json").read_text()) == values
    assert not marker.exists()
    harness.check(triggered=[run_id], all_finished=True)
    assert harness.run_statuses() == {"success": 1}


# ---------------------------------------------------------------- fuzzing

PARAMS_DAG = """
description: every kind of param
max_active_runs: 500
params:
  s: {type: string, default: "", maxLength: 40}
  i: {type: integer, default: 1, minimum: 0, maximum: 100}
  n: {type: number, default: 0.5}
  b: {type: boolean, default: false}
  e: {type: string, default: red, enum: [red, green]}
  d: {type: string, default: "2024-01-01", format: date}
  r: {type: string, default: abc, pattern: "^[a-z]+$"}
"""
PARAM_NAMES = ["s", "i", "n", "b", "e", "d", "r"]
# What Python makes of bytes that are not UTF-8 on a real command line (surrogateescape).
ARGV_TEXT = st.text(
    alphabet=st.one_of(st.characters(), st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)),
    max_size=60,
)
WRITE_ALL = """
#!/usr/bin/env bash
printf '%s' "$s" > "$FAULT_DIR/out-$DAGCTL_RUN_ID"
"""


def _invoke(args: list[str]) -> tuple[int, Any]:
    """The CLI in process. Anything but a clean exit or a DagctlError (which `main()`
    turns into one `dagctl: error:` line) would be a traceback for the user."""
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    exc = result.exception
    if exc is None or isinstance(exc, SystemExit):
        return result.exit_code, None
    assert isinstance(exc, DagctlError), (args, repr(exc))
    assert "\n" not in str(exc), str(exc)
    return exc.exit_code, exc


def test_fuzzed_params_through_the_cli_never_crash_and_arrive_verbatim(harness: Harness) -> None:
    harness.dag("params", PARAMS_DAG, write__sh=WRITE_ALL)
    harness.migrate()
    base = ["--dags", str(harness.dags), "--db", harness.db_url, "trigger", "params"]
    accepted: dict[int, str] = {}

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(PARAM_NAMES), ARGV_TEXT), ARGV_TEXT), min_size=1, max_size=3
        )
    )
    def fuzz(assignments: list[tuple[str, str]]) -> None:
        args = list(base)
        for name, value in assignments:
            args += ["-p", f"{name}={value}"]
        code, exc = _invoke(args)
        assert code in (0, EXIT_USAGE), (args, code, exc)
        if code == 0:
            given_s = [v for n, v in assignments if n == "s"]
            run_id = int(harness.sql("SELECT max(id) FROM dag_run")[0][0])
            stored = json.loads(harness.sql("SELECT params FROM dag_run WHERE id = %s", (run_id,))[0][0])
            if given_s:
                assert stored["s"] == given_s[-1]
            accepted[run_id] = stored["s"]
        elif any("\x00" in v for _, v in assignments) and all(n in PARAM_NAMES for n, _ in assignments):
            assert "NUL" in str(exc) or "param" in str(exc)

    fuzz()
    assert accepted, "no example was accepted"
    # Deliver what was accepted: each string param reaches its task byte for byte.
    harness.run("schedule", "--until-idle", "--poll-interval", "0.1", "--concurrency", "8", timeout=120)
    for run_id, value in accepted.items():
        assert (harness.root / f"out-{run_id}").read_bytes() == value.encode("utf-8", "surrogateescape")
    harness.check(triggered=list(accepted), all_finished=True)


WORKFLOW_KEYS = [
    "description", "schedule", "timezone", "catchup", "max_active_runs", "retries", "retry_delay",
    "retry_backoff", "timeout", "tags", "params", "worker_config", "schedul", "retrys", "",
]  # fmt: skip
WORKFLOW_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "0 * * * *",
            "61 * * * *",
            "* * *",
            "0 0 30 2 *",
            "@hourly",
            "Europe/Berlin",
            "Mars/Base",
            "latest",
            "all",
            "none",
            "5m",
            "1h30m",
            "-1s",
            "30",
            "",
            "\x00",
            "{{",
            "*",
        ]
    ),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(
        st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3
    ),
)


def test_fuzzed_workflow_files_never_crash_validate_trigger_or_the_scheduler(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in harness.env().items():
        monkeypatch.setenv(name, value)
    harness.dag("steady", HOURLY, noop__yaml="type: no_op\n")
    folder = harness.dag("fuzzed", "description: placeholder\n", noop__yaml="type: no_op\n")
    harness.migrate()
    proc = InProcess(harness)
    base = ["--dags", str(harness.dags), "--db", harness.db_url]
    try:

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.dictionaries(st.sampled_from(WORKFLOW_KEYS), WORKFLOW_VALUES, max_size=6), st.booleans())
        def fuzz(workflow: dict[str, Any], as_yaml: bool) -> None:
            text = (
                yaml.safe_dump(workflow, allow_unicode=True) if as_yaml else json.dumps(workflow, default=str)
            )
            (folder / "workflow.yaml").write_text(text, errors="surrogatepass")
            code, exc = _invoke([*base, "validate"])
            assert code in (0, 1), (workflow, code, exc)
            code, exc = _invoke([*base, "trigger", "fuzzed"])
            assert code in (0, 1, EXIT_USAGE), (workflow, code, exc)
            proc.scheduler.iterate(proc.now)  # must not raise, whatever the file holds
            assert "steady" in proc.scheduler.dags

        fuzz()
        # Runs of a DAG that is broken now wait for it to be fixed; fix it, and all end.
        (folder / "workflow.yaml").write_text("description: fixed\nmax_active_runs: 100\n")
        proc.run_until_idle(timeout=30)
    finally:
        proc.close()
    harness.check(all_finished=True)
