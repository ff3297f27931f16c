"""The dashboard in a real browser: Debian's chromium, driven headless by Playwright,
against a real `dagctl serve` on loopback and a real `dagctl schedule`. Screenshots of
each page land in the test's tmp_path (screens/)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import Env
from tests.web.conftest import TOKEN, served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, expect, sync_playwright
else:  # pragma: no cover - skipped above
    Browser = Page = object  # type: ignore[misc,assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "screens"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 1000


def scheduler(env: Env) -> subprocess.Popen[str]:
    return env.spawn("schedule", "--poll-interval", "0.05")


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def run_status(page: Page, value: str) -> None:
    expect(page.locator(f'#run-status[data-status="{value}"]')).to_be_attached(timeout=WAIT_MS)


def test_watch_a_run_go_from_queued_to_success_without_reloading(
    sqlite_env: Env, page: Page, tmp_path: Path
) -> None:
    env = sqlite_env
    run_id = int(env.run("trigger", "etl", "-p", "limit=5", "-p", "api_key=hunter2").stdout)
    with served(env) as base:
        page.goto(f"{base}/runs/{run_id}")
        run_status(page, "queued")
        # Why it waits: no scheduler is alive yet.
        expect(page.locator(".why-no_scheduler")).to_be_visible()
        expect(page.locator("#read-only")).to_be_visible()
        assert "hunter2" not in page.content()
        shot(page, tmp_path, "run-queued")
        page.evaluate("window.__sameDocument = 1")
        worker = scheduler(env)
        try:
            run_status(page, "running")
            expect(page.locator("#logs")).to_contain_text("extracting 5")
            expect(page.locator('svg.graph g.node.st-running[data-task="extract.sh"]')).to_be_attached()
            shot(page, tmp_path, "run-running")
            page.goto(f"{base}/schedulers")
            expect(page.locator("tr.alive")).to_contain_text("etl/extract.sh")
            shot(page, tmp_path, "schedulers")
            page.goto(f"{base}/runs/{run_id}")
            page.evaluate("window.__sameDocument = 1")
            (env.root / "gates" / "etl-go").touch()
            run_status(page, "success")
            expect(page.locator("#logs")).to_contain_text("loading")
            expect(page.locator("#logs")).to_contain_text("extracted")
            assert page.evaluate("window.__sameDocument") == 1  # updated in place, never reloaded
            expect(page.locator('svg.graph g.node.st-success[data-task="load.sh"]')).to_be_attached()
            shot(page, tmp_path, "run-success")
        finally:
            stop(worker)
        page.goto(f"{base}/")
        expect(page.locator("table.dags")).to_contain_text("broken")
        expect(page.locator(f'a.mark.st-success[href="/runs/{run_id}"]')).to_be_attached()
        shot(page, tmp_path, "dags")
        page.goto(f"{base}/dags/etl")
        expect(page.locator("svg.graph")).to_be_visible()
        expect(page.locator("#trigger")).to_have_count(0)  # read-only: no action forms
        shot(page, tmp_path, "dag")
        # Read-only refuses a forged POST too, not only by hiding the buttons.
        status = page.evaluate(
            f"fetch('{base}/dags/etl/trigger', {{method: 'POST', body: new URLSearchParams({{csrf: 'x'}})}})"
            ".then(r => r.status)"
        )
        assert status == 403
    assert [r["id"] for r in env.status()] == [run_id]


def test_sign_in_trigger_with_params_retry_and_cancel(sqlite_env: Env, page: Page, tmp_path: Path) -> None:
    env = sqlite_env
    (env.root / "gates" / "etl-go").touch()
    worker = scheduler(env)
    try:
        with served(env, "--allow-actions", DAGCTL_UI_TOKEN=TOKEN) as base:
            page.goto(f"{base}/dags/etl")
            page.get_by_role("link", name="Sign in").first.click()
            page.fill("#token", "not-the-token")
            page.click("#sign-in")
            expect(page.locator("#login-error")).to_contain_text("wrong token")
            shot(page, tmp_path, "login-refused")
            page.fill("#token", TOKEN)
            page.click("#sign-in")
            page.wait_for_url(f"{base}/dags/etl")

            # Trigger with typed params: a bad value is refused with the CLI's message.
            page.fill('input[name="param.limit"]', "lots")
            page.click("#trigger")
            expect(page.locator("#error")).to_contain_text("limit")
            page.goto(f"{base}/dags/etl")
            page.fill('input[name="param.limit"]', "9")
            page.click("#trigger")
            page.wait_for_url(f"{base}/runs/*")
            run_status(page, "success")
            expect(page.locator("#logs")).to_contain_text("extracting 9")
            shot(page, tmp_path, "triggered-run")

            # A failed run, retried once its cause is fixed.
            page.goto(f"{base}/dags/flaky")
            page.click("#trigger")
            page.wait_for_url(f"{base}/runs/*")
            run_status(page, "failed")
            expect(page.locator("table.attempts")).to_contain_text("3")  # the exit code
            shot(page, tmp_path, "run-failed")
            (env.root / "gates" / "flaky-ok").touch()
            page.click("#retry")
            run_status(page, "success")
            expect(page.locator('table.attempts tr[data-attempt="2"]')).to_contain_text("success")
            shot(page, tmp_path, "run-retried")

            # Cancel a running run.
            page.goto(f"{base}/dags/slow")
            page.click("#trigger")
            page.wait_for_url(f"{base}/runs/*")
            expect(page.locator("#logs")).to_contain_text("waiting")
            page.click("#cancel")
            run_status(page, "cancelled")
            shot(page, tmp_path, "run-cancelled")

            # Pause from the page; the CLI sees it.
            page.goto(f"{base}/dags/etl")
            page.click("#pause-toggle")
            expect(page.locator("#pause-toggle")).to_have_text("Unpause")
            assert next(r for r in env.json("list") if r["dag"] == "etl")["paused"] is True

            # CSRF: a form whose token was tampered with is refused.
            page.evaluate("document.querySelector('#trigger-form input[name=csrf]').value = '0'.repeat(64)")
            page.click("#trigger")
            expect(page.locator("#error")).to_contain_text("CSRF")
            shot(page, tmp_path, "csrf-refused")
    finally:
        stop(worker)
    statuses = sorted(r["status"] for r in env.status())
    assert statuses == ["cancelled", "success", "success"]


def test_dag_and_dags_pages_show_new_runs_without_reloading(sqlite_env: Env, page: Page) -> None:
    env = sqlite_env
    with served(env) as base:
        page.goto(f"{base}/dags/flaky?kind=manual")
        expect(page.locator("table.runs")).to_contain_text("No runs")
        page.evaluate("window.__sameDocument = 1")
        run_id = int(env.run("trigger", "flaky").stdout)
        expect(page.locator(f'table.runs a[href="/runs/{run_id}"]')).to_be_attached()
        expect(page.locator(".why-no_scheduler")).to_be_visible()
        assert page.evaluate("window.__sameDocument") == 1
        page.goto(f"{base}/")
        page.evaluate("window.__sameDocument = 1")
        second = int(env.run("trigger", "flaky").stdout)
        expect(page.locator(f'a.mark.st-queued[href="/runs/{second}"]')).to_be_attached()
        assert page.evaluate("window.__sameDocument") == 1


def test_alerts_and_pools_pages(sqlite_env: Env, page: Page, tmp_path: Path) -> None:
    from tests.web.test_alerts_pools import make_alerts, make_pools

    make_alerts(sqlite_env)
    make_pools(sqlite_env)
    with served(sqlite_env) as base:
        page.goto(f"{base}/")
        page.click("nav >> text=Alerts")
        expect(page.locator("#alerts")).to_contain_text("HTTP 500 from https://***")
        shot(page, tmp_path, "alerts")
        page.click("nav >> text=Pools")
        expect(page.locator("#pools")).to_contain_text("etl/a.sql")
        shot(page, tmp_path, "pools")
