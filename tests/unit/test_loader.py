"""The loader: task headers of every file type, line numbers, and never running user code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dagctl.dags.model import Dag, DagTree
from dagctl.dags.sources import parse_duration
from dagctl.dags.tree import load_tree


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def load(tmp_path: Path, files: dict[str, str]) -> DagTree:
    return load_tree(write(tmp_path / "dags", files))


def one_dag(tmp_path: Path, files: dict[str, str], name: str = "d") -> Dag:
    tree = load(tmp_path, {f"{name}/{k}": v for k, v in files.items()})
    assert not tree.errors, [p.render() for p in tree.errors]
    return tree.dags[name]


def rendered(tree: DagTree) -> list[str]:
    return [p.render() for p in tree.problems]


WORKFLOW = "description: test DAG\n"


# ---------------------------------------------------------------- headers to Task fields


def test_shell_header(tmp_path: Path) -> None:
    dag = one_dag(
        tmp_path,
        {
            "workflow.yaml": WORKFLOW,
            "first.sh": "echo first\n",
            "run.sh": (
                "#!/usr/bin/env bash\n"
                "# description: >-\n"
                "#   Two lines of\n"
                "#   description.\n"
                "# inputs: [first.sh]\n"
                "# parameters: [date, limit]\n"
                "# retries: 5\n"
                "# retry_delay: 90s\n"
                "# timeout: 1h30m\n"
                "# worker_config:\n"
                "#   env:\n"
                "#     MODE: fast\n"
                "set -e\n"
                "# a comment after the header is not part of it: retries: 9\n"
            ),
        },
    )
    task = dag.tasks["run.sh"]
    assert task.type == "shell"
    assert task.description == "Two lines of description."
    assert task.inputs == ("first.sh",)
    assert task.parameters == ("date", "limit")
    assert task.retries == 5
    assert task.retry_delay == 90.0
    assert task.timeout == 5400.0
    assert dict(task.worker_config) == {"env": {"MODE": "fast"}}
    assert task.line == 2
    assert dag.tasks["first.sh"].inputs == ()
    assert dag.roots() == ("first.sh",)


def test_shell_header_without_shebang(tmp_path: Path) -> None:
    dag = one_dag(tmp_path, {"workflow.yaml": WORKFLOW, "run.sh": "# retries: 0\necho\n"})
    assert dag.tasks["run.sh"].retries == 0
    assert dag.tasks["run.sh"].line == 1


def test_shell_header_after_blank_lines(tmp_path: Path) -> None:
    """A blank line after the shebang must not silently turn the header into a comment
    (the task would lose its inputs and run at once)."""
    dag = one_dag(
        tmp_path,
        {
            "workflow.yaml": WORKFLOW,
            "a.sh": "echo a\n",
            "b.sh": "#!/bin/bash\n\n\n# inputs: [a.sh]\necho b\n",
        },
    )
    assert dag.tasks["b.sh"].inputs == ("a.sh",)
    assert dag.tasks["b.sh"].line == 4


def test_sql_header(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "dagctl.yaml": "connections:\n  warehouse: sqlite:///w.db\n",
            "d/workflow.yaml": WORKFLOW,
            "d/a.sh": "echo\n",
            "d/load.sql": (
                "\n\n"
                "/*\n"
                "  description: Load.\n"
                "  inputs: [a.sh]\n"
                "  parameters: [date]\n"
                "  connection: warehouse\n"
                "  timeout: 250ms\n"
                "*/\n"
                "DELETE FROM t WHERE d = :date;\n"
            ),
        },
    )
    assert not tree.problems, rendered(tree)
    task = tree.dags["d"].tasks["load.sql"]
    assert task.type == "sql"
    assert task.description == "Load."
    assert task.inputs == ("a.sh",)
    assert task.parameters == ("date",)
    assert task.connection == "warehouse"
    assert task.timeout == 0.25
    assert task.line == 3
    warehouse = tree.dags["d"].connections["warehouse"]
    assert warehouse.url == "sqlite:///" + str((tmp_path / "dags" / "w.db").resolve())


def test_sql_without_header(tmp_path: Path) -> None:
    dag = one_dag(tmp_path, {"workflow.yaml": WORKFLOW, "q.sql": "-- just SQL\nSELECT 1;\n"})
    task = dag.tasks["q.sql"]
    assert (task.type, task.inputs, task.connection, task.line) == ("sql", (), None, 1)


def test_python_header(tmp_path: Path) -> None:
    dag = one_dag(
        tmp_path,
        {
            "workflow.yaml": WORKFLOW,
            "a.sh": "echo\n",
            "fetch.py": (
                "# -*- coding: utf-8 -*-\n"
                '"""\n'
                "description: Fetch.\n"
                "inputs: [a.sh]\n"
                "parameters: [date]\n"
                "retries: 1\n"
                "timeout: 2d\n"
                '"""\n'
                "\n"
                "def run(context):\n"
                "    return context\n"
            ),
        },
    )
    task = dag.tasks["fetch.py"]
    assert task.type == "python"
    assert task.inputs == ("a.sh",)
    assert task.parameters == ("date",)
    assert task.retries == 1
    assert task.timeout == 2 * 86400.0
    assert task.line == 2


@pytest.mark.parametrize(
    "body",
    [
        "def run(context):\n    pass\n",
        "async def run(context):\n    pass\n",
        "run = print\n",
        "from somewhere import run\n",
        "from somewhere import main as run\n",
    ],
)
def test_python_run_may_be_defined_in_several_ways(tmp_path: Path, body: str) -> None:
    dag = one_dag(tmp_path, {"workflow.yaml": WORKFLOW, "t.py": '"""retries: 1"""\n' + body})
    assert dag.tasks["t.py"].retries == 1


def test_yaml_tasks(tmp_path: Path) -> None:
    dag = one_dag(
        tmp_path,
        {
            "workflow.yaml": WORKFLOW,
            "noop.yaml": "type: no_op\n",
            "cmd.yml": (
                "type: command\n"
                "description: Run it.\n"
                "inputs: [noop.yaml]\n"
                "command:\n"
                "  - python3\n"
                "  - -c\n"
                "  - \"print('a: b')\"\n"
                "timeout: 30\n"
                "options: {anything: [1, 2]}\n"
            ),
        },
    )
    noop, cmd = dag.tasks["noop.yaml"], dag.tasks["cmd.yml"]
    assert (noop.type, noop.inputs, noop.command) == ("no_op", (), ())
    assert cmd.type == "command"
    assert cmd.command == ("python3", "-c", "print('a: b')")
    assert cmd.inputs == ("noop.yaml",)
    assert cmd.timeout == 30.0
    assert dict(cmd.options) == {"anything": [1, 2]}
    assert dag.downstream() == {"noop.yaml": ("cmd.yml",), "cmd.yml": ()}


def test_cross_dag_input(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "up/workflow.yaml": WORKFLOW,
            "up/done.yaml": "type: no_op\n",
            "down/workflow.yaml": WORKFLOW,
            "down/go.sh": "# inputs: [up:done.yaml]\necho\n",
        },
    )
    assert not tree.problems, rendered(tree)
    task = tree.dags["down"].tasks["go.sh"]
    assert task.external_inputs == (("up", "done.yaml"),)
    assert task.local_inputs == ()


def test_dag_settings_merge_root_defaults(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "dagctl.yaml": (
                "defaults:\n  timezone: Europe/Berlin\n  retries: 4\n  retry_delay: 1m\n  timeout: 10m\n"
                "worker_config:\n  env: {A: root, B: root}\n"
            ),
            "d/workflow.yaml": (
                "description: settings\n"
                'schedule: "30 2 * * *"\n'
                "catchup: all\n"
                "max_active_runs: 3\n"
                "retries: 1\n"
                "retry_backoff: 2\n"
                "tags: [a, b]\n"
                "worker_config:\n  env: {B: dag}\n"
                "params:\n"
                "  date: {type: string, format: date, default: '2024-01-01'}\n"
                "  limit: {type: integer, default: 10, minimum: 1}\n"
                "  token: {type: string, default: x, secret: true, description: The token.}\n"
            ),
            "d/t.sh": "# retries: 0\n# timeout: 5s\necho\n",
        },
    )
    assert not tree.problems, rendered(tree)
    dag = tree.dags["d"]
    task = dag.tasks["t.sh"]
    assert (dag.schedule, dag.timezone, dag.catchup, dag.max_active_runs) == (
        "30 2 * * *",
        "Europe/Berlin",
        "all",
        3,
    )
    assert (dag.retries, dag.retry_delay, dag.retry_backoff, dag.timeout) == (1, 60.0, 2.0, 600.0)
    assert dag.tags == ("a", "b")
    assert dict(dag.worker_config) == {"env": {"A": "root", "B": "dag"}}  # maps merge key by key
    assert (dag.retries_for(task), dag.timeout_for(task)) == (0, 5.0)
    assert dag.retry_delay_for(task, 3) == 240.0
    assert list(dag.params) == ["date", "limit", "token"]
    assert dag.params["limit"].type == "integer"
    assert dag.params["limit"].default == 10
    assert dag.secret_params == frozenset({"token"})
    assert dag.params["token"].description == "The token."


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("1h 30m", 5400.0),
        ("1m30s", 90.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


# ---------------------------------------------------------------- header lines are file lines


def test_shell_header_lines_count_the_shebang(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": WORKFLOW,
            "d/run.sh": "#!/bin/bash\n# description: x\n# retries: many\n# inputs: [load_orders.sh]\necho\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/run.sh:3: retries: expected integer, got string 'many'",
        "dags/d/run.sh:4: unknown input 'load_orders.sh' (name a task file of this DAG, extension included)",
    ]


def test_shell_header_yaml_error_line(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {"d/workflow.yaml": WORKFLOW, "d/run.sh": '#!/bin/bash\n# description: x\n# inputs: ["a.sh\necho\n'},
    )
    assert rendered(tree) == [
        "dags/d/run.sh:3: YAML syntax error: found unexpected end of stream while scanning a quoted"
        " scalar (close the quote)"
    ]


def test_sql_header_lines_count_leading_blank_lines(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": WORKFLOW,
            "d/q.sql": "\n\n\n/*\ndescription: x\ntimeout: soon\n*/\nSELECT 1;\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/q.sql:6: timeout: 'soon' is not a duration (use seconds, or 30s, 5m, 1h30m)",
    ]


def test_sql_header_on_the_comment_line(tmp_path: Path) -> None:
    tree = load(tmp_path, {"d/workflow.yaml": WORKFLOW, "d/q.sql": "/* retries: x */\nSELECT 1;\n"})
    assert rendered(tree) == ["dags/d/q.sql:1: retries: expected integer, got string 'x'"]


def test_python_docstring_lines(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": WORKFLOW,
            "d/t.py": (
                "#!/usr/bin/env python3\n"
                "# comment\n"
                '"""\n'
                "description: x\n"
                "inputs:\n"
                "  - t.py\n"
                "connection: nowhere\n"
                '"""\n'
                "def run(context):\n"
                "    pass\n"
            ),
        },
    )
    assert rendered(tree) == [
        "dags/d/t.py:6: cycle: t.py -> t.py (a task cannot be its own input)",
        "dags/d/t.py:7: unknown connection 'nowhere' (define it under connections: in dagctl.yaml)",
    ]


def test_python_syntax_error_line(tmp_path: Path) -> None:
    tree = load(tmp_path, {"d/workflow.yaml": WORKFLOW, "d/t.py": '"""x: 1"""\n\n\nx = (1,\n'})
    assert rendered(tree) == ["dags/d/t.py:4: Python syntax error: '(' was never closed (fix the syntax)"]


def test_workflow_lines(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": (
                "# leading comment\n"
                "description: x\n"
                "params:\n"
                "  limit:\n"
                "    type: integer\n"
                "    default: 1.5\n"
                "  when:\n"
                "    type: string\n"
                "    default: 2024-06-01\n"
                "catchup: lates\n"
            ),
            "d/t.sh": "echo\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/workflow.yaml:10: catchup: 'lates' is not one of: latest, none, all (did you mean 'latest'?)",
        "dags/d/workflow.yaml:9: params.when.default: expected string or integer or number or boolean"
        ' or null, got date (quote it: "2024-06-01")',
        "dags/d/workflow.yaml:6: default of param 'limit': expected an integer, got 1.5"
        " (make the default an integer)",
    ]


def test_cycle_lines_point_at_the_closing_input(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": WORKFLOW,
            "d/extract.sh": "echo\n",
            "d/a.py": '"""\ninputs:\n  - extract.sh\n  - c.sql\n"""\ndef run(context):\n    pass\n',
            "d/b.yaml": "type: no_op\ninputs: [a.py]\n",
            "d/c.sql": "/*\ninputs: [b.yaml]\n*/\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/a.py:4: cycle: a.py -> b.yaml -> c.sql -> a.py (remove one of these inputs)",
    ]
    assert tree.problems[0].pointer == "/inputs/1"


def test_cycle_across_dags(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "one/workflow.yaml": WORKFLOW,
            "one/a.sh": "# inputs: [two:b.sh]\necho\n",
            "two/workflow.yaml": WORKFLOW,
            "two/b.sh": "#!/bin/bash\n# description: b\n# inputs: [one:a.sh]\necho\n",
        },
    )
    assert rendered(tree) == [
        "dags/one/a.sh:1: cycle across DAGs: one:a.sh -> two:b.sh -> one:a.sh (remove one of these inputs)",
    ]
    assert set(tree.broken) == {"one"}


# ---------------------------------------------------------------- no user code runs


def test_loading_never_imports_or_runs_task_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    module = "dagctl_test_task_that_must_not_be_imported"
    files = {
        "d/workflow.yaml": WORKFLOW,
        f"d/{module}.py": (
            '"""\ndescription: writes a marker when imported\n"""\n'
            f"open({str(marker)!r}, 'w').write('imported')\n"
            "raise SystemExit('imported at load time')\n"
            "def run(context):\n"
            "    pass\n"
        ),
        "d/touch.sh": f"#!/bin/bash\n# description: x\ntouch {marker}\n",
        "d/touch.yaml": f"type: command\ncommand: [touch, {marker}]\n",
        "d/touch.sql": f"/* description: x */\nCOPY (SELECT 1) TO '{marker}';\n",
    }
    tree = load(tmp_path, files)
    assert not tree.problems, rendered(tree)
    assert set(tree.dags["d"].tasks) == {f"{module}.py", "touch.sh", "touch.yaml", "touch.sql"}
    assert not marker.exists()
    assert module not in sys.modules
    assert not list((tmp_path / "dags").rglob("__pycache__"))


def test_python_with_a_prose_docstring_is_a_task_without_header(tmp_path: Path) -> None:
    files = {"d/workflow.yaml": WORKFLOW, "d/t.py": '"""Fetch the rates."""\ndef run(c): ...\n'}
    tree = load(tmp_path, files)
    assert rendered(tree) == []
    assert tree.dags["d"].tasks["t.py"].inputs == ()


def test_python_helper_modules_are_not_tasks(tmp_path: Path) -> None:
    files = {
        "d/workflow.yaml": WORKFLOW,
        "d/helpers.py": '"""Shared helpers."""\nimport os\ndef work_dir(): ...\n',
        "d/t.py": '"""\nSome prose first.\n\ninputs: []\n"""\nimport helpers\ndef run(c): ...\n',
        "d/header_no_run.py": '"""\ninputs: [t.py]\n"""\n',
    }
    tree = load(tmp_path, files)
    assert rendered(tree) == [
        "dags/d/header_no_run.py: no run(context) function (define def run(context): at module level;"
        " a .py file is a task when its docstring is a task header or it defines run(context))",
    ]
    assert [Path(p).name for p in tree.ignored_files] == ["helpers.py"]


def test_type_that_does_not_fit_the_extension(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {"d/workflow.yaml": WORKFLOW, "d/t.sh": "# type: python\necho\n", "d/u.yaml": "type: shell\n"},
    )
    assert rendered(tree) == [
        "dags/d/t.sh:1: type 'python' does not fit a .sh file (remove type, or use type: shell)",
        "dags/d/u.yaml:1: type 'shell' needs a script file (write the task as a .sh file)",
    ]


def test_missing_workflow_yaml(tmp_path: Path) -> None:
    tree = load(tmp_path, {"lib/helpers.sh": "echo\n"})
    assert rendered(tree) == [
        "dags/lib/workflow.yaml: missing workflow.yaml (create workflow.yaml with at least a description,"
        " or rename the folder to _lib if it is not a DAG (folders starting with _ are not DAGs))",
    ]


def test_folders_starting_with_underscore_are_not_dags(tmp_path: Path) -> None:
    tree = load(tmp_path, {"_lib/helpers.sh": "echo\n", "d/workflow.yaml": WORKFLOW, "d/a.sh": "echo\n"})
    assert rendered(tree) == []
    assert sorted(tree.dags) == ["d"]


def test_workflow_yml_instead_of_workflow_yaml(tmp_path: Path) -> None:
    tree = load(tmp_path, {"d/workflow.yml": "description: x\n", "d/a.sh": "echo\n"})
    assert rendered(tree) == [
        "dags/d/workflow.yaml: missing workflow.yaml (rename workflow.yml to workflow.yaml)",
    ]


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    """Such names cannot be printed, stored or hashed as text: reported, never a crash."""
    root = write(
        tmp_path / "dags", {"d/workflow.yaml": WORKFLOW, "d/ok.sh": "echo\n", "e/workflow.yaml": WORKFLOW}
    )
    (root / "d" / os.fsdecode(b"caf\xe9.sh")).write_text("echo\n")
    (root / "d" / os.fsdecode(b"notes\xff.md")).write_text("ignored\n")
    (root / os.fsdecode(b"bad\xfedag")).mkdir()
    tree = load_tree(root)
    assert rendered(tree) == [
        "dags/bad\\xfedag: the folder name is not valid UTF-8 (rename the folder)",
        "dags/d/caf\\xe9.sh: the file name is not valid UTF-8 (rename the file)",
        "dags/e: the DAG has no tasks (add a task file (.sh, .py, .sql or .yaml) next to workflow.yaml)",
    ]
    assert set(tree.broken) == {"d", "e"}
    assert [Path(p).name for p in tree.ignored_files] == ["notes\\xff.md"]


def test_malformed_param_declarations_are_reported_not_raised(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": (
                "description: x\n"
                "params:\n"
                "  n: {type: integer, default: 5, minimum: ~, maximum: x, enum: ~}\n"
                "  s: {type: string, default: abc, minLength: ~, pattern: 5}\n"
            ),
            "d/a.sh": "echo\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/workflow.yaml:3: params.n.enum: expected array, got null",
        "dags/d/workflow.yaml:3: params.n.maximum: expected number, got string 'x'",
        "dags/d/workflow.yaml:3: params.n.minimum: expected number, got null",
        "dags/d/workflow.yaml:4: params.s.minLength: expected integer, got null",
        "dags/d/workflow.yaml:4: params.s.pattern: expected string, got integer",
    ]


def test_a_lone_surrogate_in_a_docstring(tmp_path: Path) -> None:
    """A \\ud800 escape in a .py docstring is a lone surrogate, which libyaml cannot take."""
    tree = load(
        tmp_path, {"d/workflow.yaml": WORKFLOW, "d/t.py": '"""description: \\ud800"""\ndef run(c): ...\n'}
    )
    (problem,) = tree.problems
    assert problem.path == "dags/d/t.py"
    assert problem.message.startswith("YAML error: unacceptable character #xd800")


def test_comment_lines_before_a_header_are_skipped(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": WORKFLOW,
            "d/a.sh": "#!/bin/bash\n# Copyright 2024 ACME\n# All rights reserved.\n# inputs: []\necho\n",
            "d/b.sql": "-- Licence: MIT\n-- inputs: [a.sh]\n-- connectoin: x\nSELECT 1;\n",
            "d/c.sql": "-- Licence: MIT\n\n/*\ninputs: [a.sh]\n*/\nSELECT 1;\n",
            "d/d.sql": "-- just prose\nSELECT 1;\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/b.sql:3: unknown key 'connectoin' (did you mean 'connection'?)",
    ]
    (tmp_path / "dags" / "d" / "b.sql").write_text("-- Licence: MIT\n-- inputs: [a.sh]\nSELECT 1;\n")
    dag = load(tmp_path, {}).dags["d"]
    assert {name: task.inputs for name, task in dag.tasks.items()} == {
        "a.sh": (),
        "b.sql": ("a.sh",),
        "c.sql": ("a.sh",),
        "d.sql": (),
    }


# ---------------------------------------------------------------- what a loaded tree keeps


def test_dags_declared_alike_share_their_values_but_not_their_folders(tmp_path: Path) -> None:
    workflow = WORKFLOW + "tags: [nightly]\nparams:\n  date:\n    type: string\n    default: '2024-01-01'\n"
    task = "# inputs: [a.sh]\n# parameters: [date]\necho\n"
    different = workflow.replace("2024-01-01", "2024-01-02")
    tree = load(
        tmp_path,
        {
            **{
                f"{d}/{name}": text
                for d in ("x", "y", "z")
                for name, text in (("a.sh", "echo\n"), ("b.sh", task))
            },
            "x/workflow.yaml": workflow,
            "y/workflow.yaml": workflow,
            "z/workflow.yaml": different,
        },
    )
    x, y, z = (tree.dags[d] for d in "xyz")
    assert x.params is y.params and x.tags is y.tags
    assert x.tasks["b.sh"].inputs is y.tasks["b.sh"].inputs
    assert z.params is not x.params and z.params["date"].default == "2024-01-02"
    # Each task knows its own file, as a Path built from its DAG's folder.
    assert x.tasks["b.sh"].folder is x.folder
    assert x.tasks["b.sh"].path == tmp_path / "dags" / "x" / "b.sh" != y.tasks["b.sh"].path
    assert x.path == tmp_path / "dags" / "x"
