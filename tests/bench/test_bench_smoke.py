"""The benchmark harness still runs: its workloads at their smoke size, on SQLite and on
the test suite's PostgreSQL. No timing is asserted (this machine's speed is not the
product's); only that each workload completes and reports figures.

Left out, for the CI time they cost even at smoke size: W10 (alerts; ~18 s at load 3)
and W14 (a chain of 1,000; ~21 s at load 3, and its code is W1's)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgserver import PgServer

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W11", "W12", "W13", "W15")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_workload_completes_at_smoke_size(tmp_path: Path, pg_server: PgServer) -> None:
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DAGCTL_TEST_PG_URL"] = pg_server.url  # the harness makes its databases there
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--small",
            "--reps",
            "1",
            "--only",
            ",".join(WORKLOADS),
            "--json",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failures"] == []
    figures = report["figures"]
    for workload in WORKLOADS:
        mine = [f for f in figures if f["workload"] == workload]
        assert mine, f"{workload} reported nothing"
        backends = {f["backend"] for f in mine}
        assert {"sqlite", "postgres"} <= backends, (workload, backends)
        for figure in mine:
            assert figure["samples"], figure
            assert all(math.isfinite(x) for x in figure["samples"]), figure
    # The table is printed, one line per figure.
    for workload in WORKLOADS:
        assert f"\n{workload} " in done.stdout
