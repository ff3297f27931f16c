"""The Alerts and Pools pages, their API routes and their /metrics families, on SQLite
and PostgreSQL, with alert events and pool holders written by the store functions the
scheduler uses."""

from __future__ import annotations

import contextlib

from prometheus_client.parser import text_string_to_metric_families

from dagctl.dags.cron import utcnow
from dagctl.store import open_store
from tests.acceptance.conftest import Env
from tests.integration.test_pools import pooled_run
from tests.web.test_api import client


def make_alerts(env: Env) -> dict[str, int]:
    """One event of each delivery state; their ids by state."""
    with contextlib.closing(open_store(env.db_url, migrate=False)) as store:
        now = utcnow()
        failed = store.enqueue_notification("etl", None, "failure", ["hook"], now)
        delivered = store.enqueue_notification("flaky", None, "failure", ["chat", "hook"], now)
        claimed = {n.id for n in store.claim_notifications("me", 10, 60)}
        assert claimed == {failed, delivered}
        assert store.finish_notification(failed, "me", [], "hook: HTTP 500 from https://***", None)
        assert store.finish_notification(delivered, "me", ["chat", "hook"], None, None)
        pending = store.enqueue_notification("etl", None, "recovery", ["chat"], now)
    return {"failed": failed, "delivered": delivered, "pending": pending}


def make_pools(env: Env) -> None:
    """Pool warehouse (3 slots) with 2 held by running attempts and 1 waiting; pool api idle."""
    with contextlib.closing(open_store(env.db_url, migrate=False)) as store:
        pooled_run(store, {"warehouse": 3, "api": 4}, {"a.sql": ("warehouse", 2), "b.sql": ("warehouse", 2)})
        claimed = store.claim("me", 10, 600, utcnow())
        assert [c.task_name for c in claimed] == ["a.sql"]


def test_alerts_page_and_api_show_the_outbox_as_the_cli_does(web_env: Env) -> None:
    ids = make_alerts(web_env)
    with client(web_env) as http:
        page = http.get("/alerts")
        assert page.status_code == 200 and 'href="/alerts"' in page.text
        rows = page.text.split('<table id="alerts">')[1]
        # Newest first, each with its delivery state, channels and masked error.
        assert rows.index("recovery") < rows.index("chat, hook") < rows.index("HTTP 500")
        assert "https://***" in rows and "st-failed" in rows and "st-delivered" in rows
        only_etl = http.get("/alerts", params={"dag": "etl"}).text.split('<table id="alerts">')[1]
        assert "flaky" not in only_etl and "recovery" in only_etl
        api = http.get("/api/v1/notifications").json()
        assert api == web_env.json("notifications")
        assert [e["id"] for e in api] == [ids["pending"], ids["delivered"], ids["failed"]]
        assert [e["status"] for e in api] == ["pending", "delivered", "failed"]
        limited = http.get("/api/v1/notifications", params={"dag": "etl", "limit": "1"}).json()
        assert limited == web_env.json("notifications", "etl", "--limit", "1")
        assert [e["id"] for e in limited] == [ids["pending"]]
        assert http.get("/api/v1/notifications", params={"limit": "x"}).status_code == 400


def test_pools_page_and_api_show_usage_as_the_cli_does(web_env: Env) -> None:
    make_pools(web_env)
    with client(web_env) as http:
        page = http.get("/pools")
        assert page.status_code == 200 and 'href="/pools"' in page.text
        rows = page.text.split('<table id="pools">')[1]
        assert "warehouse" in rows and "etl/a.sql" in rows and "api" in rows
        api = http.get("/api/v1/pools").json()
    cli = web_env.json("pools")
    # Only the wait age moves between the two reads.
    for row in (*api, *cli):
        row.pop("oldest_wait_seconds")
    assert api == cli
    warehouse = {p["pool"]: p for p in api}["warehouse"]
    assert (warehouse["slots"], warehouse["used"], warehouse["free"], warehouse["waiting"]) == (3, 2, 1, 1)


def test_pages_say_when_there_is_nothing_yet(web_env: Env) -> None:
    with client(web_env) as http:
        assert "No alert events" in http.get("/alerts").text
        assert "No pools" in http.get("/pools").text
        assert http.get("/api/v1/notifications").json() == []
        assert http.get("/api/v1/pools").json() == []


def test_metrics_count_alerts_by_state_and_pool_slots(web_env: Env) -> None:
    make_alerts(web_env)
    make_pools(web_env)
    with client(web_env) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    assert samples[("dagctl_alerts", (("state", "pending"),))] == 1
    assert samples[("dagctl_alerts", (("state", "delivered"),))] == 1
    assert samples[("dagctl_alerts", (("state", "failed"),))] == 1
    assert samples[("dagctl_pool_slots_used", (("pool", "warehouse"),))] == 2
    assert samples[("dagctl_pool_slots", (("pool", "warehouse"),))] == 3
    assert samples[("dagctl_pool_slots_used", (("pool", "api"),))] == 0
    assert samples[("dagctl_pool_slots", (("pool", "api"),))] == 4
