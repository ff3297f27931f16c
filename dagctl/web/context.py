"""What every handler shares: settings, one open store, the DAG tree cache, the guard,
the templates, and the helpers that run blocking work off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.templating import Jinja2Templates

from dagctl.actions.dashboard import TreeCache
from dagctl.config import Settings
from dagctl.web.security import Guard

if TYPE_CHECKING:
    from dagctl.store import Store

HERE = Path(__file__).parent
T = TypeVar("T")


@dataclass
class Server:
    settings: Settings
    store: Store
    trees: TreeCache
    guard: Guard
    base_path: str = ""
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["base"] = self.base_path
        self.templates.env.globals["read_only"] = not self.guard.allow_actions

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking action (database, files) in the thread pool."""
        return await run_in_threadpool(function, *args, **kwargs)
