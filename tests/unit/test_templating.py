"""Run variables and the template sandbox: filters, strict undefined, bounds, the dates
of a slot and of a manual run, and what `validate` says about a bad template."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from dagctl.dags import templating
from dagctl.dags.model import Dag
from dagctl.dags.tree import load_tree
from dagctl.errors import ParamError, UsageError

BERLIN_NIGHTLY = templating.dates_for_slot("30 2 * * *", "Europe/Berlin", datetime(2024, 10, 28, 1, 30))


def _vars() -> dict[str, object]:
    return templating.run_variables("etl", BERLIN_NIGHTLY, run_id=7, task="a.sh", attempt=2, params={"n": 3})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ ds }}", "2024-10-28"),
        ("{{ ds_nodash }}", "20241028"),
        ("{{ data_interval_start | ds }}", "2024-10-27"),
        ("{{ logical_date | add_days(-1) | ds }}", "2024-10-27"),
        ("{{ logical_date | iso }}", "2024-10-28T01:30:00+00:00"),
        ("{{ logical_date | strftime('%H:%M') }}", "02:30"),
        ("{{ logical_date | add_hours(2) | strftime('%H') }}", "04"),
        ("{{ data_interval_start | iso }}", "2024-10-27T00:30:00+00:00"),
        ("{{ dag }}/{{ task }}#{{ attempt }} run {{ run_id }} n={{ params.n }}", "etl/a.sh#2 run 7 n=3"),
    ],
)
def test_filters_and_variables(text: str, expected: str) -> None:
    assert templating.render(text, _vars()) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ dss }}", "'dss' is undefined"),
        ("{{ ds | nope }}", "No filter named 'nope'"),
        ("{{ ds", "unexpected end of template"),
        ("{{ ().__class__.__mro__ }}", "unsafe"),
        ("{{ 'x' * 100000000 }}", "too large"),
        ("{{ 9 ** 999999 }}", "too large"),
        ("{{ ds | add_days('x') }}", "TypeError"),
    ],
)
def test_a_bad_template_is_a_one_line_error(text: str, message: str) -> None:
    with pytest.raises(templating.TemplateError) as caught:
        templating.render(text, _vars())
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_interval_of_a_slot_is_the_previous_slot_across_the_autumn_fold() -> None:
    # Berlin falls back on 2024-10-27 (02:30 happens twice; the slot is the first):
    # the interval of the next night's run spans 25 hours.
    assert BERLIN_NIGHTLY.data_interval_start == datetime(2024, 10, 27, 0, 30)
    assert BERLIN_NIGHTLY.data_interval_end == datetime(2024, 10, 28, 1, 30)
    assert BERLIN_NIGHTLY.ds == "2024-10-28"


def _dag(schedule: str | None, tz: str = "Europe/Berlin") -> Dag:
    return Dag(
        name="d", folder="d", description="", tasks={}, fingerprint="f", schedule=schedule, timezone=tz
    )


def test_a_logical_date_alone_means_the_first_slot_of_that_local_day() -> None:
    assert templating.parse_logical_date("2024-06-01", _dag("15 2 * * *")) == datetime(2024, 6, 1, 0, 15)
    assert templating.parse_logical_date("2024-06-01", _dag(None)) == datetime(2024, 5, 31, 22, 0)
    assert templating.parse_logical_date("2024-06-01T09:30", _dag(None)) == datetime(2024, 6, 1, 7, 30)
    assert templating.parse_logical_date("2024-06-01T09:30Z", _dag(None)) == datetime(2024, 6, 1, 9, 30)
    with pytest.raises(UsageError, match="--logical-date 'June' is not a date"):
        templating.parse_logical_date("June", _dag(None))


def test_a_manual_run_takes_its_interval_from_the_schedule() -> None:
    dates = templating.dates_for_manual(_dag("15 2 * * *"), datetime(2024, 6, 1, 0, 15))
    assert (dates.data_interval_start, dates.data_interval_end) == (
        datetime(2024, 5, 31, 0, 15),
        datetime(2024, 6, 1, 0, 15),
    )
    unscheduled = templating.dates_for_manual(_dag(None), datetime(2024, 6, 1, 9))
    assert unscheduled.data_interval_start == unscheduled.data_interval_end == datetime(2024, 6, 1, 9)


def test_a_default_that_cannot_render_is_a_param_error_naming_the_param(tmp_path: Path) -> None:
    from dagctl.dags.params import build_spec

    specs = {"when": build_spec("when", {"type": "string", "default": "{{ ds | add_days('x') }}"})}
    with pytest.raises(ParamError, match="param 'when': its default template cannot be rendered"):
        templating.render_param_defaults("d", specs, BERLIN_NIGHTLY, {})
    assert templating.render_param_defaults("d", specs, BERLIN_NIGHTLY, {"when": "given"}) == {}


def test_validate_reports_bad_templates_with_file_and_line(tmp_path: Path) -> None:
    dag = tmp_path / "dags" / "etl"
    dag.mkdir(parents=True)
    (dag / "workflow.yaml").write_text(
        textwrap.dedent("""\
            description: templates
            schedule: "0 2 * * *"
            params:
              date:
                type: string
                format: date
                default: "{{ data_interval_start | dss }}"
              ok:
                type: string
                format: date
                default: "{{ data_interval_start | ds }}"
            worker_config:
              env:
                WHEN: "{{ logical_date | iso"
        """)
    )
    (dag / "run.yaml").write_text('type: command\ncommand: ["echo", "{{ nope }}", "{{ params.any }}"]\n')
    problems = [p.render() for p in load_tree(tmp_path / "dags").problems]
    assert problems == [
        "dags/etl/workflow.yaml:14: template /worker_config/env/WHEN: unexpected end of template, expected"
        " 'end of print statement'. (see the README's run variables and filters)",
        "dags/etl/workflow.yaml:7: template /params/date/default: No filter named 'dss'."
        " (see the README's run variables and filters)",
        "dags/etl/run.yaml:2: template /command/1: 'nope' is undefined (see the README's run variables and"
        " filters)",
    ]


def test_validate_reports_a_bad_template_in_the_root_config(tmp_path: Path) -> None:
    root = tmp_path / "dags"
    (root / "a").mkdir(parents=True)
    (root / "dagctl.yaml").write_text('worker_config:\n  env:\n    X: "{{ oops }}"\n')
    (root / "a" / "workflow.yaml").write_text("description: a\n")
    (root / "a" / "t.yaml").write_text("type: no_op\n")
    assert [p.render() for p in load_tree(root).problems] == [
        "dags/dagctl.yaml:3: template /worker_config/env/X: 'oops' is undefined"
        " (see the README's run variables and filters)"
    ]
