"""Options and helpers shared by the commands: click only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dagctl.config import Settings

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format; the JSON form is stable (see README).",
)


param_option = click.option(
    "-p",
    "--param",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="A param value; repeat for more. Split on the first '='.",
)


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def params_from(assignments: tuple[str, ...], params_file: Path | None) -> dict[str, Any]:
    from dagctl.dags.params import parse_assignments
    from dagctl.errors import ParamError

    given: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = json.loads(params_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ParamError(f"cannot read params file {params_file}: {exc}", "give a JSON object") from None
        if not isinstance(loaded, dict):
            raise ParamError(f"params file {params_file} must hold a JSON object")
        given.update(loaded)
    given.update(parse_assignments(assignments))
    return given
