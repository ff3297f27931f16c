"""W6 cron at scale: 1,000 DAGs (one no_op task each) all due at 12:30 UTC, with two
`dagctl schedule` processes on one database.

The DAG rows are first created by a `schedule --once` at 11:00 (fake clock), so the
12:30 slot is after the DAGs were first seen. Then both schedulers start with their
clock (DAGCTL_FAKE_NOW, running at real speed) LEAD seconds before the slot: enough to
load the DAGs and settle, so what is timed is the slot itself.

Each scheduler's clock starts when its process does, so the harness maps it to real
time with triggers of its own (not part of dagctl): one records, when a scheduler
registers, its started_at (its clock) next to the database's real time; another
stamps each run with the real time it was inserted. Measured: the earlier scheduler's
slot -> the last of the 1,000 runs inserted, runs per DAG (exactly one: 0 duplicates,
0 missing), and slot -> first task started of each run (p95).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bench import dags
from bench.common import Config, Db, Env, Figure, percentile, seconds, ts, workspace

SLOT = datetime(2024, 6, 1, 12, 30)
TARGET_S = 1.5
POLL_INTERVAL = 1.0


def _one(cfg: Config, backend: str, count: int, lead: float) -> tuple[float, float, int, int, int]:
    with workspace("w6") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        dags.cron_no_op(env.dags, count, SLOT.minute, SLOT.hour)
        env.run("db", "upgrade")
        env.run("schedule", "--once", extra={"DAGCTL_FAKE_NOW": "2024-06-01T11:00:00"})
        db = Db(url)
        try:
            db.execute_script(_AUDIT_SQLITE, _AUDIT_POSTGRES)
            start = (SLOT - timedelta(seconds=lead)).isoformat()
            for _ in range(2):
                env.schedule("--poll-interval", str(POLL_INTERVAL), extra={"DAGCTL_FAKE_NOW": start})
            env.wait_for(db, "SELECT count(*) FROM dag_run", count, timeout=lead + 120, interval=0.1)
            env.wait_for(
                db,
                "SELECT count(*) FROM task_run WHERE started_at IS NOT NULL",
                count,
                timeout=120,
                interval=0.1,
            )
            # When the slot came, in real time, for the first scheduler to reach it.
            slot_real = min(ts(real) - (ts(clock) - SLOT) for clock, real in db.rows(_OFFSETS))
            last_created = db.value("SELECT max(real) FROM bench_runs")
            starts = [seconds(SLOT, row[0]) for row in db.rows(_FIRST_STARTS)]
            runs, per_slot = db.rows(
                "SELECT count(*), count(DISTINCT dag_name || ' ' || logical_date) FROM dag_run"
            )[0]
            early = db.value("SELECT count(*) FROM dag_run WHERE logical_date <> ?", _as_param(db, SLOT))
            logs = env.log_of(0) + env.log_of(1)
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    errors = logs.count("Traceback") + logs.count("UniqueViolation") + logs.count("IntegrityError")
    missing = count - int(per_slot)
    duplicates = int(runs) - int(per_slot) + int(early)
    return seconds(slot_real, last_created), percentile(starts, 0.95), duplicates, missing, errors


_AUDIT_SQLITE = """
CREATE TABLE bench_schedulers (started_at TEXT, real TEXT);
CREATE TRIGGER bench_scheduler AFTER INSERT ON scheduler
BEGIN INSERT INTO bench_schedulers VALUES (NEW.started_at, strftime('%Y-%m-%d %H:%M:%f', 'now')); END;
CREATE TABLE bench_runs (real TEXT);
CREATE TRIGGER bench_run AFTER INSERT ON dag_run
BEGIN INSERT INTO bench_runs VALUES (strftime('%Y-%m-%d %H:%M:%f', 'now')); END;
"""
_AUDIT_POSTGRES = """
CREATE TABLE bench_schedulers (started_at timestamp, real timestamp);
CREATE FUNCTION bench_scheduler() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_schedulers VALUES (NEW.started_at, clock_timestamp() AT TIME ZONE 'UTC');
RETURN NEW; END $$;
CREATE TRIGGER bench_scheduler AFTER INSERT ON scheduler FOR EACH ROW EXECUTE FUNCTION bench_scheduler();
CREATE TABLE bench_runs (real timestamp);
CREATE FUNCTION bench_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_runs VALUES (clock_timestamp() AT TIME ZONE 'UTC'); RETURN NEW; END $$;
CREATE TRIGGER bench_run AFTER INSERT ON dag_run FOR EACH ROW EXECUTE FUNCTION bench_run();
"""
_OFFSETS = "SELECT started_at, real FROM bench_schedulers"
_FIRST_STARTS = "SELECT min(t.started_at) FROM task_run t JOIN dag_run r ON r.id = t.dag_run_id GROUP BY r.id"


def _as_param(db: Db, value: datetime) -> object:
    return value if db.is_postgres else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def cron_at_scale(cfg: Config, backend: str) -> list[Figure]:
    count, lead = (20, 3.0) if cfg.small else (1000, 8.0)
    created, first_starts, duplicates, missing = [], [], [], []
    for rep in range(cfg.reps):
        last, p95, dup, miss, errors = _one(cfg, backend, count, lead)
        if errors:
            raise RuntimeError(f"{errors} errors in the schedulers' logs")
        created.append(last)
        first_starts.append(p95)
        duplicates.append(float(dup))
        missing.append(float(miss))
        cfg.say(
            f"W6 {backend} rep {rep + 1}: all created {last * 1000:.0f} ms after the slot, {dup} duplicates"
        )
    return [
        Figure(
            "W6",
            backend,
            f"slot -> all {count:,} runs created, 2 schedulers",
            created,
            "s",
            target=TARGET_S,
            note=f"the schedulers' clock starts {lead:.0f} s before the slot (DAGCTL_FAKE_NOW)",
        ),
        Figure(
            "W6",
            backend,
            "slot -> first task started, p95 over runs",
            first_starts,
            "s",
            note="the schedulers' clock; 1,000 runs' tasks claimed 2 at a time (--concurrency: the CPUs)",
        ),
        Figure("W6", backend, "duplicate runs (same DAG and slot)", duplicates, "count", target=0.0),
        Figure("W6", backend, "missing runs", missing, "count", target=0.0),
    ]
