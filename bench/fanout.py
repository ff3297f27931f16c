"""W11 fan-out: one `for_each` task over N items (max_parallel 8), two schedulers.

Times the run (created_at -> ended_at, from the state database) for 100 and for 1,000
items and compares the cost per item: thousands of items must not slow the loop
(the advance step reads every item's latest attempt, so a cost that grew with N
would show here). Each item is a bash process writing one output.
"""

from __future__ import annotations

from bench.common import Config, Db, Env, Figure, seconds, workspace

MAX_PARALLEL = 8


def _write(env: Env, name: str, count: int) -> None:
    env.write_dag(
        name,
        "description: fan-out bench\nretries: 0\n",
        {
            "list.sh": (
                "#!/bin/bash\n# inputs: []\n"
                f'echo "{{\\"n\\": [$(seq -s, 0 {count - 1})]}}" > "$DAGCTL_OUTPUT"\n'
            ),
            "item.sh": (
                "#!/bin/bash\n# inputs: [list.sh]\n"
                f"# for_each: \"{{{{ outputs['list.sh'].n }}}}\"\n# max_parallel: {MAX_PARALLEL}\n"
                'echo "i=$DAGCTL_ITEM" >> "$DAGCTL_OUTPUT"\n'
            ),
        },
    )


def fanout(cfg: Config, backend: str) -> list[Figure]:
    sizes = (10, 30) if cfg.small else (100, 1000)
    w = "W11"
    per_item: dict[int, list[float]] = {n: [] for n in sizes}
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    with workspace("w11") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        for count in sizes:
            _write(env, f"fan{count}", count)
        env.run("db", "upgrade")
        db = Db(url)
        for _ in range(2):
            env.schedule("--concurrency", str(MAX_PARALLEL), "--poll-interval", "1.0")
        try:
            env.wait_for(db, "SELECT count(*) FROM dag", len(sizes))
            for rep in range(min(cfg.reps, 3)):
                for count in sizes:
                    _, done = env.run("trigger", f"fan{count}", "--wait", timeout=600)
                    run_id = int(done.stdout.split()[0])
                    status, created, ended = db.rows(
                        "SELECT status, created_at, ended_at FROM dag_run WHERE id = ?", run_id
                    )[0]
                    ok = db.value(
                        "SELECT count(*) FROM task_run WHERE dag_run_id = ? AND status = 'success'"
                        " AND task_name NOT IN ('item.sh', 'list.sh')",  # the items
                        run_id,
                    )
                    if status != "success" or ok != count:
                        raise RuntimeError(f"fan{count} run {run_id} ended {status} with {ok} items")
                    wall = seconds(created, ended)
                    walls[count].append(wall)
                    per_item[count].append(wall / count * 1000)
                    cfg.say(f"{w} {backend} rep {rep + 1}: {count} items in {wall:.2f} s")
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    small, big = sizes
    small_ms = sorted(per_item[small])[len(per_item[small]) // 2]
    return [
        Figure(
            w, backend, f"{small} items, max_parallel {MAX_PARALLEL}, 2 schedulers (DB)", walls[small], "s"
        ),
        Figure(w, backend, f"{big} items, max_parallel {MAX_PARALLEL}, 2 schedulers (DB)", walls[big], "s"),
        Figure(w, backend, f"cost per item at {small} items", per_item[small], "ms"),
        Figure(
            w,
            backend,
            f"cost per item at {big} items (target: 1.2x the cost at {small})",
            per_item[big],
            "ms",
            target=1.2 * small_ms,
        ),
    ]


__all__ = ["fanout"]
