"""The OpenAPI 3.1 document of /api/v1 (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any


def _get(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": {
                "200": {"description": "JSON", "content": {"application/json": {}}},
                "400": {"description": "bad query: {error}"},
                "404": {"description": "no such DAG or run: {error}"},
                "503": {"description": "state database unreachable: {error}"},
            },
        }
    }


def _post(summary: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary + " Needs --allow-actions and `Authorization: Bearer DAGCTL_UI_TOKEN`.",
        "security": [{"token": []}],
        "responses": {
            "200": {"description": "JSON (the same shape as the CLI's -o json)"},
            "400": {"description": "invalid input, e.g. a param of the wrong type: {error}"},
            "401": {"description": "missing or wrong token"},
            "403": {"description": "read-only dashboard (no --allow-actions)"},
        },
    }
    if body is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return {"post": operation}


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


def _path(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


DAG = [_path("dag")]
RUN = [_path("run_id", "integer")]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "dagctl API",
        "version": "1",
        "description": "Read DAGs, runs, logs, schedulers, alerts and pools; trigger, retry, cancel, pause. "
        "Run objects have the shape of `dagctl status -o json`, DAG rows that of `dagctl list -o json`.",
    },
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/dags": _get(
            "One page of DAGs (list -o json rows plus recent_runs).",
            [
                _query("offset", "first row", "integer"),
                _query("limit", "rows (at most 200)", "integer"),
                _query("q", "name contains"),
            ],
        ),
        "/dags/{dag}": _get(
            "A DAG: graph with latest states, params, next slots, why, and a page of runs (newest first).",
            [
                *DAG,
                _query("status", "queued|running|success|failed|cancelled"),
                _query("kind", "scheduled|manual|backfill"),
                _query("since", "logical date at or after (ISO date, UTC)"),
                _query("until", "logical date before (ISO date, UTC)"),
                _query("before_id", "next page: runs with a smaller id (next_before_id)", "integer"),
            ],
        ),
        "/runs/{run_id}": _get("A run (status -o json) with every attempt, graph, timeline and why.", RUN),
        "/runs/{run_id}/logs": _get(
            "Log output after the given cursors; poll with the seq of each chunk to follow.",
            [*RUN, _query("after", "ATTEMPT_ID:SEQ,... (absent: from the start)")],
        ),
        "/schedulers": _get("Scheduler processes: alive, heartbeat age, attempts they hold."),
        "/notifications": _get(
            "Recent alert events and their delivery state, newest first (notifications -o json).",
            [_query("dag", "only this DAG's events"), _query("limit", "events (at most 200)", "integer")],
        ),
        "/pools": _get("Every pool: slots, used, free, holders, waiting (pools -o json)."),
        "/dags/{dag}/trigger": {
            **_post(
                "Start a run; params are checked as for dagctl trigger -p.",
                {"type": "object", "properties": {"params": {"type": "object"}}},
            ),
        },
        "/dags/{dag}/pause": _post("Pause the DAG."),
        "/dags/{dag}/unpause": _post("Unpause the DAG."),
        "/runs/{run_id}/retry": _post(
            "Retry the run's failed tasks, or from one task.",
            {"type": "object", "properties": {"task": {"type": "string"}}},
        ),
        "/runs/{run_id}/cancel": _post("Cancel the run."),
    },
}
for _url, _item in OPENAPI["paths"].items():
    _names = [p["name"] for op in _item.values() for p in op.get("parameters", [])]
    for _op in _item.values():
        if "{dag}" in _url and "dag" not in _names:
            _op.setdefault("parameters", []).insert(0, _path("dag"))
        if "{run_id}" in _url and "run_id" not in _names:
            _op.setdefault("parameters", []).insert(0, _path("run_id", "integer"))
