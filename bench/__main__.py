"""Run dagctl's benchmarks and print a table of figures against the design's targets.

    python -m bench                      # every workload, SQLite and PostgreSQL, 5 reps
    python -m bench --only W1 --backend postgres --reps 10
    python -m bench --small --reps 1     # the fast smoke sizes CI uses
    python -m bench --json figures.json

Workloads: W1 chain20, W2 fan100, W3 1,000 DAGs (validate, idle iteration, SQL
statements, scheduler RSS), W4 throughput (1 and 4 schedulers), W5 start-up (--help,
trigger), W6 cron at scale, W7 backfill of 1,000 slots, W8 prune of 100,000
attempts, W9 `dagctl serve` pages and API with 1,000 DAGs and 100,000 attempts, W10
alerts (failure -> webhook latency, loop time with 1,000 pending events), W11
fan-out (for_each over 100 and 1,000 items, two schedulers), W12 10,000 DAGs (validate,
first sync, idle scheduler CPU and RSS), W13 the terminal commands with 1,000 DAGs
(list, status, trigger, trigger --wait), W14 hop cost in a chain of 1,000 against 20,
W15 where a hop's time goes (in process, per step) against the floor loop's.
W1, W2, W14 and W15 also run a bare claim -> spawn -> finish -> commit loop (bench/floor.py)
on the same database and report dagctl against it.
PostgreSQL is started by the harness (tests/pgserver.py), or taken from
DAGCTL_TEST_PG_URL.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import common, runs  # noqa: E402

Workload = Callable[[common.Config, str], list[common.Figure]]


def _workloads() -> dict[str, tuple[str, Workload, bool]]:
    """name -> (title, function(cfg, backend), runs per backend)."""
    from bench import alerts, cli, cron, fanout, history, hop, manydags, scale, startup, throughput, web

    return {
        "W1": ("chain20", runs.chain20, True),
        "W2": ("fan100", runs.fan100, True),
        "W3": ("1,000 DAGs x 5 tasks", scale.thousand, True),
        "W4": ("throughput", throughput.throughput, True),
        "W5": ("start-up", startup.startup, True),
        "W6": ("cron at scale", cron.cron_at_scale, True),
        "W7": ("backfill 1,000 slots", history.backfill, True),
        "W8": ("prune 100,000 attempts", history.prune, True),
        "W9": ("web pages and API, 1,000 DAGs / 100,000 attempts", web.web, True),
        "W10": ("alerts: latency, loop with 1,000 pending", alerts.alerts, True),
        "W11": ("fan-out: for_each over 100 and 1,000 items", fanout.fanout, True),
        "W12": ("10,000 DAGs: validate, first sync, idle CPU and memory", manydags.many_dags, True),
        "W13": ("list, status, trigger, trigger --wait with 1,000 DAGs", cli.cli, True),
        "W14": ("hop cost: a chain of 1,000 against a chain of 20", runs.chain1000, True),
        "W15": ("where a hop's time goes, against the floor loop's", hop.hop_breakdown, True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1 or W1,W5 (default: all)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per figure (default 5)")
    parser.add_argument("--json", type=Path, help="also write every figure, with its samples, here")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--dagctl", help="the dagctl executable to time (default: next to this Python)")
    args = parser.parse_args(argv)

    workloads = _workloads()
    chosen = [w.strip().upper() for w in args.only.split(",")] if args.only else list(workloads)
    unknown = [w for w in chosen if w not in workloads]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(workloads)}")
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    exe = args.dagctl or common.dagctl_exe()
    load_before = os.getloadavg()
    started = time.time()
    print(
        f"dagctl bench: python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}, {exe}; load average {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        + ("; SMALL sizes (smoke test)" if args.small else ""),
        flush=True,
    )
    figures: list[common.Figure] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dagctl-bench-") as tmp:
        dbs = common.Backends(Path(tmp))
        cfg = common.Config(reps=max(1, args.reps), small=args.small, backends=backends, exe=exe, dbs=dbs)
        try:
            for name in chosen:
                title, function, _ = workloads[name]
                for backend in backends:
                    cfg.say(f"{name} {title} on {backend}")
                    began = time.monotonic()
                    try:
                        figures.extend(function(cfg, backend))
                    except Exception as exc:  # report it, go on with the other workloads
                        failures.append(f"{name} {backend}: {type(exc).__name__}: {exc}")
                        cfg.say(failures[-1])
                    cfg.say(f"{name} on {backend} took {time.monotonic() - began:.1f} s")
        finally:
            dbs.close()
    load_after = os.getloadavg()
    print()
    print(common.render_table(figures))
    print()
    print(
        f"took {time.time() - started:.0f} s; load average after {' '.join(f'{x:.2f}' for x in load_after)}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "load_before": load_before,
                    "load_after": load_after,
                    "small": args.small,
                    "reps": cfg.reps,
                    "figures": [f.as_json() for f in figures],
                    "failures": failures,
                },
                indent=2,
            )
        )
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
