"""The pure half of the kubernetes manager: pod names, labels, the Pod object, what a
pod status means, and `validate --manager kubernetes`. No client, no server."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from dagctl.dags.model import Dag, ParamSpec, Task
from dagctl.execution.attempt import Attempt, TaskContext
from dagctl.managers import validation_problems
from dagctl.managers.kubepod import (
    NO_IMAGE,
    PodSpecError,
    instance_label,
    label_value,
    pending_timeout,
    pod_manifest,
    pod_name,
)
from dagctl.managers.kubestatus import failure, stuck_reason

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def make_attempt(
    worker_config: dict[str, Any],
    *,
    dag_name: str = "etl",
    task_name: str = "extract.sh",
    params: dict[str, Any] | None = None,
    task_config: dict[str, Any] | None = None,
    dags_root: Path = Path("/dags"),
) -> Attempt:
    task = Task(
        name=task_name,
        folder=str(dags_root / dag_name),
        type="shell",
        worker_config=MappingProxyType(task_config or {}),
    )
    dag = Dag(
        name=dag_name,
        folder=str(dags_root / dag_name),
        description="d",
        tasks=MappingProxyType({task_name: task}),
        fingerprint="f",
        params=MappingProxyType(
            {n: ParamSpec(n, {"type": "string"}, True, v) for n, v in (params or {}).items()}
        ),
        worker_config=MappingProxyType(worker_config),
    )
    context = TaskContext(
        dag=dag_name,
        task=task_name,
        run_id=7,
        attempt=2,
        logical_date=datetime(2024, 6, 1, 2, 15),
        params=params or {},
    )
    return Attempt(31, dag, task, context)


def test_pod_names_are_dns_labels_unique_and_stable() -> None:
    name = pod_name("abc", "etl", "extract.sh", 7, 2)
    assert name.startswith("dagctl-etl-extract-sh-7-2-") and DNS_LABEL.match(name)
    assert name == pod_name("abc", "etl", "extract.sh", 7, 2)
    others = {
        pod_name("abd", "etl", "extract.sh", 7, 2),
        pod_name("abc", "etl", "extract_sh", 7, 2),  # same slug, another task
        pod_name("abc", "etl", "extract.sh", 7, 3),
    }
    assert name not in others and len(others) == 3
    long = pod_name("abc", "Ä" * 10 + "x" * 200, "T" * 300 + ".py", 123456789012, 12)
    assert len(long) <= 63 and DNS_LABEL.match(long) and long.endswith("-123456789012-12-" + long[-8:])
    assert DNS_LABEL.match(pod_name("abc", "__", "..", 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("extract.sh", "extract.sh"), ("my dag/ü", "my_dag"), ("-x-", "x"), ("a" * 80, "a" * 63), ("", "")],
)
def test_label_values_follow_the_label_rules(text: str, expected: str) -> None:
    assert label_value(text) == expected
    assert LABEL_VALUE.match(label_value(text))


def test_the_instance_label_is_the_installation_id() -> None:
    assert instance_label("3f9a0c1b2d4e5f60a7b8") == "3f9a0c1b2d4e5f60a7b8"
    assert instance_label("") == "standalone"


def test_the_pod_object_from_the_merged_worker_config() -> None:
    attempt = make_attempt(
        {
            "kube_image": "registry.example/etl:1.2",
            "kube_namespace": "data",
            "kube_command": ["secrets-init", "--provider", "aws"],
            "kube_env": {"LANG": "C.UTF-8", "region": "overridden by the param"},
            "kube_requests_cpu": 0.5,
            "kube_requests_memory": "256Mi",
            "kube_limits_cpu": 2,
            "kube_limits_memory": "1Gi",
            "kube_service_account_name": "etl-runner",
            "kube_node_selector": {"pool": "batch"},
            "kube_tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "kube_security_context": {"runAsNonRoot": True, "runAsUser": 10001},
        },
        params={"region": "emea", "date": "2024-06-01", "bad name": "x"},
        task_config={"kube_limits_memory": "2Gi"},
    )
    pod = pod_manifest(attempt, owner="host-1-abc", instance="0123456789ab")
    assert pod["metadata"]["namespace"] == "data"
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "dagctl",
        "dagctl.io/instance": "0123456789ab",
        "dagctl.io/scheduler": "host-1-abc",
        "dagctl.io/dag": "etl",
        "dagctl.io/task": "extract.sh",
        "dagctl.io/run-id": "7",
        "dagctl.io/attempt": "2",
        "dagctl.io/task-run-id": "31",
    }
    assert pod["metadata"]["annotations"] == {"dagctl.io/dag": "etl", "dagctl.io/task": "extract.sh"}
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "etl-runner"
    assert spec["nodeSelector"] == {"pool": "batch"}
    assert spec["tolerations"] == [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},  # a default the config did not override
    }
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/etl:1.2"
    assert container["command"] == ["secrets-init", "--provider", "aws", "dagctl"]
    assert container["args"] == ["run", "etl", "extract.sh", "--run-id", "7", "--attempt", "2"]
    assert container["resources"] == {
        "requests": {"cpu": "0.5", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "LANG": "C.UTF-8",
        "region": "emea",  # params win over kube_env, as over worker_config.env
        "date": "2024-06-01",  # "bad name" cannot be a variable: it is in DAGCTL_PARAMS only
        "DAGCTL_DAG": "etl",
        "DAGCTL_TASK": "extract.sh",
        "DAGCTL_RUN_ID": "7",
        "DAGCTL_ATTEMPT": "2",
        "DAGCTL_LOGICAL_DATE": "2024-06-01T02:15:00+00:00",
        # No data interval given: it is the logical date itself.
        "DAGCTL_DATA_INTERVAL_START": "2024-06-01T02:15:00+00:00",
        "DAGCTL_DATA_INTERVAL_END": "2024-06-01T02:15:00+00:00",
        "DAGCTL_DS": "2024-06-01",
        "DAGCTL_PARAMS": '{"region": "emea", "date": "2024-06-01", "bad name": "x"}',
    }


def test_a_minimal_pod_has_only_what_was_asked() -> None:
    pod = pod_manifest(make_attempt({"kube_image": "img"}), owner="o", instance="i")
    assert pod["metadata"]["namespace"] == "default"
    assert set(pod["spec"]) == {"restartPolicy", "containers", "securityContext"}
    assert "resources" not in pod["spec"]["containers"][0]
    # The restricted Pod Security Standard's requirements, by default.
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["spec"]["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, NO_IMAGE),
        ({"kube_image": "  "}, NO_IMAGE),
        ({"kube_image": "img", "kube_command": "secrets-init"}, "kube_command must be a list of strings"),
    ],
)
def test_configurations_that_cannot_make_a_pod(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PodSpecError, match=re.escape(message)):
        pod_manifest(make_attempt(config), owner="o", instance="i")


def test_a_nul_byte_in_a_param_is_refused() -> None:
    with pytest.raises(PodSpecError, match="NUL"):
        pod_manifest(make_attempt({"kube_image": "i"}, params={"p": "a\x00b"}), owner="o", instance="i")


def test_pending_timeout_takes_durations() -> None:
    assert pending_timeout({}) == 300
    assert pending_timeout({"kube_pending_timeout": "2m"}) == 120
    assert pending_timeout({"kube_pending_timeout": 1.5}) == 1.5


def _pod(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": status}


def test_reading_pod_statuses() -> None:
    pulling = _pod(
        {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "task", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}}
            ],
        }
    )
    assert stuck_reason(pulling) == "ImagePullBackOff: Back-off"
    creating = _pod(
        {
            "phase": "Pending",
            "containerStatuses": [{"name": "task", "state": {"waiting": {"reason": "ContainerCreating"}}}],
        }
    )
    assert stuck_reason(creating) is None
    unschedulable = _pod(
        {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no"}
            ],
        }
    )
    assert stuck_reason(unschedulable) == "Unschedulable: no"
    oom = _pod(
        {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "task", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ],
        }
    )
    assert failure(oom) == (137, "exit code 137 (OOMKilled)")
    plain = _pod(
        {"phase": "Failed", "containerStatuses": [{"name": "task", "state": {"terminated": {"exitCode": 3}}}]}
    )
    assert failure(plain) == (3, "exit code 3")
    evicted = _pod({"phase": "Failed", "reason": "Evicted", "message": "low on memory"})
    assert failure(evicted) == (None, "the pod was evicted: low on memory")


def test_validate_for_kubernetes_wants_an_image(tmp_path: Path) -> None:
    from dagctl.dags.tree import load_tree

    root = tmp_path / "dags"
    for name, header in (("none", ""), ("some", ""), ("all", "")):
        (root / name).mkdir(parents=True)
        (root / name / "workflow.yaml").write_text(f"description: {name}{header}\n")
        (root / name / "a.sh").write_text("#!/bin/bash\necho a\n")
        (root / name / "b.sh").write_text("#!/bin/bash\necho b\n")
        (root / name / "skip.yaml").write_text("type: no_op\n")
    (root / "all" / "workflow.yaml").write_text("description: all\nworker_config: {kube_image: img}\n")
    (root / "some" / "a.sh").write_text("#!/bin/bash\n# worker_config: {kube_image: img}\necho a\n")
    tree = load_tree(root)
    assert not tree.problems
    problems = validation_problems("kubernetes", tree.dags, tree.root)
    assert sorted((p.path, p.line, p.dag) for p in problems) == [
        ("dags/none/a.sh", 2, "none"),
        ("dags/none/b.sh", 2, "none"),
        ("dags/some/b.sh", 2, "some"),  # where its header starts
    ]
    assert all(p.message == NO_IMAGE and p.severity == "error" for p in problems)
    assert validation_problems("worker", tree.dags, tree.root) == []
