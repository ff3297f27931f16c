"""`trigger --logical-date`, templated params and what `status` shows, through the
installed CLI on SQLite and PostgreSQL; SQL tasks get the run variables as bind
parameters."""

from __future__ import annotations

from tests.acceptance.conftest import Env

NIGHTLY = """
description: nightly
schedule: "15 2 * * *"
timezone: Europe/Berlin
params:
  date:
    type: string
    format: date
    default: "{{ data_interval_start | ds }}"
  token:
    type: string
    secret: true
    default: s3cret-value
"""

SELECT_SQL = """
/* connection: scratch */
SELECT :ds, :data_interval_start, :data_interval_end, :logical_date, :run_id, :date
"""


def test_trigger_for_a_date_renders_params_for_it_and_status_shows_them(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text("connections:\n  scratch: sqlite:///scratch.db\n")
    env.dag("nightly", NIGHTLY, select__sql=SELECT_SQL)
    run_id = env.run("trigger", "nightly", "--logical-date", "2024-06-01").stdout.strip()
    (run,) = env.status()
    assert run["id"] == int(run_id)
    assert run["kind"] == "manual"
    # The first slot of that Berlin day, 02:15 CEST; its interval ends there.
    assert run["logical_date"] == "2024-06-01T00:15:00Z"
    assert (run["data_interval_start"], run["data_interval_end"]) == (
        "2024-05-31T00:15:00Z",
        "2024-06-01T00:15:00Z",
    )
    assert run["params"] == {"date": "2024-05-31", "token": "***"}
    table = env.run("status", "--run", run_id).stdout
    assert "date=2024-05-31" in table and "token=***" in table and "s3cret" not in table

    env.schedule("--until-idle")
    (run,) = env.status()
    assert run["status"] == "success", run
    log = env.run("logs", run_id, "select.sql").stdout
    assert (
        f"2024-06-01 | 2024-05-31T00:15:00+00:00 | 2024-06-01T00:15:00+00:00 | 2024-06-01T00:15:00+00:00"
        f" | {run_id} | 2024-05-31" in log
    )


def test_a_given_param_wins_over_the_template_and_bad_input_is_one_line(env: Env) -> None:
    env.dag("nightly", NIGHTLY, noop__yaml="type: no_op\n")
    env.run("trigger", "nightly", "--logical-date", "2024-06-01T09:00", "-p", "date=2023-01-01")
    (run,) = env.status()
    # 09:00 Berlin is after that day's 02:15 slot: the interval ends at that slot.
    assert run["logical_date"] == "2024-06-01T07:00:00Z"
    assert run["data_interval_end"] == "2024-06-01T00:15:00Z"
    assert run["params"]["date"] == "2023-01-01"
    assert env.error("trigger", "nightly", "--logical-date", "June") == (
        "dagctl: error: --logical-date 'June' is not a date"
        " (write --logical-date 2024-06-01 or 2024-06-01T02:00)"
    )


def test_a_default_failing_at_trigger_time_names_the_param(env: Env) -> None:
    env.dag(
        "odd",
        """
        description: renders, but not to a date
        params:
          date:
            type: string
            format: date
            default: "day {{ ds }}"
        """,
        noop__yaml="type: no_op\n",
    )
    line = env.error("trigger", "odd", "--logical-date", "2024-06-01")
    assert line.startswith("dagctl: error: param 'date': 'day 2024-06-01' is not a date")
