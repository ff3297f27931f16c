"""The command line (click only): parse, make one call into `dagctl.actions`, render.

`dagctl.cli:main` is the console entry point.
"""

from dagctl.cli.main import cli, main

__all__ = ["cli", "main"]
