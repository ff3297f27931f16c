"""The invariants every fault test ends with (../shared/faults.md), checked against the
state database and /proc rather than against anything the scheduler says about itself:

- no two scheduled runs for one (DAG, slot), and every trigger has its run;
- no task attempt `running` whose lease has expired (after the recovery time);
- counted attempts <= 1 + retries (an `interrupted` attempt, stopped by its scheduler's
  shutdown or by a lease running out, does not count: it is run again for free),
  numbered 1..n, at most one unfinished per task of a run;
- no task process left behind (test tasks carry a marker in their environment).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg2

from dagctl.dags.tree import load_tree


def query(db_url: str, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    connection = psycopg2.connect(db_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose environment holds `marker`: (pid, cmdline)."""
    needle = marker.encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                if needle not in handle.read():
                    continue
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state != b"Z":
            found.append((int(entry.name), cmdline))
    return found


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def _retries_by_task(dags_dir: Path) -> dict[tuple[str, str], int]:
    tree = load_tree(dags_dir)
    return {(d.name, t.name): d.retries_for(t) for d in tree.dags.values() for t in d.tasks.values()}


def check_invariants(
    db_url: str,
    dags_dir: Path,
    marker: str | None,
    *,
    triggered: Iterable[int] = (),
    recovery_s: float = 0.0,
    process_grace_s: float = 10.0,
    all_finished: bool = False,
) -> dict[str, int]:
    """Assert the invariants; returns a few counts for the test's own assertions.

    `recovery_s`: how long a `running` attempt with an expired lease may still be waiting
    for a reaper (a live scheduler reaps within its lease). `all_finished`: every run must
    have ended too."""
    # 1. one run per (DAG, slot)
    duplicates = query(
        db_url,
        "SELECT dag_name, scheduled_slot, count(*) FROM dag_run WHERE scheduled_slot IS NOT NULL "
        "GROUP BY dag_name, scheduled_slot HAVING count(*) > 1",
    )
    assert duplicates == [], f"duplicate scheduled runs: {duplicates}"
    # 2. no lost trigger
    wanted = sorted(set(triggered))
    if wanted:
        found = {r[0] for r in query(db_url, "SELECT id FROM dag_run WHERE id = ANY(%s)", (wanted,))}
        assert found == set(wanted), f"triggered runs missing: {sorted(set(wanted) - found)}"

    # 3. nothing running without a live lease (after the recovery time)
    def stale() -> list[tuple[Any, ...]]:
        return query(
            db_url,
            "SELECT id, dag_name, task_name, attempt, lease_owner, lease_expires_at FROM task_run "
            "WHERE status = 'running' AND (lease_owner IS NULL OR lease_expires_at IS NULL "
            "OR lease_expires_at < timezone('utc', now())) "
            # A `dag` or `for_each` task's own attempt runs no process and holds no lease
            # by design: the advance step ends it (scheduling/children.py, fanout.py).
            "AND NOT (lease_owner IS NULL AND (child_run_id IS NOT NULL OR map_items IS NOT NULL))",
        )

    if recovery_s > 0:
        wait_until(lambda: not stale(), recovery_s, "expired leases to be reaped")
    rows = stale()
    assert rows == [], f"attempts running without a live lease: {rows}"
    # 4. counted attempts <= 1 + retries, numbered 1..n, never two unfinished at once
    retries = _retries_by_task(dags_dir)
    attempts = query(
        db_url,
        "SELECT dag_run_id, dag_name, task_name, array_agg(attempt ORDER BY attempt), "
        "count(*) FILTER (WHERE status IN ('waiting', 'queued', 'running')), "
        "count(*) FILTER (WHERE status <> 'interrupted') "
        "FROM task_run GROUP BY dag_run_id, dag_name, task_name",
    )
    for run_id, dag_name, task_name, numbers, open_count, counted in attempts:
        # An item of a for_each task (`t.sh[3]`) retries as its task says.
        limit = 1 + retries.get((dag_name, task_name.split("[", 1)[0]), 0)
        assert list(numbers) == list(range(1, len(numbers) + 1)), (run_id, task_name, numbers)
        assert counted <= limit, f"run {run_id} {task_name}: {counted} counted attempts > {limit}"
        assert open_count <= 1, f"run {run_id} {task_name}: {open_count} unfinished attempts"
    # 5. no leftover task process
    if marker is not None:
        wait_until(lambda: not marked_processes(marker), process_grace_s, "task processes to be gone")
    counts = dict(
        query(db_url, "SELECT status, count(*) FROM dag_run GROUP BY status")  # type: ignore[arg-type]
    )
    if all_finished:
        active = counts.get("queued", 0) + counts.get("running", 0)
        assert active == 0, f"runs not finished: {counts}"
    return counts


def statuses(db_url: str) -> Mapping[str, int]:
    return dict(query(db_url, "SELECT status, count(*) FROM dag_run GROUP BY status"))  # type: ignore[arg-type]
