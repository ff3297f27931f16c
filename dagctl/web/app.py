"""The ASGI application of `dagctl serve`: routes, error pages, static assets (shipped
in the wheel: no CDN, no front-end build), /healthz and /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dagctl.actions import dashboard
from dagctl.config import Settings, tuning
from dagctl.errors import DagctlError, DagNotFound, DatabaseError, UsageError
from dagctl.web import api, pages
from dagctl.web.context import HERE, Server
from dagctl.web.metrics import CachedExposition
from dagctl.web.security import Guard

# Every asset is ours (no CDN, no inline script): the browser may load nothing else, and
# no other site may frame a page to trick a click on an action button.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _status_of(exc: DagctlError) -> int:
    if isinstance(exc, DagNotFound) or "no run " in str(exc):
        return 404
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, DatabaseError):
        return 503
    return 409


async def on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DagctlError)
    status = _status_of(exc)
    if "/api/" in request.url.path:
        return api.JSON({"error": str(exc)}, status_code=status)
    return pages.error_page(request, str(exc), status)


async def healthz(request: Request) -> Response:
    server = pages.server_of(request)
    try:
        await server.call(dashboard.healthy, server.store)
    except DatabaseError as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    server = pages.server_of(request)
    cached: CachedExposition = request.app.state.metrics
    body = await server.call(cached.get)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def routes() -> list[BaseRoute]:
    return [
        Route("/", pages.dags_page),
        Route("/dags/{name}", pages.dag_page),
        Route("/dags/{name}/trigger", pages.trigger_action, methods=["POST"]),
        Route("/dags/{name}/pause", pages.pause_action, methods=["POST"]),
        Route("/dags/{name}/unpause", pages.pause_action, methods=["POST"]),
        Route("/runs/{run_id:int}", pages.run_page),
        Route("/runs/{run_id:int}/retry", pages.retry_action, methods=["POST"]),
        Route("/runs/{run_id:int}/cancel", pages.cancel_action, methods=["POST"]),
        Route("/schedulers", pages.schedulers_page),
        Route("/alerts", pages.alerts_page),
        Route("/pools", pages.pools_page),
        Route("/login", pages.login_page),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/api/v1/openapi.json", api.openapi),
        Route("/api/v1/dags", api.dags),
        Route("/api/v1/dags/{name}", api.dag),
        Route("/api/v1/dags/{name}/trigger", api.trigger, methods=["POST"]),
        Route("/api/v1/dags/{name}/pause", api.pause, methods=["POST"]),
        Route("/api/v1/dags/{name}/unpause", api.pause, methods=["POST"]),
        Route("/api/v1/runs/{run_id:int}", api.run),
        Route("/api/v1/runs/{run_id:int}/logs", api.logs),
        Route("/api/v1/runs/{run_id:int}/retry", api.retry, methods=["POST"]),
        Route("/api/v1/runs/{run_id:int}/cancel", api.cancel, methods=["POST"]),
        Route("/api/v1/schedulers", api.schedulers),
        Route("/api/v1/notifications", api.notifications),
        Route("/api/v1/pools", api.pools),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def create_app(
    settings: Settings, *, allow_actions: bool = False, base_path: str = "", token: str | None = None
) -> ASGIApp:
    """The dashboard for `settings` (its DAGs folder and state database). The caller
    checks that --allow-actions comes with a token; without one nobody may act."""
    from dagctl.actions.common import open_store

    base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
    store = open_store(settings, migrate=False)
    server = Server(
        settings=settings,
        store=store,
        trees=dashboard.TreeCache(settings, tuning().reload_seconds),
        guard=Guard(token, allow_actions),
        base_path=base_path,
    )
    inner = Starlette(routes=routes(), exception_handlers={DagctlError: on_error})
    inner.state.server = server
    inner.state.metrics = CachedExposition(store)
    if not base_path:
        app = inner
    else:
        app = Starlette(routes=[Mount(base_path, app=inner)], exception_handlers={DagctlError: on_error})
        app.state.server = server
        app.state.metrics = inner.state.metrics
    return SecurityHeaders(app)


def run_app(app: ASGIApp, *, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
