"""`dagctl validate --manager kubernetes`: build every task's pod as an attempt would,
and report what a cluster would refuse, one problem per task at its file and line,
with the worker_config key to fix and where that key is set."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagctl.dags.model import Dag, Problem, Task
from dagctl.execution.attempt import Attempt, TaskContext
from dagctl.managers.kubepod import NO_IMAGE, NO_IMAGE_HINT, PodSpecError, pod_manifest
from dagctl.managers.kubevalidate import Cause, pod_causes

ROOT_CONFIG_FILE = "dagctl.yaml"

# Which worker_config key makes which part of the pod (the longest prefix wins).
_FIELD_KEYS = (
    ("metadata.namespace", "kube_namespace"),
    ("metadata.labels", "kube_labels"),
    ("metadata.annotations", "kube_annotations"),
    ("spec.serviceAccountName", "kube_service_account_name"),
    ("spec.priorityClassName", "kube_priority_class"),
    ("spec.nodeSelector", "kube_node_selector"),
    ("spec.tolerations", "kube_tolerations"),
    ("spec.affinity", "kube_affinity"),
    ("spec.securityContext", "kube_security_context"),
    ("spec.imagePullSecrets", "kube_image_pull_secrets"),
    ("spec.volumes", "kube_volumes"),
    ("spec.containers[0].env", "kube_env"),
    ("spec.containers[0].envFrom", "kube_env_from"),
    ("spec.containers[0].volumeMounts", "kube_volume_mounts"),
    ("spec.containers[0].securityContext", "kube_container_security_context"),
    ("spec.containers[0].imagePullPolicy", "kube_image_pull_policy"),
    ("spec.containers[0].resources.requests", "kube_requests"),
    ("spec.containers[0].resources.limits", "kube_limits"),
)


def config_key(field: str) -> str | None:
    """The worker_config key behind a pod field, e.g. spec.tolerations[0].operator ->
    kube_tolerations; None for a field dagctl makes itself (or a pod template's)."""
    found = [(len(prefix), key) for prefix, key in _FIELD_KEYS if field.startswith(prefix)]
    return max(found)[1] if found else None


def _resource_keys(field: str, config: Mapping[str, Any]) -> str:
    """kube_requests_memory, or kube_requests (a map), whichever the config uses."""
    kind = "requests" if ".requests" in field else "limits"
    resource = field.rpartition("[")[2].rstrip("]")
    flat = f"kube_{kind}_{resource}"
    return flat if flat in config else f"kube_{kind}"


def where_set(dag: Dag, task: Task, key: str, shown: Any) -> str:
    """Where `key` of the task's merged worker_config comes from, as `file:line`."""
    if key in task.worker_config:
        return f"{shown(task.path)}:{task.line}"
    from dagctl.dags.yamldoc import line_of_pointer

    for path in (dag.path / "workflow.yaml", dag.path.parent / ROOT_CONFIG_FILE):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        config = data.get("worker_config") if isinstance(data, dict) else None
        if isinstance(config, dict) and key in config:
            line = line_of_pointer(text, f"/worker_config/{key}")
            return f"{shown(path)}:{line}" if line else str(shown(path))
    return "worker_config"


def sample_attempt(dag: Dag, task: Task) -> Attempt:
    """An attempt of `task` with the params' defaults, as a trigger without -p makes."""
    params = {name: spec.default for name, spec in dag.params.items() if spec.has_default}
    context = TaskContext(
        dag.name,
        task.name,
        1,
        1,
        datetime.now(timezone.utc).replace(tzinfo=None),
        params,
        secret_params=dag.secret_params,
        timezone=dag.timezone,
    )
    return Attempt(1, dag, task, context)


def task_problem(dag: Dag, task: Task, cause: Cause | str, shown: Any) -> Problem:
    config = dag.worker_config_for(task)
    if isinstance(cause, str):
        message, hint, key = cause, None, None
    else:
        key = config_key(cause.field)
        if key in ("kube_requests", "kube_limits"):
            key = _resource_keys(cause.field, config)
        message = f"kubernetes would refuse the pod: {cause.render()}"
        where = where_set(dag, task, key, shown) if key else None
        hint = f"fix worker_config.{key} ({where})" if key else None
        if where in (None, "worker_config") and config.get("kube_pod_template"):
            hint = f"fix the pod template {config['kube_pod_template']} (worker_config.kube_pod_template)"
    return Problem(
        path=shown(task.path),
        line=task.line,
        message=message,
        hint=hint,
        pointer=f"/worker_config/{key}" if key else None,
        dag=dag.name,
    )


def check_dags(dags: Mapping[str, Dag], root: Path) -> list[Problem]:
    """What `dagctl validate --manager kubernetes` adds: every task that would start a
    pod gets its pod built and checked (kube_image set; the official schema; the API
    server's format rules). One problem per task and cause, at the task's file:line."""
    problems: list[Problem] = []
    # Paths as the loader shows them: relative to the folder above the DAGs root.
    base = root.parent if (root / "workflow.yaml").is_file() else root

    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(base.parent))
        except ValueError:
            return str(path)

    # The schema check costs ~15 ms a pod; pods of one worker_config have one shape.
    shapes_ok: set[str] = set()
    for dag in dags.values():
        for task in dag.tasks.values():
            if task.type == "no_op":
                continue
            if not dag.worker_config_for(task).get("kube_image"):
                problems.append(
                    Problem(
                        path=shown(task.path),
                        line=task.line,
                        message=NO_IMAGE,
                        hint=NO_IMAGE_HINT,
                        pointer="/worker_config/kube_image",
                        dag=dag.name,
                    )
                )
                continue
            try:
                pod = pod_manifest(sample_attempt(dag, task), owner="validate", instance="validate")
            except PodSpecError as exc:
                problems.append(task_problem(dag, task, str(exc), shown))
                continue
            shape = json.dumps(dict(dag.worker_config_for(task)), sort_keys=True, default=str)
            causes = pod_causes(pod, schema=shape not in shapes_ok)
            if not causes:
                shapes_ok.add(shape)
            problems.extend(task_problem(dag, task, cause, shown) for cause in causes)
    return problems
