"""The dashboard's pages, JSON API, /healthz and /metrics in process (Starlette's test
client on the real app), on SQLite and PostgreSQL, with runs made by the real CLI and
scheduler."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from dagctl.config import Settings
from dagctl.web.app import create_app, routes
from dagctl.web.openapi import OPENAPI
from tests.acceptance.conftest import Env
from tests.web.conftest import TOKEN


def client(env: Env, *, allow_actions: bool = False, base_path: str = "") -> TestClient:
    settings = Settings.resolve(dags=env.dags, db=env.db_url)
    app = create_app(settings, allow_actions=allow_actions, base_path=base_path, token=TOKEN)
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def finished_run(env: Env) -> int:
    (env.root / "gates" / "all-go").touch()
    run_id = int(env.run("trigger", "etl", "-p", "limit=7", "-p", "api_key=hunter2").stdout)
    env.schedule("--until-idle")
    return run_id


def test_pages_and_api_show_a_run_as_the_cli_does(web_env: Env) -> None:
    run_id = finished_run(web_env)
    cli_view = web_env.status("--run", str(run_id))[0]
    with client(web_env) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert "etl" in page.text and "broken" in page.text and "Read-only" in page.text
        assert f'href="/runs/{run_id}"' in page.text  # the run's coloured mark
        dag = http.get("/dags/etl")
        assert dag.status_code == 200 and "<svg" in dag.text and "extract.sh" in dag.text
        assert "Europe/Paris" in dag.text and "hunter2" not in dag.text
        run = http.get(f"/runs/{run_id}")
        assert run.status_code == 200
        assert "extracting 7" in run.text and "hunter2" not in run.text and "api_key=***" in run.text
        api = http.get(f"/api/v1/runs/{run_id}").json()
        # The API's run is `status -o json`'s run, plus the dashboard's extras.
        for key, value in cli_view.items():
            if key not in ("duration_s", "tasks"):
                assert api[key] == value, key
        assert [t["task"] for t in api["tasks"]] == [t["task"] for t in cli_view["tasks"]]
        assert api["params"] == {"limit": 7, "api_key": "***"}
        assert [a["exit_code"] for a in api["attempts"]] == [0, 0]
        assert {b["task"] for b in api["timeline"]["bars"]} == {"extract.sh", "load.sh"}
        dags = http.get("/api/v1/dags").json()
        rows = {row["dag"]: row for row in dags["dags"]}
        assert rows["broken"]["broken"] and rows["broken"]["reason"]
        assert rows["etl"]["recent_runs"] == [
            {"id": run_id, "status": "success", "logical_date": api["logical_date"]}
        ]
        listed = {row["dag"]: row for row in web_env.json("list")}
        assert {k: v for k, v in rows["etl"].items() if k != "recent_runs"} == listed["etl"]
        assert http.get("/schedulers").status_code == 200
        broken = http.get("/dags/broken")
        assert broken.status_code == 200 and "broken" in broken.text
        assert http.get("/api/v1/dags/broken").json()["broken_problems"]
        # Nothing from elsewhere may load, and no other site may frame an action page.
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert http.get("/api/v1/schedulers").json()["schedulers"][0]["alive"] is False


def test_logs_follow_with_cursors(web_env: Env) -> None:
    run_id = finished_run(web_env)
    with client(web_env) as http:
        first = http.get(f"/api/v1/runs/{run_id}/logs").json()
        assert first["ended"] is True
        text = "".join(c["text"] for c in first["chunks"])
        assert "extracting 7" in text and "loading" in text
        after = ",".join(f"{c['attempt_id']}:{c['seq']}" for c in first["chunks"])
        assert http.get(f"/api/v1/runs/{run_id}/logs", params={"after": after}).json()["chunks"] == []
        bad = http.get(f"/api/v1/runs/{run_id}/logs", params={"after": "x:y"})
        assert bad.status_code == 400 and "after must look like" in bad.json()["error"]


def test_history_filters_and_pages(web_env: Env) -> None:
    (web_env.root / "gates" / "flaky-ok").touch()
    ids = [int(web_env.run("trigger", "flaky").stdout) for _ in range(3)]
    web_env.schedule("--until-idle")
    with client(web_env) as http:
        runs = http.get("/api/v1/dags/flaky").json()["runs"]
        assert [r["id"] for r in runs] == sorted(ids, reverse=True)
        assert http.get("/api/v1/dags/flaky", params={"status": "failed"}).json()["runs"] == []
        assert len(http.get("/api/v1/dags/flaky", params={"kind": "manual"}).json()["runs"]) == 3
        older = http.get("/api/v1/dags/flaky", params={"before_id": max(ids)}).json()["runs"]
        assert [r["id"] for r in older] == sorted(ids, reverse=True)[1:]
        assert http.get("/api/v1/dags/flaky", params={"until": "2000-01-01"}).json()["runs"] == []
        wrong = http.get("/api/v1/dags/flaky", params={"status": "done"})
        assert wrong.status_code == 400 and "status must be one of" in wrong.json()["error"]
        missing = http.get("/api/v1/dags/etk")
        assert missing.status_code == 404 and "etl" in missing.json()["error"]  # did you mean
        assert http.get("/runs/9999").status_code == 404
        assert http.get("/dags/flaky?status=failed").status_code == 200


def test_read_only_mode_refuses_every_action(web_env: Env) -> None:
    with client(web_env, allow_actions=False) as http:
        for path in ("/api/v1/dags/etl/trigger", "/api/v1/dags/etl/pause", "/api/v1/runs/1/cancel"):
            answer = http.post(path, headers={"Authorization": f"Bearer {TOKEN}"}, json={})
            assert answer.status_code == 403 and "read-only" in answer.json()["error"]
        form = http.post("/dags/etl/trigger", data={"csrf": "x"})
        assert form.status_code == 403 and "read-only" in form.text
        assert http.post("/login", data={"token": TOKEN}).status_code == 403
    assert web_env.status() == []


def test_api_actions_need_the_token_and_validate_params(web_env: Env) -> None:
    with client(web_env, allow_actions=True) as http:
        url = "/api/v1/dags/etl/trigger"
        assert http.post(url, json={}).status_code == 401
        assert http.post(url, json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # A session cookie is no credential for the API (no CSRF through it).
        http.cookies.set("dagctl_session", "anything")
        assert http.post(url, json={}).status_code == 401
        bad = http.post(url, json={"params": {"limit": "many"}}, headers=auth)
        assert bad.status_code == 400 and "limit" in bad.json()["error"]
        assert web_env.status() == []
        made = http.post(url, json={"params": {"limit": 3}}, headers=auth)
        assert made.status_code == 200
        run_id = made.json()["run_id"]
        assert web_env.status()[0]["params"]["limit"] == 3
        cancelled = http.post(f"/api/v1/runs/{run_id}/cancel", headers=auth)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = http.post(f"/api/v1/runs/{run_id}/cancel", headers=auth)
        assert again.status_code == 400 and "already finished" in again.json()["error"]
        assert http.post("/api/v1/dags/etl/pause", headers=auth).json() == {"dag": "etl", "paused": True}
        assert web_env.json("list")[1]["paused"] is True


def test_form_actions_need_a_session_and_the_csrf_token(web_env: Env) -> None:
    with client(web_env, allow_actions=True) as http:
        assert http.post("/dags/etl/trigger", data={}).status_code == 403  # not signed in
        wrong = http.post("/login", data={"token": "nope", "next": "/dags/etl"})
        assert wrong.status_code == 403 and "wrong token" in wrong.text
        signed = http.post("/login", data={"token": TOKEN, "next": "/dags/etl"})
        assert signed.status_code == 303 and signed.headers["location"] == "/dags/etl"
        assert TOKEN not in signed.headers["set-cookie"]
        assert "httponly" in signed.headers["set-cookie"].lower()
        page = http.get("/dags/etl").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf is not None
        assert http.post("/dags/etl/trigger", data={"param.limit": "4"}).status_code == 403
        forged = http.post("/dags/etl/trigger", data={"param.limit": "4", "csrf": "0" * 64})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert web_env.status() == []
        bad = http.post("/dags/etl/trigger", data={"param.limit": "four", "csrf": csrf.group(1)})
        assert bad.status_code == 400 and "limit" in bad.text
        made = http.post("/dags/etl/trigger", data={"param.limit": "4", "csrf": csrf.group(1)})
        assert made.status_code == 303
        run_id = int(made.headers["location"].rsplit("/", 1)[1])
        assert web_env.status("--run", str(run_id))[0]["params"] == {"limit": 4, "api_key": "***"}
        # An open redirect after sign-in is refused: only paths of this server.
        for evil in ("//evil.example/", "/\\evil.example/", "https://evil.example/", "/x\nSet-Cookie: a=b"):
            assert http.post("/login", data={"token": TOKEN, "next": evil}).headers["location"] == "/"


def test_base_path_prefixes_every_link(web_env: Env) -> None:
    with client(web_env, base_path="/dagctl/") as http:
        page = http.get("/dagctl/")
        assert page.status_code == 200
        assert 'href="/dagctl/dags/etl"' in page.text and 'href="/dagctl/static/style.css"' in page.text
        assert http.get("/dagctl/static/live.js").status_code == 200
        assert http.get("/dagctl/healthz").json() == {"status": "ok"}
        assert http.get("/").status_code == 404


def test_metrics_parse_and_count_runs_and_attempts(web_env: Env) -> None:
    finished_run(web_env)
    queued = int(web_env.run("trigger", "slow").stdout)
    with client(web_env) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    assert samples[("dagctl_runs", (("dag", "etl"), ("status", "success")))] == 1
    assert samples[("dagctl_runs", (("dag", "slow"), ("status", "queued")))] == 1
    assert samples[("dagctl_task_attempts", (("dag", "etl"), ("status", "success")))] == 2
    assert (
        samples[("dagctl_task_attempt_duration_seconds_count", (("dag", "etl"), ("status", "success")))] == 2
    )
    assert samples[("dagctl_run_duration_seconds_sum", (("dag", "etl"), ("status", "success")))] > 0
    assert ("dagctl_queue_depth", ()) in samples
    assert samples[("dagctl_oldest_queued_attempt_age_seconds", ())] >= 0
    assert queued > 0


def test_healthz_fails_when_the_database_is_unreachable(
    tmp_path: Path, pg_server: object, migrated_postgres_url: str
) -> None:
    env = Env(tmp_path, migrated_postgres_url)
    with client(env) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        pg_server.drop_database(migrated_postgres_url.rsplit("/", 1)[1])  # type: ignore[attr-defined]
        answer = http.get("/healthz")
        assert answer.status_code == 503 and answer.json()["status"] == "unavailable"
        assert "password" not in answer.text.lower() or "***" in answer.text


def test_openapi_documents_every_api_route() -> None:
    served = {
        route.path.removeprefix("/api/v1").replace(":int", "").replace("{name}", "{dag}")
        for route in routes()
        if getattr(route, "path", "").startswith("/api/v1/") and not route.path.endswith("openapi.json")
    }
    assert served == set(OPENAPI["paths"])
    json.dumps(OPENAPI)  # serialisable as served


def test_serve_refuses_actions_without_a_token(sqlite_env: Env) -> None:
    result = sqlite_env.run("serve", "--allow-actions", code=2, DAGCTL_UI_TOKEN="")
    assert result.stderr.count("\n") == 1 and "DAGCTL_UI_TOKEN" in result.stderr


@pytest.mark.parametrize("path", ["/static/%2E%2E/app.py", "/dags/%2E%2E", "/dags/..%2F..%2Fetc"])
def test_paths_never_leave_the_package_or_the_dags_folder(sqlite_env: Env, path: str) -> None:
    with client(sqlite_env) as http:
        answer = http.get(path)
    assert answer.status_code in (400, 404)
    assert "import" not in answer.text


def test_metrics_answer_from_a_cache_refreshed_in_the_background(web_env: Env) -> None:
    from dagctl.store import open_store
    from dagctl.web.metrics import CachedExposition

    def queued(body: bytes) -> float:
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "dagctl_runs" and sample.labels == {"dag": "slow", "status": "queued"}:
                    return sample.value
        return 0.0

    store = open_store(web_env.db_url, migrate=False)
    try:
        kept = CachedExposition(store, max_age_s=3600)
        assert queued(kept.get()) == 0
        web_env.run("trigger", "slow")
        assert queued(kept.get()) == 0  # within max_age: the cached figures, no query
        fresh = CachedExposition(store, max_age_s=0)
        assert queued(fresh.get()) == 1
        web_env.run("trigger", "slow")
        assert queued(fresh.get()) == 1  # stale answer at once; a refresh starts
        deadline = time.monotonic() + 10
        while queued(fresh.get()) != 2:
            assert time.monotonic() < deadline, "the background refresh never landed"
            time.sleep(0.05)
    finally:
        store.close()


def test_serve_on_an_unmigrated_database_says_so_in_one_line(tmp_path: Path) -> None:
    env = Env(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")
    result = env.run("serve", "--port", "0", code=3)
    assert result.stderr.count("\n") == 1 and "dagctl db upgrade" in result.stderr
