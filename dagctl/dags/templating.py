"""Run variables and the templates that read them.

Every run is for one slot. `RunDates` holds its dates: `logical_date` (the slot, or a
manual run's chosen time), `data_interval_start` (the schedule's previous slot) and
`data_interval_end` (the slot), all naive UTC as stored, plus the DAG's time zone so
that `ds` (the slot's local date) can be told. The same values reach tasks as
DAGCTL_* environment variables, SQL bind parameters and the Python `context`
(execution/environment.py builds them from `run_variables`).

Templates are Jinja2 in a sandbox (no attribute access to internals, bounded ranges
and repetition) with strict undefined variables: a typo is an error, never an empty
string. They are allowed in param defaults, `worker_config.env` values and `.yaml`
command argv elements, never inside script bodies. Filters, chosen to be guessable:
`ds` (YYYY-MM-DD in the DAG's time zone), `ds_nodash` (YYYYMMDD), `iso` (ISO 8601 in
UTC), `add_days(n)`, `add_hours(n)` and `strftime(format)` (local time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cache
from typing import TYPE_CHECKING, Any

from dagctl.dags import cron
from dagctl.dags.model import Dag, ParamSpec
from dagctl.errors import ParamError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

# A rendered value is data for one environment string or argv element; anything
# bigger is a mistake (and `'x' * 10**9` must not exhaust memory first).
MAX_RENDERED_CHARS = 64 * 1024
_ONE_MICROSECOND = timedelta(microseconds=1)


class TemplateError(ValueError):
    """A template that does not parse or render; the message is one line."""


@dataclass(frozen=True, slots=True)
class RunDates:
    logical_date: datetime  # naive UTC
    data_interval_start: datetime  # naive UTC
    data_interval_end: datetime  # naive UTC
    timezone: str = "UTC"

    @property
    def ds(self) -> str:
        return cron.to_local(self.logical_date, cron.zone(self.timezone)).date().isoformat()


def previous_slot(schedule: str, tz_name: str, slot: datetime) -> datetime | None:
    return cron.latest_slot_at_or_before(schedule, tz_name, slot - _ONE_MICROSECOND)


def dates_for_slot(schedule: str, tz_name: str, slot: datetime) -> RunDates:
    """A scheduled or backfill run: its interval is (previous slot, slot]."""
    start = previous_slot(schedule, tz_name, slot) or slot
    return RunDates(slot, start, slot, tz_name)


def dates_for_manual(dag: Dag, logical_date: datetime) -> RunDates:
    """A manual run at `logical_date`: with a schedule, its interval ends at the latest
    slot at or before it; without one, the interval is the instant itself."""
    if not dag.schedule:
        return RunDates(logical_date, logical_date, logical_date, dag.timezone)
    end = cron.latest_slot_at_or_before(dag.schedule, dag.timezone, logical_date) or logical_date
    start = previous_slot(dag.schedule, dag.timezone, end) or end
    return RunDates(logical_date, start, end, dag.timezone)


def parse_logical_date(text: str, dag: Dag) -> datetime:
    """`--logical-date` as naive UTC. `YYYY-MM-DD` means the DAG's first slot on that
    local day (local midnight without a schedule); `YYYY-MM-DDTHH:MM[:SS]` is local wall
    time in the DAG's time zone unless it carries an offset or `Z`."""
    from dagctl.errors import UsageError

    raw = text.strip()
    hint = "write --logical-date 2024-06-01 or 2024-06-01T02:00"
    tz = cron.zone(dag.timezone)
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            midnight = cron.to_utc(datetime(day.year, day.month, day.day), tz)
            if dag.schedule:
                first = cron.next_slot_after(dag.schedule, dag.timezone, midnight - _ONE_MICROSECOND)
                if first is not None and cron.to_local(first, tz).date() == day:
                    return first
            return midnight
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--logical-date {text!r} is not a date", hint) from None
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return cron.to_utc(value, tz)


# ---------------------------------------------------------------- variables


def run_variables(
    dag_name: str,
    dates: RunDates,
    *,
    run_id: int | None = None,
    task: str | None = None,
    attempt: int | None = None,
    params: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a template sees: the dates as time-zone-aware datetimes in the DAG's zone
    (so `.hour` is local), `ds`, `ds_nodash`, and whichever of run_id, task, attempt
    and params are known at that point (param defaults are rendered before the run
    exists: they see no run_id, task, attempt or params). `outputs`: the outputs of
    the attempt's upstream tasks, by task name (`outputs["extract.sh"].rows`)."""
    tz = cron.zone(dates.timezone)
    values: dict[str, Any] = {
        "dag": dag_name,
        "logical_date": cron.to_local(dates.logical_date, tz),
        "data_interval_start": cron.to_local(dates.data_interval_start, tz),
        "data_interval_end": cron.to_local(dates.data_interval_end, tz),
        "ds": dates.ds,
        "ds_nodash": dates.ds.replace("-", ""),
    }
    if run_id is not None:
        values["run_id"] = run_id
    if task is not None:
        values["task"] = task
    if attempt is not None:
        values["attempt"] = attempt
    if params is not None:
        values["params"] = params if isinstance(params, dict) else dict(params)
    if outputs is not None:
        values["outputs"] = outputs if isinstance(outputs, dict) else dict(outputs)
    return values


# ---------------------------------------------------------------- templates


def is_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _as_datetime(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise TemplateError(f"the {name} filter needs a date-time, got {value!r}")


def _ds(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return _as_datetime(value, "ds").date().isoformat()


def _ds_nodash(value: Any) -> str:
    return _ds(value).replace("-", "")


def _iso(value: Any) -> str:
    moment = _as_datetime(value, "iso")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def _add_days(value: Any, days: float) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value + timedelta(days=days)
    return _shift(_as_datetime(value, "add_days"), timedelta(days=days))


def _add_hours(value: Any, hours: float) -> datetime:
    return _shift(_as_datetime(value, "add_hours"), timedelta(hours=hours))


def _shift(moment: datetime, delta: timedelta) -> datetime:
    """Calendar arithmetic on the local wall clock (a day later is the same local time,
    across a DST change), mapped back to the zone's offset of the result."""
    return (moment.replace(tzinfo=None) + delta).replace(tzinfo=moment.tzinfo, fold=0)


def _strftime(value: Any, fmt: str) -> str:
    if isinstance(value, date):
        return value.strftime(str(fmt))
    return _as_datetime(value, "strftime").strftime(str(fmt))


@cache
def _environment() -> SandboxedEnvironment:
    import operator

    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class _BoundedSandbox(SandboxedEnvironment):
        # `*` and `**` can build huge values from tiny templates; check before computing.
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
            if operator_name == "**":
                if isinstance(right, (int, float)) and abs(right) > 64:
                    raise TemplateError("exponent too large in a template")
                return operator.pow(left, right)
            for value, times in ((left, right), (right, left)):
                sized = isinstance(value, (str, list, tuple)) and isinstance(times, int)
                if sized and len(value) * times > MAX_RENDERED_CHARS:
                    raise TemplateError("a repeated value in a template is too large")
            return operator.mul(left, right)

    env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(
        ds=_ds,
        ds_nodash=_ds_nodash,
        iso=_iso,
        add_days=_add_days,
        add_hours=_add_hours,
        strftime=_strftime,
    )
    return env


def render(text: str, variables: Mapping[str, Any]) -> str:
    """`text` rendered with `variables`; TemplateError (one line) when it cannot be."""
    from jinja2 import TemplateError as JinjaError

    try:
        result = _environment().from_string(text).render(**variables)
    except TemplateError:
        raise
    except JinjaError as exc:
        raise TemplateError(" ".join(str(exc.message or exc).split())) from None
    except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
        raise TemplateError(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if len(result) > MAX_RENDERED_CHARS:
        raise TemplateError(f"renders to {len(result):,} characters, over {MAX_RENDERED_CHARS:,}")
    return result


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    return render(value, variables) if is_template(value) else value


_SAMPLE = RunDates(datetime(2024, 6, 1, 2, 0), datetime(2024, 5, 31, 2, 0), datetime(2024, 6, 1, 2, 0))


def check(text: str, *, with_run: bool = True) -> str | None:
    """Why `text` is not a usable template (syntax, unknown variable or filter), tried
    against a sample run; None when it is fine. `with_run`: the template may also use
    run_id, task, attempt and params (env values and argv, rendered per attempt)."""
    variables = run_variables(
        "dag",
        _SAMPLE,
        run_id=1 if with_run else None,
        task="task" if with_run else None,
        attempt=1 if with_run else None,
        params=_AnyParams() if with_run else None,
        outputs=_AnyOutputs() if with_run else None,
    )
    try:
        render(text, variables)
    except TemplateError as exc:
        return str(exc)
    return None


class _AnyParams(dict[str, Any]):
    """At validate time the params' values are unknown: any name resolves to a string."""

    def __missing__(self, key: str) -> str:
        return "value"


class _AnyOutputs(dict[str, Any]):
    """At validate time outputs are unknown: any task's outputs hold any key (whether
    the task is upstream is checked by dags/checks.py `check_output_references`)."""

    def __missing__(self, key: str) -> _AnyParams:
        return _AnyParams()


# ---------------------------------------------------------------- what gets rendered


def render_param_defaults(
    dag_name: str, specs: Mapping[str, ParamSpec], dates: RunDates, given: Mapping[str, Any]
) -> dict[str, Any]:
    """The defaults of the params not in `given`, templated ones rendered for this run;
    a failing template is a ParamError naming the param."""
    variables: dict[str, Any] | None = None
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given or not spec.has_default:
            continue
        if is_template(spec.default):
            if variables is None:
                variables = run_variables(dag_name, dates)
            try:
                values[name] = render(spec.default, variables)
            except TemplateError as exc:
                raise ParamError(
                    f"param {name!r}: its default template cannot be rendered: {exc}",
                    f"run dagctl validate, or pass -p {name}=VALUE",
                ) from None
        else:
            values[name] = spec.default
    return values


def resolve_run_params(dag: Dag, dates: RunDates, given: Mapping[str, Any]) -> dict[str, Any]:
    """A run's params: `given` over its defaults rendered for `dates`, checked against
    the DAG's params (ParamError naming the param, before anything is written)."""
    from dagctl.dags.params import resolve

    defaults = render_param_defaults(dag.name, dag.params, dates, given)
    return resolve(dag.name, dag.params, {**defaults, **given})


def has_templated_defaults(dag: Dag) -> bool:
    return any(spec.has_default and is_template(spec.default) for spec in dag.params.values())


def render_mapping(values: Mapping[str, Any], variables: Mapping[str, Any], what: str) -> dict[str, Any]:
    """`worker_config.env` with templated values rendered (what: where, for errors)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            out[str(key)] = render_value(value, variables)
        except TemplateError as exc:
            raise TemplateError(f"{what} {key}: {exc}") from None
    return out


def render_argv(argv: Sequence[str], variables: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for index, element in enumerate(argv):
        try:
            out.append(render_value(element, variables))
        except TemplateError as exc:
            raise TemplateError(f"command[{index}]: {exc}") from None
    return tuple(out)


__all__ = [
    "RunDates",
    "TemplateError",
    "check",
    "dates_for_manual",
    "dates_for_slot",
    "is_template",
    "parse_logical_date",
    "render",
    "render_argv",
    "render_mapping",
    "render_param_defaults",
    "resolve_run_params",
    "run_variables",
]
