"""Every command and every option of the CLI is in the README's command reference, and
the reference names no command or option that does not exist.

The reference is the `## Commands` section up to its first subsection: a table with a
row per command, whose first cell is its synopsis (`dagctl status [DAG] [--run ID]`)
and whose second cell may name more options, and a "Global options" paragraph for the
options of `dagctl` itself."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from dagctl.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
CODE = re.compile(r"`([^`]*)`")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
HEADING = re.compile(r"^#{2,3} ", re.MULTILINE)


def commands(group: click.Group, prefix: str = "dagctl") -> dict[str, click.Command]:
    """Every command by its full name (`dagctl db upgrade`), groups included."""
    found: dict[str, click.Command] = {}
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        if command.hidden:
            continue
        found[f"{prefix} {name}"] = command
        if isinstance(command, click.Group):
            found.update(commands(command, f"{prefix} {name}"))
    return found


def option_names(command: click.Command) -> list[list[str]]:
    """Each option's spellings (`-o`, `--output`); --help, which every command has, aside."""
    return [
        [*param.opts, *param.secondary_opts]
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
    ]


def reference() -> str:
    text = README.read_text()
    start = text.index("\n## Commands\n") + 1
    following = HEADING.search(text, text.index("\n", start))
    return text[start : following.start() if following else len(text)]


def rows() -> list[tuple[list[str], str]]:
    """The command table: for each row, the commands of its first cell (`dagctl pause
    DAG` / `dagctl unpause DAG`: two), and the row's whole text."""
    table: list[tuple[list[str], str]] = []
    for line in reference().splitlines():
        cells = [cell.strip() for cell in line.replace("\\|", "\0").strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`dagctl"):
            continue
        table.append(([span.replace("\0", "|") for span in CODE.findall(cells[0])], line))
    return table


def documented(full_name: str) -> str:
    """The text of the rows whose synopsis starts with the command (`dagctl db` is in
    the row of `dagctl db upgrade`)."""
    return "\n".join(
        line
        for spans, line in rows()
        if any(span == full_name or span.startswith(f"{full_name} ") for span in spans)
    )


def global_options() -> str:
    text = reference()
    start = text.index("Global options:")
    return text[start : text.index("\n\n", start)]


def mentions(text: str, spelling: str) -> bool:
    return spelling in OPTION.findall(text)


ALL = commands(cli)


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert documented(name), f"README.md: no row for `{name}` in the command table of ## Commands"


@pytest.mark.parametrize(
    ("name", "spellings"),
    [
        pytest.param(name, spellings, id=f"{name} {'/'.join(spellings)}")
        for name in sorted(ALL)
        for spellings in option_names(ALL[name])
    ],
)
def test_every_option_is_in_its_commands_row(name: str, spellings: list[str]) -> None:
    row = documented(name)
    assert any(mentions(row, s) for s in spellings), (
        f"README.md: the row of `{name}` does not mention {'/'.join(spellings)}"
    )


@pytest.mark.parametrize("spellings", option_names(cli), ids="/".join)
def test_every_global_option_is_in_the_readme(spellings: list[str]) -> None:
    assert any(mentions(global_options(), s) for s in spellings), (
        f"README.md: `Global options:` does not mention {'/'.join(spellings)}"
    )


def test_the_reference_names_only_real_commands_and_options() -> None:
    wrong: list[str] = []
    for spans, _ in rows():
        for span in spans:
            words = span.split()
            # The longest prefix that names a command: `dagctl db upgrade`, `dagctl run`.
            name = next(
                (" ".join(words[:n]) for n in range(len(words), 1, -1) if " ".join(words[:n]) in ALL),
                None,
            )
            if name is None:
                wrong.append(f"`{span}`: no such command")
                continue
            known = {s for spellings in option_names(ALL[name]) for s in spellings}
            wrong.extend(
                f"`{span}`: {name} has no option {option}"
                for option in OPTION.findall(span)
                if option not in known
            )
    assert wrong == []
