"""`queues:` in dagctl.yaml with a `limit:`: the forms it takes, the check of a bad one,
and `why` for the attempts of for_each items."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_loader import load, rendered


def test_a_queue_may_carry_a_limit_beside_the_forms_without(tmp_path: Path) -> None:
    tree = load(
        tmp_path,
        {
            "dagctl.yaml": "queues:\n  gpu:\n    limit: 2\n    description: two GPUs\n"
            "  k8s: {description: pods}\n  cpu:\n  default: {limit: 8}\n",
            "d/workflow.yaml": "description: x\nqueue: gpu\n",
            "d/t.sh": "#!/bin/bash\n# queue: cpu\necho\n",
        },
    )
    assert rendered(tree) == []
    assert dict(tree.config.queue_limits) == {"gpu": 2, "default": 8}
    assert dict(tree.config.queues) == {"gpu": "two GPUs", "k8s": "pods", "cpu": "", "default": ""}


def test_a_bad_limit_is_an_error_with_its_line_and_fix(tmp_path: Path) -> None:
    files = {
        "dagctl.yaml": "queues:\n  gpu:\n    limit: 0\n  cpu: {limit: two}\n",
        "d/workflow.yaml": "description: x\n",
        "d/t.sh": "echo\n",
    }
    fix = "write a whole number of at least 1, or leave limit out; dagctl queue pause {} stops a queue"
    assert sorted(rendered(load(tmp_path, files))) == [
        f"dags/dagctl.yaml:3: queues.gpu.limit: 0 is not a number of attempts ({fix.format('gpu')})",
        f"dags/dagctl.yaml:4: queues.cpu.limit: 'two' is not a number of attempts ({fix.format('cpu')})",
    ]


def test_why_looks_up_an_items_queue_by_its_task(tmp_path: Path) -> None:
    from dagctl.scheduling.diagnose import unserved_queues

    tree = load(
        tmp_path,
        {
            "dagctl.yaml": "queues:\n  gpu: {limit: 1}\n",
            "d/workflow.yaml": "description: x\n",
            "d/fit.sh": "#!/bin/bash\n# for_each: [1, 2, 3]\n# queue: gpu\necho\n",
        },
    )
    attempts = [{"task_name": f"fit.sh[{i}]", "status": "queued"} for i in range(3)]
    [reason] = unserved_queues(tree.dags["d"], attempts, {"default": ("h:1",)}, live=1)
    assert reason["message"].startswith("queue gpu: no live scheduler serves it, so fit.sh wait")
