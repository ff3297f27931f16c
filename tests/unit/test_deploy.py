"""The deployment files: deploy/kubernetes/*.yaml validated against the Kubernetes
OpenAPI schemas (kubernetes-validate, offline, strict: unknown fields are errors) for
the oldest and newest versions it ships, plus what they must say for dagctl; and the
Dockerfile's essentials (docker cannot run here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
VERSIONS = ["1.27.0", str(kubernetes_validate.latest_version())]


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in MANIFESTS:
        with path.open() as handle:
            docs.extend(d for d in yaml.safe_load_all(handle) if d is not None)
    return docs


def by_kind() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in documents():
        assert doc["kind"] not in found, f"two {doc['kind']} manifests"
        found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_are_valid_kubernetes_objects(path: Path, version: str) -> None:
    with path.open() as handle:
        for doc in yaml.safe_load_all(handle):
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_manifests_we_ship() -> None:
    assert {p.name for p in MANIFESTS} == {
        "namespace.yaml",
        "serviceaccount.yaml",
        "role.yaml",
        "rolebinding.yaml",
        "deployment.yaml",
    }
    kinds = by_kind()
    assert set(kinds) == {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment"}
    namespace = kinds["Namespace"]["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for k, d in kinds.items() if k != "Namespace")


def test_the_role_grants_only_what_the_manager_does() -> None:
    kinds = by_kind()
    rules = kinds["Role"]["rules"]
    granted = {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == {
        ("", "pods", "create"),
        ("", "pods", "list"),
        ("", "pods", "delete"),
        ("", "pods/log", "get"),
    }
    binding = kinds["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": kinds["Role"]["metadata"]["name"],
    }
    account = kinds["ServiceAccount"]["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_the_scheduler_deployment() -> None:
    kinds = by_kind()
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 30  # longer than dagctl's default --grace
    (container,) = pod["containers"]
    assert container["args"][:3] == ["schedule", "--manager", "kubernetes"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "dagctl-database", "key": "url"}}
    assert "value" not in env["DATABASE_URL"]  # never a password in a manifest


def dockerfile() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile() -> None:
    instructions = dockerfile()
    assert instructions[0][0] == "FROM"
    last = {name: value for name, value in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["dagctl"]
    assert json.loads(last["CMD"]) == ["schedule", "--manager", "kubernetes"]
    user = last["USER"].split(":")[0]
    assert user not in ("root", "0")
    deployment = by_kind()["Deployment"]["spec"]["template"]["spec"]
    assert str(deployment["securityContext"]["runAsUser"]) == user
    runs = " ".join(value for name, value in instructions if name == "RUN")
    assert "[kubernetes]" in runs  # the client the scheduler needs
    assert any(name == "COPY" and value.endswith("/opt/dagctl/dags") for name, value in instructions)
    assert "DAGCTL_DAGS=/opt/dagctl/dags" in last["ENV"]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
