"""Shell completion of DAG names, from the DAGs folder alone (no parsing, no database).

Enable it with `eval "$(_DAGCTL_COMPLETE=bash_source dagctl)"` (zsh_source, fish_source
for the other shells).
"""

from __future__ import annotations

from typing import Any

import click

from dagctl.config import Settings
from dagctl.dags.names import dag_names


def complete_dag(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """DAG folder names under --dags (or DAGCTL_DAGS, or ./dags) starting with `incomplete`."""
    from click.shell_completion import CompletionItem

    root = Settings.resolve(dags=ctx.find_root().params.get("dags")).dags
    return [CompletionItem(name) for name in dag_names(root) if name.startswith(incomplete)]
