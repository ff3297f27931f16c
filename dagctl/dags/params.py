"""Typed DAG params: checking defaults, and turning `-p NAME=VALUE` strings into values.

Params are data. They travel to tasks as environment variables, bind parameters or
JSON, never through a shell, so the only checks here are about types and size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeGuard

from dagctl.dags import patterns
from dagctl.dags.model import ParamSpec
from dagctl.errors import ParamError

# Linux refuses any single environment string over 128 KiB (MAX_ARG_STRLEN), and the
# whole environment plus argv shares a limit too. Refusing big values at trigger time
# beats a task that cannot even start.
MAX_PARAM_BYTES = 64 * 1024
# All params also travel together as JSON in DAGCTL_PARAMS, one environment string.
MAX_PARAMS_TOTAL_BYTES = 120 * 1024
# Environment variables no param may be named after: each changes what a shell, the
# dynamic loader or an interpreter runs (BASH_ENV is sourced by every `bash script`,
# LD_PRELOAD loads a library into every process, PYTHONSTARTUP, NODE_OPTIONS...), where
# programs are found or read their configuration from (PATH, HOME), or what dagctl itself
# reads (DAGCTL_*, DATABASE_URL: a pod's `dagctl run` reads them). Names are matched
# exactly, case included, as the environment does. The README lists them.
SENSITIVE_ENV_NAMES = frozenset(
    {
        "ENV",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "PATH",
        "HOME",
        "SHELL",
        "PWD",
        "OLDPWD",
        "TMPDIR",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "DATABASE_URL",
    }
)
SENSITIVE_ENV_PREFIXES = ("BASH_", "LD_", "DYLD_", "PYTHON", "PERL", "RUBY", "DAGCTL_")
_OUR_KEYS = frozenset({"secret", "default", "description"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def build_spec(name: str, raw: Mapping[str, Any]) -> ParamSpec:
    schema = {k: v for k, v in raw.items() if k not in _OUR_KEYS}
    schema.setdefault("type", "string")
    return ParamSpec(
        name=name,
        schema=schema,
        has_default="default" in raw,
        default=raw.get("default"),
        secret=bool(raw.get("secret", False)),
        description=str(raw.get("description", "")),
    )


def sensitive_env_name(name: str) -> bool:
    """Whether a param called `name` would override a variable that changes what a task
    runs (see SENSITIVE_ENV_NAMES)."""
    return name in SENSITIVE_ENV_NAMES or name.startswith(SENSITIVE_ENV_PREFIXES)


def sensitive_name_problem(name: str) -> str:
    return f"param {name!r} is named after a sensitive environment variable"


def declaration_problems(spec: ParamSpec) -> list[tuple[str, str, str]]:
    """What is wrong with a param's declaration in workflow.yaml, as (JSON pointer,
    message, fix): a sensitive name, a pattern RE2 refuses, a default that does not fit."""
    where = f"/params/{spec.name}"
    found: list[tuple[str, str, str]] = []
    if sensitive_env_name(spec.name):
        fix = f"rename it, e.g. {spec.name.lower()!r}: it could change what the task runs"
        found.append((where, sensitive_name_problem(spec.name), fix))
    pattern = spec.schema.get("pattern")
    if isinstance(pattern, str) and (problem := patterns.pattern_problem(pattern)):
        found.append((f"{where}/pattern", f"param {spec.name!r}: {problem}", patterns.UNSUPPORTED_HINT))
    # Other defaults (an unquoted 2024-06-01 is a date to YAML) fail the schema check.
    elif spec.has_default and isinstance(spec.default, (str, int, float)):
        problem = value_error(spec, spec.default)
        if problem:
            article = "an" if spec.type[:1] in "aeiou" else "a"
            fix = (
                f"make the default {article} {spec.type}"
                if problem.startswith("expected ")
                else "give it a default that fits the declaration"
            )
            found.append((f"{where}/default", f"default of param {spec.name!r}: {problem}", fix))
    return found


def value_error(spec: ParamSpec, value: Any) -> str | None:
    """Why `value` does not fit `spec`, or None."""
    kind = spec.type
    if kind == "boolean" and not isinstance(value, bool):
        return f"expected a boolean, got {value!r}"
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected an integer, got {value!r}"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"expected a number, got {value!r}"
    if kind == "string" and not isinstance(value, str):
        return f"expected a string, got {value!r}"
    # The keywords are only trusted when well-typed: a malformed declaration (minimum: ~)
    # is reported by the schema check, and must not crash this one.
    schema = spec.schema
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        choices = ", ".join(str(c) for c in enum)
        return f"{value!r} is not one of: {choices}"
    if _is_number(value):
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if _is_number(minimum) and value < minimum:
            return f"{value} is less than the minimum {minimum}"
        if _is_number(maximum) and value > maximum:
            return f"{value} is more than the maximum {maximum}"
    if isinstance(value, str):
        not_utf8 = utf8_problem(value)
        if not_utf8:
            return not_utf8
        min_length, max_length = schema.get("minLength"), schema.get("maxLength")
        if _is_number(min_length) and len(value) < min_length:
            return f"is shorter than {min_length} characters"
        if _is_number(max_length) and len(value) > max_length:
            return f"is longer than {max_length} characters"
        if isinstance(schema.get("pattern"), str):
            try:
                if not patterns.search(schema["pattern"], value):
                    return f"{_shown(value)} does not match the pattern {schema['pattern']!r}"
            except patterns.PatternError as exc:
                return f"the pattern {schema['pattern']!r} cannot be used: {exc}"
        fmt = schema.get("format")
        if fmt == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                return f"{value!r} is not a date (YYYY-MM-DD)"
        elif fmt == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return f"{value!r} is not a date-time (YYYY-MM-DDTHH:MM:SS)"
    return None


def utf8_problem(text: str) -> str | None:
    """Why `text` cannot be stored and passed on as UTF-8, or None. Bytes that are not
    UTF-8 on a command line reach Python as lone surrogates (surrogateescape), which
    no database, JSON consumer or SQL driver accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        byte = ord(char) - 0xDC00 if 0xDC80 <= ord(char) <= 0xDCFF else None
        what = f"byte 0x{byte:02x}" if byte is not None else f"U+{ord(char):04X}"
        return f"is not valid UTF-8 ({what} at character {exc.start + 1})"
    return None


def _shown(value: str, limit: int = 80) -> str:
    """A value for a one-line message: a 64 KiB one is cut."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value):,} characters)"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce(spec: ParamSpec, text: str) -> Any:
    """A `-p` string as a value of the param's type."""
    kind = spec.type
    try:
        if kind == "integer":
            return int(text.strip())
        if kind == "number":
            return float(text.strip())
    except ValueError:
        raise ParamError(
            f"param {spec.name!r}: {text!r} is not {'an integer' if kind == 'integer' else 'a number'}"
        ) from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ParamError(f"param {spec.name!r}: {text!r} is not a boolean", "use true or false")
    return text


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`NAME=VALUE` strings, split on the first `=` so values may contain more."""
    values: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ParamError(f"bad param {item!r}", "write -p NAME=VALUE")
        values[name] = value
    return values


def resolve(dag_name: str, specs: Mapping[str, ParamSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Given values (strings from the CLI, or typed values from Python/JSON) plus defaults,
    checked against the DAG's params. Raises ParamError before anything is written."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        from dagctl.dags.hints import did_you_mean

        hint = did_you_mean(unknown[0], specs) or (
            f"declared params: {', '.join(specs)}" if specs else "the DAG declares no params"
        )
        raise ParamError(f"DAG {dag_name!r} has no param {unknown[0]!r}", hint)
    for name in specs:
        if sensitive_env_name(name):
            hint = f"rename it in workflow.yaml, e.g. {name.lower()!r}: it could change what the task runs"
            raise ParamError(sensitive_name_problem(name), hint)
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            value = given[name]
            if isinstance(value, str) and spec.type != "string":
                value = coerce(spec, value)
        elif spec.has_default:
            value = spec.default
        else:
            raise ParamError(f"DAG {dag_name!r} needs param {name!r}", f"pass -p {name}=VALUE")
        problem = value_error(spec, value)
        if problem:
            fix = "pass UTF-8 text" if problem.startswith("is not valid UTF-8") else None
            raise ParamError(f"param {name!r}: {problem}", fix)
        resolved[name] = value
    check_sizes(resolved)
    return resolved


def check_sizes(values: Mapping[str, Any]) -> None:
    total = 0
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if "\x00" in text:
            raise ParamError(f"param {name!r} contains a NUL byte", "NUL cannot be passed to a process")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_PARAM_BYTES:
            raise ParamError(
                f"param {name!r} is {size:,} bytes, over the {MAX_PARAM_BYTES:,}-byte limit",
                "pass a path or a URL to the data instead",
            )
        total += size
    if total > MAX_PARAMS_TOTAL_BYTES:
        raise ParamError(
            f"params total {total:,} bytes, over the {MAX_PARAMS_TOTAL_BYTES:,}-byte limit",
            "pass paths or URLs to the data instead",
        )


def as_env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)
