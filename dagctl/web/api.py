"""The JSON API under /api/v1: the same shapes as `-o json` (actions/views.py), documented
by the OpenAPI document at /api/v1/openapi.json. Actions need `Authorization: Bearer
TOKEN` (no cookie is accepted here, so no page of another site can act through it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dagctl.actions import control, dashboard
from dagctl.actions import inspect as inspection
from dagctl.actions import notify as alerts
from dagctl.actions.runs import trigger_run
from dagctl.errors import UsageError
from dagctl.web.openapi import OPENAPI
from dagctl.web.pages import int_param, known_dag, server_of

API_PAGE_MAX = 200


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False).encode()


async def dags(request: Request) -> Response:
    server = server_of(request)
    offset = int_param(request, "offset", 0) or 0
    limit = min(int_param(request, "limit", 50, minimum=1) or 50, API_PAGE_MAX)
    search = request.query_params.get("q", "")[:200]
    return JSON(
        await server.call(lambda: dashboard.overview(server.trees, server.store, offset, limit, search))
    )


async def dag(request: Request) -> Response:
    server = server_of(request)
    name = request.path_params["name"]
    filters = {k: request.query_params.get(k) or None for k in ("status", "kind", "since", "until")}
    before_id = int_param(request, "before_id")
    return JSON(
        await server.call(
            lambda: dashboard.dag_detail(
                server.settings, server.store, server.trees.get(), name, before_id=before_id, **filters
            )
        )
    )


async def run(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]
    return JSON(
        await server.call(dashboard.run_detail, server.settings, server.store, server.trees.get(), run_id)
    )


def parse_cursors(text: str) -> dict[int, int]:
    """`after=ATTEMPT_ID:SEQ,...`: where each attempt's output was read up to."""
    cursors: dict[int, int] = {}
    for part in filter(None, text.split(",")[:1000]):
        attempt, _, seq = part.partition(":")
        try:
            cursors[int(attempt)] = int(seq or 0)
        except ValueError:
            raise UsageError(f"after must look like 12:3,13:0, not {part!r}") from None
    return cursors


async def logs(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]
    cursors = parse_cursors(request.query_params.get("after", ""))
    return JSON(await server.call(dashboard.log_chunks, server.store, run_id, cursors))


async def schedulers(request: Request) -> Response:
    server = server_of(request)
    return JSON({"schedulers": await server.call(dashboard.schedulers, server.store)})


async def notifications(request: Request) -> Response:
    server = server_of(request)
    dag_name = request.query_params.get("dag", "")[:200] or None
    limit = min(int_param(request, "limit", 50, minimum=1) or 50, API_PAGE_MAX)
    return JSON(await server.call(alerts.notifications_in, server.store, dag_name, limit))


async def pools(request: Request) -> Response:
    server = server_of(request)
    return JSON(await server.call(inspection.pools_in, server.store))


async def openapi(request: Request) -> Response:
    base = server_of(request).base_path
    return JSON({**OPENAPI, "servers": [{"url": f"{base}/api/v1"}]})


async def _act(request: Request, do: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
    server = server_of(request)
    if not server.guard.allow_actions:
        return JSON({"error": "read-only: start dagctl serve with --allow-actions"}, status_code=403)
    if not server.guard.bearer_ok(request.headers.get("authorization")):
        return JSON({"error": "missing or wrong token: send Authorization: Bearer TOKEN"}, status_code=401)
    body: Any = {}
    raw = await request.body()
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            return JSON({"error": "the request body must be a JSON object"}, status_code=400)
        if not isinstance(body, dict):
            return JSON({"error": "the request body must be a JSON object"}, status_code=400)
    return JSON(await server.call(do, body))


async def trigger(request: Request) -> Response:
    server = server_of(request)
    name = request.path_params["name"]

    def do(body: dict[str, Any]) -> dict[str, Any]:
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise UsageError("params must be a JSON object of NAME: VALUE")
        run_id = trigger_run(server.settings, known_dag(server, name), params, "api")
        return {"run_id": run_id, "dag": name}

    return await _act(request, do)


async def pause(request: Request) -> Response:
    server = server_of(request)
    name = request.path_params["name"]
    paused = request.url.path.endswith("/pause")
    return await _act(
        request, lambda body: control.set_paused(server.settings, known_dag(server, name), paused)
    )


async def retry(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]

    def do(body: dict[str, Any]) -> dict[str, Any]:
        task = body.get("task")
        if task is not None and not isinstance(task, str):
            raise UsageError("task must be a task name")
        return control.retry(server.settings, run_id, task)

    return await _act(request, do)


async def cancel(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]
    return await _act(request, lambda body: control.cancel(server.settings, run_id))
