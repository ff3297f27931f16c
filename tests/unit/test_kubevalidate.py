"""The API server's checks made before a pod is created (managers/kubevalidate.py): the
seven specs of issue 17 that a real API server refuses with 422, quantities, and the
official schema. No client, no server."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dagctl.managers.kubepod import PodSpecError, pod_manifest
from dagctl.managers.kubevalidate import parse_quantity, pod_causes, restricted_violations
from tests.unit.test_kubepod import make_attempt

# What a platform team wrote, and the field a real API server names in its 422.
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    (
        {"kube_namespace": "Data_Team"},
        "metadata.namespace",
        'Invalid value: "Data_Team": a lowercase RFC 1123 label',
    ),
    (
        {"kube_requests_memory": "256MB"},
        "spec.containers[0].resources.requests[memory]",
        'Invalid value: "256MB": quantities must match the regular expression',
    ),
    (
        {"kube_requests_cpu": "2", "kube_limits_cpu": "500m"},
        "spec.containers[0].resources.requests[cpu]",
        'Invalid value: "2": must be less than or equal to cpu limit of 500m',
    ),
    (
        {"kube_env": {"1BAD": "x"}},
        "spec.containers[0].env[0].name",
        'Invalid value: "1BAD": a valid environment variable name',
    ),
    (
        {"kube_service_account_name": "Etl_Runner"},
        "spec.serviceAccountName",
        'Invalid value: "Etl_Runner": a lowercase RFC 1123 subdomain',
    ),
    (
        {"kube_node_selector": {"pool": "batch jobs"}},
        "spec.nodeSelector[pool]",
        'Invalid value: "batch jobs"',
    ),
    (
        {"kube_tolerations": [{"key": "batch", "operator": "Exists", "value": "yes"}]},
        "spec.tolerations[0].operator",
        "value must be empty when `operator` is 'Exists'",
    ),
]


@pytest.mark.parametrize(("config", "field", "message"), REFUSED, ids=[r[1] for r in REFUSED])
def test_the_seven_specs_a_cluster_refuses_are_refused(
    config: dict[str, Any], field: str, message: str
) -> None:
    pod = pod_manifest(make_attempt({"kube_image": "img:1", **config}), owner="o", instance="i")
    causes = pod_causes(pod)
    assert [c.field for c in causes] == [field]
    assert message in causes[0].message


def test_a_sound_pod_passes_schema_and_rules() -> None:
    config = {
        "kube_image": "img:1",
        "kube_namespace": "data-team",
        "kube_requests_cpu": 0.5,
        "kube_requests_memory": "256Mi",
        "kube_limits_cpu": "1",
        "kube_limits_memory": "1Gi",
        "kube_env": {"my.env-name": "x"},
        "kube_service_account_name": "etl-runner",
        "kube_node_selector": {"cloud.google.com/gke-nodepool": "batch_1"},
        "kube_tolerations": [{"operator": "Exists"}, {"key": "k", "operator": "Equal", "value": "v"}],
    }
    assert pod_causes(pod_manifest(make_attempt(config), owner="o", instance="i")) == []


def test_the_official_schema_is_strict() -> None:
    pod = pod_manifest(
        make_attempt({"kube_image": "img", "kube_tolerations": [{"opertor": "Exists"}]}),
        owner="o",
        instance="i",
    )
    (cause,) = pod_causes(pod)
    assert cause.field == "spec.tolerations[0]" and "'opertor' was unexpected" in cause.message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1.5Gi", Decimal(1.5 * 2**30)),
        ("2", Decimal(2)),
        ("1e3", Decimal(1000)),
        ("128974848", Decimal(128974848)),
        ("129M", Decimal(129_000_000)),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["256MB", "1 Gi", "Gi", "", "1.5.2", "0x10", "1gi"])
def test_not_quantities(text: str) -> None:
    assert parse_quantity(text) is None


POD_TEMPLATE = """
apiVersion: v1
kind: Pod
metadata:
  name: ignored
  labels: {team: data}
  annotations: {cluster-autoscaler.kubernetes.io/safe-to-evict: "false"}
spec:
  terminationGracePeriodSeconds: 60
  dnsPolicy: ClusterFirst
  volumes:
    - name: scratch
      emptyDir: {sizeLimit: 1Gi}
  containers:
    - name: cloud-sql-proxy
      image: gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11
      args: ["--port=5432", "project:region:db"]
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
    - name: task
      workingDir: /work
      volumeMounts: [{name: scratch, mountPath: /scratch}]
      env: [{name: FROM_TEMPLATE, value: "1"}]
"""

EVERY_KEY: dict[str, Any] = {
    "kube_image": "registry.example/etl:1.2",
    "kube_pod_template": "pod-template.yaml",
    "kube_namespace": "data",
    "kube_env": {"LANG": "C.UTF-8"},
    "kube_env_from": [
        {"secretRef": {"name": "etl-secrets"}},
        {"configMapRef": {"name": "etl-settings"}, "prefix": "CFG_"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ],
    "kube_volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "etl-data"}}],
    "kube_volume_mounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    "kube_image_pull_secrets": ["registry-creds"],
    "kube_image_pull_policy": "IfNotPresent",
    "kube_labels": {"cost-center": "analytics", "app.kubernetes.io/part-of": "etl"},
    "kube_annotations": {"example.com/owner": "data-team@example.com"},
    "kube_affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}
                ]
            }
        }
    },
    "kube_priority_class": "batch-low",
    "kube_container_security_context": {"runAsUser": 10001, "readOnlyRootFilesystem": True},
    "kube_security_context": {"runAsUser": 10001, "fsGroup": 10001},
    "kube_requests": {"nvidia.com/gpu": 1, "ephemeral-storage": "2Gi"},
    "kube_limits": {"nvidia.com/gpu": 1, "ephemeral-storage": "4Gi"},
    "kube_requests_cpu": "500m",
    "kube_requests_memory": "512Mi",
    "kube_limits_memory": "1Gi",
    "kube_service_account_name": "etl-runner",
    "kube_node_selector": {"pool": "batch"},
    "kube_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "kube_keep_failed_pods": True,
}


def test_a_pod_with_a_template_and_every_key_passes_schema_and_restricted(tmp_path: Path) -> None:
    (tmp_path / "pod-template.yaml").write_text(POD_TEMPLATE)
    attempt = make_attempt(EVERY_KEY, dags_root=tmp_path)
    pod = pod_manifest(attempt, owner="o", instance="i")
    assert pod_causes(pod) == []
    assert restricted_violations(pod) == []
    metadata, spec = pod["metadata"], pod["spec"]
    assert metadata["name"].startswith("dagctl-etl-extract-sh-7-2-") and metadata["namespace"] == "data"
    assert metadata["labels"]["team"] == "data" and metadata["labels"]["cost-center"] == "analytics"
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "dagctl"
    assert metadata["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert [v["name"] for v in spec["volumes"]] == ["scratch", "data"]
    task, proxy = spec["containers"]  # merged by name: the template's sidecar stays, the task's first
    assert proxy["name"] == "cloud-sql-proxy" and task["workingDir"] == "/work"
    assert [m["name"] for m in task["volumeMounts"]] == ["scratch", "data"]
    env = [e["name"] for e in task["env"]]
    assert env[:3] == ["FROM_TEMPLATE", "DB_PASSWORD", "LANG"] and env[-1] == "DAGCTL_PARAMS"
    assert task["envFrom"] == EVERY_KEY["kube_env_from"][:2]
    assert task["resources"] == {
        "requests": {"nvidia.com/gpu": "1", "ephemeral-storage": "2Gi", "cpu": "500m", "memory": "512Mi"},
        "limits": {"nvidia.com/gpu": "1", "ephemeral-storage": "4Gi", "memory": "1Gi"},
    }
    assert task["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsUser": 10001,
        "readOnlyRootFilesystem": True,
    }
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 10001,
        "fsGroup": 10001,
    }
    assert spec["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert spec["priorityClassName"] == "batch-low" and spec["terminationGracePeriodSeconds"] == 60


def test_overriding_the_defaults_is_seen_by_the_restricted_check() -> None:
    pod = pod_manifest(
        make_attempt(
            {"kube_image": "i", "kube_container_security_context": {"allowPrivilegeEscalation": True}}
        ),
        owner="o",
        instance="i",
    )
    assert restricted_violations(pod) == ["container 'task': allowPrivilegeEscalation != false"]


def test_a_template_that_cannot_be_read_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(PodSpecError, match=r"^worker_config.kube_pod_template: cannot read nope.yaml: "):
        pod_manifest(
            make_attempt({"kube_image": "i", "kube_pod_template": "nope.yaml"}, dags_root=tmp_path),
            owner="o",
            instance="i",
        )
    (tmp_path / "deploy.yaml").write_text("kind: Deployment\nspec: {}\n")
    with pytest.raises(PodSpecError, match="must be a Pod"):
        pod_manifest(
            make_attempt({"kube_image": "i", "kube_pod_template": "deploy.yaml"}, dags_root=tmp_path),
            owner="o",
            instance="i",
        )


def test_validate_points_at_the_pod_template_when_the_mistake_is_there(tmp_path: Path) -> None:
    from dagctl.dags.tree import load_tree
    from dagctl.managers.kubecheck import check_dags

    dags = tmp_path / "dags"
    (dags / "etl").mkdir(parents=True)
    (dags / "dagctl.yaml").write_text("worker_config: {kube_image: img, kube_pod_template: pod.yaml}\n")
    (dags / "pod.yaml").write_text(
        "kind: Pod\nspec:\n  containers: [{name: task, imagePullPolicy: Sometimes}]\n"
    )
    (dags / "etl" / "workflow.yaml").write_text("description: d\n")
    (dags / "etl" / "a.sh").write_text("echo a\n")
    tree = load_tree(dags)
    (problem,) = check_dags(tree.dags, tree.root)
    assert problem.render() == (
        "dags/etl/a.sh:1: kubernetes would refuse the pod: spec.containers[0].imagePullPolicy:"
        ' Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'
        " (fix the pod template pod.yaml (worker_config.kube_pod_template))"
    )
