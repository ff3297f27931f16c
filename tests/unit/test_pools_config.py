"""Pools in dagctl.yaml, `pool:`/`pool_slots:` on DAGs and tasks, and their checks."""

from __future__ import annotations

from pathlib import Path

from dagctl.scheduling.pooling import pool_assignments, priority_assignments
from tests.unit.test_loader import load, rendered

POOLS = "pools:\n  warehouse: 4\n  api:\n    slots: 2\n    description: the partner API\n"


def test_pools_and_the_task_wins_over_its_dag(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "dagctl.yaml": POOLS,
            "d/workflow.yaml": "description: x\npool: warehouse\npool_slots: 2\n",
            "d/load.sql": "/*\ndescription: x\n*/\nSELECT 1;\n",
            "d/call.sh": "#!/bin/bash\n# pool: api\n# pool_slots: 1\necho\n",
            "d/heavy.sh": "#!/bin/bash\n# pool_slots: 4\necho\n",
            "e/workflow.yaml": "description: no pool\n",
            "e/t.sh": "#!/bin/bash\necho\n",
        },
    )
    assert rendered(tree) == []
    assert {n: (p.slots, p.description) for n, p in tree.config.pools.items()} == {
        "warehouse": (4, ""),
        "api": (2, "the partner API"),
    }
    assert pool_assignments(tree.dags) == {
        "d": {"load.sql": ("warehouse", 2), "call.sh": ("api", 1), "heavy.sh": ("warehouse", 4)}
    }


def test_an_unknown_pool_is_an_error_with_a_did_you_mean(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "dagctl.yaml": POOLS,
            "d/workflow.yaml": "description: x\npool: warehose\n",
            "d/t.sh": "#!/bin/bash\n# description: x\n# pool: nowhere\necho\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/workflow.yaml:2: unknown pool 'warehose' (did you mean 'warehouse'?)",
        "dags/d/t.sh:3: unknown pool 'nowhere' (define it under pools: in dagctl.yaml)",
    ]
    assert "d" in tree.broken


def test_pool_slots_larger_than_the_pool_can_never_run(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "dagctl.yaml": POOLS,
            "d/workflow.yaml": "description: x\n",
            "d/t.sh": "#!/bin/bash\n# pool: api\n# pool_slots: 3\necho\n",
        },
    )
    assert rendered(tree) == [
        "dags/d/t.sh:2: pool_slots 3 is more than pool 'api' has (2)"
        " (set pool_slots to at most 2, or enlarge the pool in dagctl.yaml)",
    ]


def test_a_malformed_pool_is_a_schema_error(tmp_path: Path) -> None:
    files = {
        "dagctl.yaml": "pools:\n  warehouse: many\n",
        "d/workflow.yaml": "description: x\n",
        "d/t.sh": "echo\n",
    }
    tree = load(tmp_path, files)
    assert len(tree.errors) == 1
    assert tree.errors[0].render().startswith("dags/dagctl.yaml:2:")


def test_queues_the_task_wins_and_unknown_ones_are_errors(tmp_path: Path) -> None:
    from dagctl.scheduling.pooling import queue_assignments

    tree = load(
        tmp_path,
        {
            "dagctl.yaml": "queues:\n  gpu:\n  k8s: {description: pods}\n",
            "d/workflow.yaml": "description: x\nqueue: k8s\n",
            "d/train.py": '"""\nqueue: gpu\n"""\ndef run(context):\n    pass\n',
            "d/load.sh": "#!/bin/bash\necho\n",
            "e/workflow.yaml": "description: x\n",
            "e/t.sh": "#!/bin/bash\n# queue: default\necho\n",
        },
    )
    assert rendered(tree) == []
    assert queue_assignments(tree.dags) == {"d": {"train.py": "gpu", "load.sh": "k8s"}}
    broken = load(
        tmp_path / "b",
        {
            "dagctl.yaml": "queues:\n  gpu:\n",
            "d/workflow.yaml": "description: x\nqueue: gpus\n",
            "d/t.sh": "echo\n",
        },
    )
    assert rendered(broken) == ["dags/d/workflow.yaml:2: unknown queue 'gpus' (did you mean 'gpu'?)"]


def test_priority_on_a_dag_and_a_task_the_tasks_wins(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "d/workflow.yaml": "description: x\npriority: 3\n",
            "d/a.sh": "#!/bin/bash\n# priority: 10\necho\n",
            "d/b.sh": "#!/bin/bash\necho\n",
            "e/workflow.yaml": "description: x\npriority: high\n",
            "e/t.sh": "#!/bin/bash\necho\n",
        },
    )
    dag = tree.dags["d"]
    assert {t: dag.priority_for(dag.tasks[t]) for t in dag.tasks} == {"a.sh": 10, "b.sh": 3}
    assert priority_assignments({"d": dag}) == {"d": {"a.sh": 10, "b.sh": 3}}
    assert [p for p in rendered(tree) if "priority" in p] != []  # not an integer: a schema error


def test_why_names_a_queue_no_live_scheduler_serves(tmp_path: Path) -> None:
    from dagctl.scheduling.diagnose import unserved_queues

    tree = load(
        tmp_path,
        {
            "dagctl.yaml": "queues:\n  gpu: {}\n",
            "d/workflow.yaml": "description: x\n",
            "d/train.py": '"""\nqueue: gpu\n"""\ndef run(context):\n    pass\n',
            "d/load.sh": "#!/bin/bash\necho\n",
        },
    )
    dag = tree.dags["d"]
    attempts = [{"task_name": "train.py", "status": "queued"}, {"task_name": "load.sh", "status": "queued"}]
    reasons = unserved_queues(dag, attempts, {"default": ("host:1",)}, live=1)
    assert [r["code"] for r in reasons] == ["queue_unserved"]
    assert reasons[0]["message"].startswith("queue gpu: no live scheduler serves it, so train.py wait")
    assert unserved_queues(dag, attempts, {"default": ("h:1",), "gpu": ("h:2",)}, live=2) == []
    assert unserved_queues(dag, attempts, {}, live=0) == []  # no_scheduler says it already
