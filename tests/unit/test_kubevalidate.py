"""The API server's checks made before a pod is created (managers/kubevalidate.py): the
seven specs of issue 17 that a real API server refuses with 422, quantities, and the
official schema. No client, no server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dagctl.managers.kubepod import pod_manifest
from dagctl.managers.kubevalidate import parse_quantity, pod_causes
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
