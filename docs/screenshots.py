"""Regenerate the README's screenshots (docs/dashboard-dag.png, docs/dashboard-run.png)
from the example DAGs: run them once on a throwaway SQLite file, start `dagctl serve`
and photograph the pages with Debian's chromium (Playwright, no downloaded browser).

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
DAGCTL = str(Path(sys.executable).parent / "dagctl")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        env = {
            **os.environ,
            "DAGCTL_DAGS": str(REPO / "dags_example"),
            "DATABASE_URL": f"sqlite:///{work}/s.db",
        }
        run = [
            int(subprocess.run([DAGCTL, "trigger", "etl"], env=env, check=True, capture_output=True).stdout)
        ]
        subprocess.run([DAGCTL, "schedule", "--until-idle", "--poll-interval", "0.1"], env=env, check=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen([DAGCTL, "serve", "--port", str(port)], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.get(f"{base}/healthz")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/dags/etl")
                page.screenshot(path=str(REPO / "docs" / "dashboard-dag.png"), full_page=True)
                page.goto(f"{base}/runs/{run[0]}")
                page.screenshot(path=str(REPO / "docs" / "dashboard-run.png"), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
