"""The HTML pages (server-rendered; usable with JavaScript off) and the form actions
behind --allow-actions, the token session and the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dagctl.actions import control, dashboard
from dagctl.actions import inspect as inspection
from dagctl.actions import notify as alerts
from dagctl.actions.runs import trigger_run
from dagctl.errors import DagNotFound, UsageError
from dagctl.web.context import Server
from dagctl.web.security import SESSION_COOKIE
from dagctl.web.svg import layout

DAGS_PAGE = 50
# A local path: no scheme, no backslash (browsers read "/\\host" as "//host"), no control
# characters.
SAFE_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def int_param(request: Request, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {text!r}") from None
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}")
    return value


def live_src(request: Request, fragment: str) -> str:
    """This page's URL (its filters kept) for the part named `fragment`, which the page's
    script fetches again every few seconds."""
    query = {k: v for k, v in request.query_params.items() if k != "fragment"}
    return request.url.path + "?" + urlencode({**query, "fragment": fragment})


def render(request: Request, template: str, context: Mapping[str, Any], status_code: int = 200) -> Response:
    server = server_of(request)
    signed_in = server.guard.session_ok(request.cookies.get(SESSION_COOKIE))
    return server.templates.TemplateResponse(
        request,
        template,
        {
            **context,
            "signed_in": signed_in,
            "csrf": server.guard.csrf_token() if signed_in else "",
            "path": request.url.path,
        },
        status_code=status_code,
    )


async def dags_page(request: Request) -> Response:
    server = server_of(request)
    page = int_param(request, "page", 1, minimum=1) or 1
    search = request.query_params.get("q", "")[:200]
    data = await server.call(
        lambda: dashboard.overview(server.trees, server.store, (page - 1) * DAGS_PAGE, DAGS_PAGE, search)
    )
    pages = max(1, -(-data["total"] // DAGS_PAGE))
    context = {
        "data": data,
        "page": page,
        "pages": pages,
        "q": search,
        "live_src": live_src(request, "table"),
    }
    template = "dags_table.html" if request.query_params.get("fragment") == "table" else "dags.html"
    return render(request, template, context)


async def dag_page(request: Request) -> Response:
    server = server_of(request)
    name = request.path_params["name"]
    filters = {k: request.query_params.get(k) or None for k in ("status", "kind", "since", "until")}
    before_id = int_param(request, "before_id")
    data = await server.call(
        lambda: dashboard.dag_detail(
            server.settings, server.store, server.trees.get(), name, before_id=before_id, **filters
        )
    )
    fragment = request.query_params.get("fragment")
    template = {"top": "dag_top.html", "runs": "dag_runs.html"}.get(fragment or "", "dag.html")
    return render(
        request,
        template,
        {
            "live_runs_src": live_src(request, "runs"),
            "dag": data,
            "svg": layout(data["graph"]["tasks"]),
            "filters": filters,
            "statuses": dashboard.RUN_STATUSES,
            "kinds": dashboard.RUN_KINDS,
        },
    )


async def run_page(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]
    run = await server.call(dashboard.run_detail, server.settings, server.store, server.trees.get(), run_id)
    context = {"run": run, "svg": layout(run["graph"]["tasks"])}
    if request.query_params.get("fragment") == "live":
        return render(request, "run_live.html", context)
    logs = await server.call(dashboard.log_chunks, server.store, run_id, {})
    sections: dict[int, dict[str, Any]] = {}
    for chunk in logs["chunks"]:
        section = sections.setdefault(
            chunk["attempt_id"], {"task": chunk["task"], "attempt": chunk["attempt"], "text": [], "seq": 0}
        )
        section["text"].append(chunk["text"])
        section["seq"] = chunk["seq"]
    return render(request, "run.html", {**context, "logs": sections, "logs_ended": logs["ended"]})


async def schedulers_page(request: Request) -> Response:
    server = server_of(request)
    rows = await server.call(dashboard.schedulers, server.store)
    return render(request, "schedulers.html", {"schedulers": rows})


ALERTS_PAGE = 100


async def alerts_page(request: Request) -> Response:
    server = server_of(request)
    dag_name = request.query_params.get("dag", "")[:200] or None
    events = await server.call(alerts.notifications_in, server.store, dag_name, ALERTS_PAGE)
    return render(request, "alerts.html", {"events": events, "dag": dag_name or ""})


async def pools_page(request: Request) -> Response:
    server = server_of(request)
    return render(request, "pools.html", {"pools": await server.call(inspection.pools_in, server.store)})


# ------------------------------------------------------------------ sign-in


async def login_page(request: Request) -> Response:
    return render(request, "login.html", {"error": None, "next": _safe_next(request, request.query_params)})


async def login(request: Request) -> Response:
    server = server_of(request)
    form = await request.form()
    target = _safe_next(request, form)
    if not server.guard.allow_actions:
        return render(request, "login.html", {"error": "this dashboard is read-only", "next": target}, 403)
    token = form.get("token")
    if not server.guard.token_matches(token if isinstance(token, str) else None):
        return render(request, "login.html", {"error": "wrong token", "next": target}, 403)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        server.guard.session_value(),
        httponly=True,
        samesite="strict",
        path=server.base_path or "/",
    )
    return response


async def logout(request: Request) -> Response:
    server = server_of(request)
    response = RedirectResponse(f"{server.base_path}/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=server.base_path or "/")
    return response


def _safe_next(request: Request, source: Mapping[str, Any]) -> str:
    """Where to go after signing in: a path on this server only (never another site)."""
    base = server_of(request).base_path
    target = source.get("next")
    if (
        isinstance(target, str)
        and SAFE_PATH.fullmatch(target)
        and target.startswith(base + "/")
        and not target.startswith("//")
    ):
        return target
    return f"{base}/"


# ------------------------------------------------------------------ actions


async def _act(request: Request, do: Callable[[FormData], str]) -> Response:
    """Check read-only mode, the session and the CSRF token, then run `do` (blocking,
    in the thread pool); it returns where to go next."""
    server = server_of(request)
    if not server.guard.allow_actions:
        return render(
            request,
            "error.html",
            {"message": "This dashboard is read-only: start dagctl serve with --allow-actions to act."},
            403,
        )
    if not server.guard.session_ok(request.cookies.get(SESSION_COOKIE)):
        return render(request, "error.html", {"message": "Sign in with the token first."}, 403)
    form = await request.form()
    csrf = form.get("csrf")
    if not server.guard.csrf_ok(csrf if isinstance(csrf, str) else None):
        return render(
            request, "error.html", {"message": "Missing or wrong CSRF token: reload the page."}, 403
        )
    target = await server.call(do, form)
    return RedirectResponse(f"{server.base_path}{target}", status_code=303)


def known_dag(server: Server, name: str) -> str:
    tree = server.trees.get()
    if name not in tree.dags and name not in tree.broken:
        raise DagNotFound(f"no DAG {name!r}", "see the DAGs page")
    return name


def form_params(form: FormData) -> dict[str, str]:
    """The trigger form's `param.NAME` fields; empty ones are left to their defaults.
    Values stay text: the DAG's param types convert and check them as for `-p`."""
    given: dict[str, str] = {}
    for key, value in form.multi_items():
        if key.startswith("param.") and isinstance(value, str) and value != "":
            given[key.removeprefix("param.")] = value
    return given


async def trigger_action(request: Request) -> Response:
    server = server_of(request)
    name = request.path_params["name"]

    def do(form: FormData) -> str:
        run_id = trigger_run(server.settings, known_dag(server, name), form_params(form), "web")
        return f"/runs/{run_id}"

    return await _act(request, do)


async def pause_action(request: Request) -> Response:
    server = server_of(request)
    name = request.path_params["name"]
    paused = request.url.path.endswith("/pause")

    def do(form: FormData) -> str:
        control.set_paused(server.settings, known_dag(server, name), paused)
        return f"/dags/{name}"

    return await _act(request, do)


async def retry_action(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]

    def do(form: FormData) -> str:
        task = form.get("task")
        control.retry(server.settings, run_id, task if isinstance(task, str) and task else None)
        return f"/runs/{run_id}"

    return await _act(request, do)


async def cancel_action(request: Request) -> Response:
    server = server_of(request)
    run_id = request.path_params["run_id"]

    def do(form: FormData) -> str:
        control.cancel(server.settings, run_id)
        return f"/runs/{run_id}"

    return await _act(request, do)


def error_page(request: Request, message: str, status_code: int) -> Response:
    try:
        return render(request, "error.html", {"message": message}, status_code)
    except Exception:  # the templates themselves failed: still answer
        return HTMLResponse(f"<h1>Error</h1><p>{status_code}</p>", status_code=status_code)
