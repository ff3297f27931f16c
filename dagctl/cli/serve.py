"""`dagctl serve`: the web dashboard. The web stack is imported only when it runs, so
`import dagctl.cli` stays light."""

from __future__ import annotations

import click

from dagctl.cli.options import settings_of
from dagctl.errors import UsageError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Allow trigger, retry, cancel and pause from the page and API (needs DAGCTL_UI_TOKEN).",
)
@click.option("--base-path", default="", help="Serve under this path prefix, e.g. /dagctl behind a proxy.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, allow_actions: bool, base_path: str) -> None:
    """Serve the web dashboard, the JSON API (/api/v1) and /metrics. Read-only unless
    --allow-actions."""
    from dagctl.config import ui_token

    token = ui_token()
    if allow_actions and token is None:
        raise UsageError(
            "--allow-actions needs a token",
            "set DAGCTL_UI_TOKEN to a long random secret, e.g. openssl rand -hex 24",
        )
    if base_path and not base_path.startswith("/"):
        raise UsageError(f"--base-path must start with '/', not {base_path!r}", "e.g. --base-path /dagctl")
    try:
        from dagctl.web.app import create_app, run_app
    except ImportError as exc:
        raise UsageError(
            f"dagctl serve needs the web extra ({exc.name} is missing)", "pip install 'dagctl[web]'"
        ) from None
    app = create_app(settings_of(ctx), allow_actions=allow_actions, base_path=base_path, token=token)
    mode = "actions allowed" if allow_actions else "read-only"
    click.echo(f"dagctl: serving on http://{host}:{port}{base_path.rstrip('/')}/ ({mode})", err=True)
    run_app(app, host=host, port=port)
