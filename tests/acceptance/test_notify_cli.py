"""Alerts end to end: the installed `dagctl` schedules a failing DAG, and real servers
on loopback receive what it sends (an SMTP server run by aiosmtpd, an HTTP server
capturing webhook and Slack posts), plus a `command` channel reading the event on stdin."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.acceptance.conftest import Env


class Capture:
    """An HTTP server on loopback recording every POST (path, headers, JSON body);
    `fail_first` answers that many requests with HTTP 500 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self.fail_first = fail_first
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if capture.fail_first > 0:
                    capture.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                capture.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def http() -> Iterator[Capture]:
    capture = Capture()
    yield capture
    capture.server.shutdown()
    capture.server.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a port number to check it is up
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _config(env: Env, http: Capture, smtp_port: int, out: Path) -> None:
    (env.dags / "dagctl.yaml").write_text(
        f"""
channels:
  ops-mail:
    type: email
    url: smtp://127.0.0.1:{smtp_port}
    from: dagctl@example.com
    to: [oncall@example.com]
  hook:
    type: webhook
    url: {http.url}/hook
    headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}
  chat:
    type: slack
    url: {http.url}/slack
  pager:
    type: command
    command: [python3, -c, "import sys; open({str(out)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\\\n')"]
notify:
  - events: [failure]
    to: [ops-mail, hook]
"""
    )


FAILING = """
description: fails
retries: 2
retry_delay: 0s
notify:
  - events: [failure, recovery]
    to: [chat, pager]
"""
TASK = """
#!/bin/bash
for i in $(seq 1 30); do echo "line $i"; done
echo "secret is $HOOK_TOKEN"
echo "boom: disk full" >&2
exit 7
"""


def test_a_task_failing_after_two_retries_gives_one_email_and_one_webhook_with_error_and_log_tail(
    env: Env, http: Capture, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    out = tmp_path / "pager.jsonl"
    _config(env, http, port, out)
    env.dag("etl", FAILING, load__sh=TASK)
    run_id = int(env.run("trigger", "etl").stdout.split()[-1])
    env.schedule("--until-idle", HOOK_TOKEN="s3cr3t-token")

    hooks = [p for p in http.posts if p[0] == "/hook"]
    assert len(hooks) == 1
    _, headers, body = hooks[0]
    assert headers["Authorization"] == "Bearer s3cr3t-token"
    assert body["version"] == 1 and body["event"] == "failure" and body["dag"] == "etl"
    assert body["run"]["id"] == run_id and body["run"]["status"] == "failed"
    assert headers["Idempotency-Key"] == body["idempotency_key"]
    (task,) = body["tasks"]
    assert (task["task"], task["attempts"], task["exit_code"]) == ("load.sh", 3, 7)
    assert task["error"]
    assert len(task["log_tail"]) == 20 and "boom: disk full" in task["log_tail"]
    assert any("secret is ***" in line for line in task["log_tail"])
    assert not any("s3cr3t-token" in line for line in task["log_tail"])

    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "oncall@example.com" and "etl: failed" in mail["Subject"]
    text = mail.get_payload()
    assert "exit code 7" in text and "boom: disk full" in text and "s3cr3t-token" not in text

    slack = [p for p in http.posts if p[0] == "/slack"]
    assert len(slack) == 1 and "boom: disk full" in slack[0][2]["text"]
    (pager,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert pager["idempotency_key"] == body["idempotency_key"] == f"dagctl-notification-{pager_id(env)}"

    listed = env.json("notifications", "etl")
    assert [(n["event"], n["status"], n["channels"]) for n in listed] == [
        ("failure", "delivered", ["chat", "hook", "ops-mail", "pager"])
    ]


def pager_id(env: Env) -> int:
    return int(env.json("notifications")[0]["id"])


def test_a_failing_endpoint_is_retried_and_the_event_delivered_once(env: Env, tmp_path: Path) -> None:
    flaky = Capture(fail_first=2)
    try:
        (env.dags / "dagctl.yaml").write_text(
            f"channels:\n  hook: {{type: webhook, url: {flaky.url}/hook}}\n"
            "notify:\n  - events: [failure]\n    to: [hook]\n"
        )
        env.dag("etl", "description: fails\nretries: 0\n", load__sh="#!/bin/bash\nexit 1\n")
        env.run("trigger", "etl")
        env.schedule("--until-idle", DAGCTL_NOTIFY_RETRY_SECONDS="0.2")
        # The drain at shutdown may end before the retries: another pass delivers.
        for _ in range(20):
            if flaky.posts:
                break
            env.schedule("--once", DAGCTL_NOTIFY_RETRY_SECONDS="0.2")
        assert len(flaky.posts) == 1
        (listed,) = env.json("notifications")
        assert listed["status"] == "delivered" and listed["attempts"] == 3
    finally:
        flaky.server.shutdown()
        flaky.server.server_close()


def test_an_undeclared_channel_is_a_validation_error_with_its_line(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text("channels:\n  hook: {type: webhook, url: http://127.0.0.1:9/x}\n")
    env.dag("etl", "description: x\nnotify:\n  - events: [failure]\n    to: [hoook]\n", a__sh="true\n")
    env.dag("opted", "description: x\nnotify:\n  - events: [retry, lost]\n    to: [hook]\n", a__sh="true\n")
    env.dag("typo", "description: x\nnotify:\n  - events: [retries]\n    to: [hook]\n", a__sh="true\n")
    result = env.run("validate", code=1)
    assert "workflow.yaml:4:" in result.stdout + result.stderr
    assert "unknown channel 'hoook'" in result.stdout + result.stderr
    assert "hook" in result.stdout + result.stderr
    assert "opted/" not in result.stdout + result.stderr
    assert "typo/workflow.yaml:3: notify.0.events.0: 'retries' is not one of" in result.stdout
    assert "(did you mean 'retry'?)" in result.stdout


def test_a_deadline_alert_arrives_once_while_the_run_still_runs(env: Env, http: Capture) -> None:
    (env.dags / "dagctl.yaml").write_text(f"channels:\n  hook: {{type: webhook, url: {http.url}/hook}}\n")
    env.dag(
        "slow",
        "description: slow\ndeadline: 1s\nnotify:\n  - events: [deadline_missed, failure]\n    to: [hook]\n",
        wait__sh="#!/bin/bash\nsleep 60\n",
    )
    run_id = int(env.run("trigger", "slow").stdout.split()[-1])
    scheduler = env.spawn("schedule", "--poll-interval", "0.05", "--grace", "0")
    try:
        deadline = time.monotonic() + 30
        while not http.posts and time.monotonic() < deadline:
            time.sleep(0.1)
        (run,) = env.status("slow")
        assert run["status"] == "running"  # the alert came while the run still runs
        time.sleep(1.5)  # further passes of the delivery thread fire nothing more
        assert [(p[0], p[2]["event"], p[2]["run"]["id"]) for p in http.posts] == [
            ("/hook", "deadline_missed", run_id)
        ]
        # Sent before the run ended: queued (not started yet) or running.
        assert http.posts[0][2]["run"]["status"] in ("queued", "running")
    finally:
        scheduler.terminate()
        scheduler.communicate(timeout=30)


def test_notify_test_sends_a_sample_and_says_why_when_it_cannot(env: Env, http: Capture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    (env.dags / "dagctl.yaml").write_text(
        f"channels:\n  hook: {{type: webhook, url: {http.url}/hook}}\n"
        f"  down: {{type: webhook, url: 'http://u:${{DOWN_PASS}}@127.0.0.1:{refused}/x'}}\n"
    )
    assert "sent a test alert through hook (webhook)" in env.run("notify", "test", "hook").stdout
    ((path, _, body),) = http.posts
    assert (path, body["event"], body["version"]) == ("/hook", "test", 1)
    assert "unknown channel 'hoook'" in env.error("notify", "test", "hoook")
    line = env.error("notify", "test", "down", code=1, DOWN_PASS="pa55word-x")
    assert "channel down (webhook)" in line and "pa55word-x" not in line
