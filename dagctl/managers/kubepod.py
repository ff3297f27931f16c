"""The pure half of the kubernetes manager: the Pod object of an attempt, the names and
labels it carries, what a pod's status means, and the `validate --manager kubernetes`
check. No I/O and no kubernetes client here, so all of it is testable (and importable)
without a cluster or the client installed.

Labels on every pod (values sanitised to label rules; exact names are annotations):
`app.kubernetes.io/managed-by: dagctl`, `dagctl.io/instance` (the state database's
installation id), `dagctl.io/scheduler` (the scheduler that created
it), `dagctl.io/dag`, `dagctl.io/task`, `dagctl.io/run-id`, `dagctl.io/attempt` and
`dagctl.io/task-run-id` (what the manager selects on).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagctl.execution.attempt import Attempt
from dagctl.execution.environment import PrepareError, task_environment
from dagctl.managers.kubetemplate import PodTemplateError, defaults, load_template, merge

MISSING_CLIENT = "the kubernetes manager needs the kubernetes client: pip install 'dagctl[kubernetes]'"
NO_IMAGE = "worker_config.kube_image is not set: the kubernetes manager needs the image to run the task in"
NO_IMAGE_HINT = "set kube_image under worker_config in dagctl.yaml, workflow.yaml or the task header"
SHUTDOWN_KILLED = "killed at scheduler shutdown"
SHUTDOWN_NOT_STARTED = "not started: the scheduler shut down"

DEFAULT_NAMESPACE = "default"
DEFAULT_PENDING_TIMEOUT_S = 300.0
CONTAINER = "task"
SELECTOR_CHUNK = 100  # task run ids per `in (...)` label selector

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INSTANCE = "dagctl.io/instance"  # the installation (state database) the pod belongs to
LABEL_SCHEDULER = "dagctl.io/scheduler"  # the scheduler that created it
LABEL_DAG = "dagctl.io/dag"
LABEL_TASK = "dagctl.io/task"
LABEL_RUN = "dagctl.io/run-id"
LABEL_ATTEMPT = "dagctl.io/attempt"
LABEL_TASK_RUN = "dagctl.io/task-run-id"

_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_BAD = re.compile(r"[^a-z0-9]+")


class PodSpecError(ValueError):
    """The worker_config cannot make a pod; the attempt fails with this message."""


# ---------------------------------------------------------------- pure parts


def label_value(text: str) -> str:
    """`text` as a valid label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both
    ends (exact names are in the pod's annotations)."""
    return _LABEL_BAD.sub("_", text)[:63].strip("._-")


def instance_label(installation: str) -> str:
    """The `dagctl.io/instance` label value: the state database's installation id (a
    random value stored by its first migration, store/installation.py), so that every
    scheduler of one database, whatever URL it reaches it by, recognises the same pods,
    and two installations sharing a namespace never touch each other's."""
    return label_value(installation) or "standalone"


def pod_name(instance: str, dag: str, task: str, run_id: int | None, attempt: int) -> str:
    """A DNS-1123 label of at most 63 characters: `dagctl-<dag>-<task>-<run>-<attempt>-<hash>`,
    the readable part shortened as needed; the hash covers the exact names and the
    state database, so the name is unique and the same for the same attempt."""
    key = "\0".join([instance, dag, task, str(run_id), str(attempt)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    tail = f"-{run_id if run_id is not None else 'x'}-{attempt}-{digest}"
    slug = _NAME_BAD.sub("-", f"{dag}-{task}".lower()).strip("-")
    slug = slug[: max(0, 63 - len("dagctl-") - len(tail))].strip("-")
    return f"dagctl-{slug}{tail}" if slug else f"dagctl{tail}"


def _plain(value: Any) -> Any:
    """YAML-loaded (possibly read-only) mappings and lists as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class PodPlace:
    """Where an attempt's pod lives: which API configuration, namespace and name."""

    in_cluster: bool
    namespace: str
    name: str


def in_cluster_default() -> bool:
    """Inside a pod, Kubernetes sets KUBERNETES_SERVICE_HOST."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def in_cluster_for(config: Mapping[str, Any]) -> bool:
    value = config.get("kube_in_cluster")
    return in_cluster_default() if value is None else bool(value)


def namespace_for(config: Mapping[str, Any]) -> str:
    return str(config.get("kube_namespace") or DEFAULT_NAMESPACE)


def pending_timeout(config: Mapping[str, Any]) -> float:
    value = config.get("kube_pending_timeout")
    if value is None:
        return DEFAULT_PENDING_TIMEOUT_S
    from dagctl.dags.sources import parse_duration

    try:
        return max(0.0, parse_duration(value))
    except (ValueError, KeyError):
        raise PodSpecError(f"worker_config.kube_pending_timeout: {value!r} is not a duration") from None


def keep_failed_pods(config: Mapping[str, Any]) -> bool:
    return config.get("kube_keep_failed_pods") is True


def pod_env(config: Mapping[str, Any], attempt: Attempt) -> list[dict[str, str]]:
    """kube_env, then each param by name, then the DAGCTL_* variables (later ones win),
    built by the same function as a local task's environment, with its name rules and
    size limit. A param whose name no environment variable can have still arrives in
    DAGCTL_PARAMS."""
    try:
        built = task_environment(
            attempt.dag,
            attempt.task,
            attempt.context,
            base={},
            configured=config.get("kube_env"),
            configured_key="worker_config.kube_env",
            check_parameters=False,
            with_connections=False,
        )
    except PrepareError as exc:
        raise PodSpecError(exc.message) from None
    return [{"name": name, "value": value} for name, value in built.variables.items()]


def _resources(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """kube_requests / kube_limits (any resource name: nvidia.com/gpu, ephemeral-storage),
    then kube_requests_cpu and the like over them."""
    resources: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        named = config.get(f"kube_{kind}") or {}
        if not isinstance(named, Mapping):
            raise PodSpecError(f"worker_config.kube_{kind} must be a mapping of resource name: quantity")
        for resource, value in named.items():
            resources.setdefault(kind, {})[str(resource)] = str(value)
        for resource in ("cpu", "memory"):
            value = config.get(f"kube_{kind}_{resource}")
            if value is not None and value != "":
                resources.setdefault(kind, {})[resource] = str(value)
    return resources


def _env_from(config: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """kube_env_from: whole Secrets and ConfigMaps (`{secretRef: {name: s}}`,
    `{configMapRef: {name: c}, prefix: P_}`, as in a container's envFrom) and single
    keys (`{name: VAR, valueFrom: {secretKeyRef: {name: s, key: k}}}`, as in its env).
    Returns (envFrom, env)."""
    entries = config.get("kube_env_from") or []
    if not isinstance(entries, (list, tuple)):
        raise PodSpecError(
            "worker_config.kube_env_from must be a list (secretRef, configMapRef or valueFrom items)"
        )
    whole: list[Any] = []
    single: list[Any] = []
    for entry in entries:
        if isinstance(entry, Mapping) and ("secretRef" in entry or "configMapRef" in entry):
            whole.append(_plain(entry))
        elif isinstance(entry, Mapping) and "name" in entry and "valueFrom" in entry:
            single.append(_plain(entry))
        else:
            raise PodSpecError(
                f"worker_config.kube_env_from: {entry!r} is neither {{secretRef: {{name: ...}}}},"
                " {configMapRef: {name: ...}} nor"
                " {name: VAR, valueFrom: {secretKeyRef: {name: ..., key: ...}}}"
            )
    return whole, single


def _list_of(config: Mapping[str, Any], key: str) -> list[Any]:
    value = config.get(key) or []
    if not isinstance(value, (list, tuple)):
        raise PodSpecError(f"worker_config.{key} must be a list")
    return list(_plain(value))


def _mapping_of(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise PodSpecError(f"worker_config.{key} must be a mapping")
    return dict(_plain(value))


def _user_keys(config: Mapping[str, Any], container: dict[str, Any], spec: dict[str, Any]) -> None:
    """The first-class keys for the common cases, each onto its field of the pod."""
    env_from, single = _env_from(config)
    if env_from:
        container["envFrom"] = env_from
    if single:
        # First: kube_env, the params and the DAGCTL_* variables win on a name clash.
        container["env"] = [*single, *container["env"]]
    if config.get("kube_volume_mounts"):
        container["volumeMounts"] = _list_of(config, "kube_volume_mounts")
    if config.get("kube_image_pull_policy"):
        container["imagePullPolicy"] = str(config["kube_image_pull_policy"])
    if config.get("kube_container_security_context"):
        container["securityContext"] = _mapping_of(config, "kube_container_security_context")
    if config.get("kube_volumes"):
        spec["volumes"] = _list_of(config, "kube_volumes")
    secrets = _list_of(config, "kube_image_pull_secrets")
    if secrets:
        spec["imagePullSecrets"] = [s if isinstance(s, dict) else {"name": str(s)} for s in secrets]
    if config.get("kube_affinity"):
        spec["affinity"] = _mapping_of(config, "kube_affinity")
    if config.get("kube_priority_class"):
        spec["priorityClassName"] = str(config["kube_priority_class"])


def pod_manifest(attempt: Attempt, *, owner: str, instance: str) -> dict[str, Any]:
    """The Pod object for one attempt, from the merged worker_config of its task, over
    the pod template if any, over the restricted defaults (kubetemplate.py).

    Raises PodSpecError when the configuration cannot make a pod (no kube_image, a NUL
    byte in a param, a kube_command that is not a list of strings...)."""
    dag, task, context = attempt.dag, attempt.task, attempt.context
    config = dag.worker_config_for(task)
    image = config.get("kube_image")
    if not isinstance(image, str) or not image.strip():
        raise PodSpecError(f"{NO_IMAGE} ({NO_IMAGE_HINT})")
    wrapper = config.get("kube_command") or []
    if not isinstance(wrapper, (list, tuple)) or not all(isinstance(a, str) for a in wrapper):
        raise PodSpecError("worker_config.kube_command must be a list of strings (a wrapper's argv)")
    args = ["run", dag.name, task.name]
    if context.run_id is not None:
        args += ["--run-id", str(context.run_id)]
    args += ["--attempt", str(context.attempt)]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image.strip(),
        "command": [*wrapper, "dagctl"],
        "args": args,
        "env": pod_env(config, attempt),
    }
    resources = _resources(config)
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if config.get("kube_service_account_name"):
        spec["serviceAccountName"] = str(config["kube_service_account_name"])
    if config.get("kube_node_selector"):
        spec["nodeSelector"] = {str(k): str(v) for k, v in config["kube_node_selector"].items()}
    if config.get("kube_tolerations"):
        spec["tolerations"] = _plain(config["kube_tolerations"])
    if config.get("kube_security_context"):
        spec["securityContext"] = _mapping_of(config, "kube_security_context")
    _user_keys(config, container, spec)
    run = "" if context.run_id is None else str(context.run_id)
    own = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(instance, dag.name, task.name, context.run_id, context.attempt),
            "namespace": namespace_for(config),
            # The user's labels and annotations first: dagctl's own cannot be overridden.
            "labels": {
                **{str(k): str(v) for k, v in _mapping_of(config, "kube_labels").items()},
                MANAGED_BY: "dagctl",
                LABEL_INSTANCE: instance,
                LABEL_SCHEDULER: label_value(owner),
                LABEL_DAG: label_value(dag.name),
                LABEL_TASK: label_value(task.name),
                LABEL_RUN: run,
                LABEL_ATTEMPT: str(context.attempt),
                LABEL_TASK_RUN: str(attempt.task_run_id),
            },
            "annotations": {
                **{str(k): str(v) for k, v in _mapping_of(config, "kube_annotations").items()},
                LABEL_DAG: dag.name,
                LABEL_TASK: task.name,
            },
        },
        "spec": spec,
    }
    base = defaults(CONTAINER)
    if config.get("kube_pod_template") is not None:
        # Relative to the folder of dagctl.yaml: the DAGs root, the DAG folder's parent.
        try:
            base = merge(base, load_template(config["kube_pod_template"], dag.path.parent))
        except PodTemplateError as exc:
            raise PodSpecError(str(exc)) from None
    manifest: dict[str, Any] = merge(base, own)
    # The task's container first, whatever the template's order: tools and messages
    # (`kubectl logs`, `spec.containers[0]...`) find it there.
    manifest["spec"]["containers"].sort(key=lambda c: c.get("name") != CONTAINER)
    return manifest
