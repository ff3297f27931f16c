"""W4 throughput: 10,000 `no_op` task runs across 100 DAG runs (100 DAGs of 100 tasks,
first -> 98 -> last, one run each), with 1 and with 4 `dagctl schedule` processes on
one database.

The schedulers are started first and given time to load the DAGs; then the 100 runs
are queued in one transaction (one NOTIFY) and the harness waits until every task run
has succeeded. Throughput = task runs / (last ended_at - first started_at), from the
database. Duplicates: a trigger on task_run (added by the harness, not part of dagctl)
records every change of an attempt to `running`; an attempt claimed twice would be
recorded twice.

The pools variant (4 schedulers) puts every DAG in one of four pools, each larger than
the schedulers' combined concurrency: every claim then takes the pooled path (on
PostgreSQL: slot rows taken with SKIP LOCKED, see dagctl/store/pool_slots.py), so the
figure is the cost of pools, not a pool's limit. It is skipped for a dagctl without
pools (a "before" measurement).
"""

from __future__ import annotations

import importlib.util
import time

from bench import dags
from bench.common import Config, Db, Env, Figure, seconds, workspace

TARGET_PER_S = 2000.0
CONCURRENCY = "100"  # a no_op takes no slot; this bounds the attempts claimed per pass
POOLS = 4
POOL_SLOTS = 1000  # more than 4 schedulers x CONCURRENCY: pools in use, never full

_AUDIT_SQLITE = """
CREATE TABLE bench_claims (task_run_id INTEGER, owner TEXT);
CREATE TRIGGER bench_claimed AFTER UPDATE OF status ON task_run
WHEN NEW.status = 'running' AND OLD.status <> 'running'
BEGIN INSERT INTO bench_claims VALUES (NEW.id, NEW.lease_owner); END;
"""
_AUDIT_POSTGRES = """
CREATE TABLE bench_claims (task_run_id INTEGER, owner TEXT);
CREATE FUNCTION bench_claimed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_claims VALUES (NEW.id, NEW.lease_owner); RETURN NEW; END $$;
CREATE TRIGGER bench_claimed AFTER UPDATE OF status ON task_run FOR EACH ROW
WHEN (NEW.status = 'running' AND OLD.status <> 'running') EXECUTE FUNCTION bench_claimed();
"""


def _queue_runs(url: str, root: str, names: list[str]) -> None:
    """One run of each DAG, all in one transaction (dagctl's own store operations)."""
    from dagctl.dags.cron import utcnow
    from dagctl.dags.loader import load_one
    from dagctl.store import open_store

    store = open_store(url, migrate=False)
    try:
        fingerprints = {}
        for name in names:
            dag, _ = load_one(root, name)
            fingerprints[name] = getattr(dag, "fingerprint", None)
        now = utcnow()
        transaction = getattr(store, "transaction", None)
        if transaction is None:  # an older dagctl: one transaction per run
            for name in names:
                store.trigger(name, {}, "bench", now, fingerprints[name], now)
            return
        with transaction():
            for name in names:
                store.trigger(name, {}, "bench", now, fingerprints[name], now)
    finally:
        store.close()


def _one(
    cfg: Config, backend: str, schedulers: int, n_dags: int, n_tasks: int, pools: bool = False
) -> tuple[float, int, float]:
    """Task runs/s, duplicates, and the seconds from queuing to the last success."""
    total = n_dags * n_tasks
    with workspace("w4") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        names = [f"tp_{i:03d}" for i in range(n_dags)]
        for name in names:
            dags.no_op_fan(env.dags, name, n_tasks)
        if pools:
            _use_pools(env, names)
        env.run("db", "upgrade")
        db = Db(url)
        try:
            db.execute_script(_AUDIT_SQLITE, _AUDIT_POSTGRES)
            for _ in range(schedulers):
                env.schedule("--concurrency", CONCURRENCY, "--poll-interval", "1")
            env.wait_for(db, "SELECT count(*) FROM scheduler", schedulers, timeout=120)
            env.wait_for(db, "SELECT count(*) FROM dag", n_dags, timeout=120)
            time.sleep(0.3 if cfg.small else 1.0)  # every scheduler past its first pass
            queued_at = time.perf_counter()
            _queue_runs(url, str(env.dags), names)
            env.wait_for(
                db,
                "SELECT count(*) FROM task_run WHERE status = 'success'",
                total,
                timeout=600,
                interval=0.02,
            )
            wall = time.perf_counter() - queued_at
            first, last = db.rows("SELECT min(started_at), max(ended_at) FROM task_run")[0]
            claims, distinct = db.rows("SELECT count(*), count(DISTINCT task_run_id) FROM bench_claims")[0]
            attempts = db.value("SELECT count(*) FROM task_run")
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    if attempts != total:
        raise RuntimeError(f"{attempts} attempts for {total} task runs")
    return total / max(seconds(first, last), 1e-6), int(claims) - int(distinct), wall


def _use_pools(env: Env, names: list[str]) -> None:
    pools = "".join(f"  pool_{i}: {POOL_SLOTS}\n" for i in range(POOLS))
    (env.dags / "dagctl.yaml").write_text("pools:\n" + pools)
    for i, name in enumerate(names):
        workflow = env.dags / name / "workflow.yaml"
        workflow.write_text(workflow.read_text() + f"pool: pool_{i % POOLS}\n")


def throughput(cfg: Config, backend: str) -> list[Figure]:
    n_dags, n_tasks = (10, 20) if cfg.small else (100, 100)
    total = n_dags * n_tasks
    figures = []
    variants = [(1, False), (4, False)]
    if importlib.util.find_spec("dagctl.store.pools") is not None:
        variants.append((4, True))
    for schedulers, pools in variants:
        rates, duplicates, walls = [], [], []
        label = f"{schedulers} scheduler(s)" + (", pools in use" if pools else "")
        for rep in range(cfg.reps):
            rate, dup, wall = _one(cfg, backend, schedulers, n_dags, n_tasks, pools)
            rates.append(rate)
            duplicates.append(dup)
            walls.append(wall)
            cfg.say(f"W4 {backend} {label} rep {rep + 1}: {rate:,.0f}/s, {dup} duplicates")
        figures += [
            Figure(
                "W4",
                backend,
                f"{total:,} no_op task runs, {label}",
                rates,
                "/s",
                target=TARGET_PER_S if schedulers == 4 else None,
                higher_is_better=True,
                note="first start -> last end, from the database; --concurrency " + CONCURRENCY,
            ),
            Figure("W4", backend, f"queued -> all succeeded, {label}", walls, "s"),
            Figure(
                "W4",
                backend,
                f"attempts claimed twice, {label}",
                [float(d) for d in duplicates],
                "count",
                target=0.0,
            ),
        ]
    return figures
