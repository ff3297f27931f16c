"""`kube_pod_template` and the restricted defaults: the layers a task's Pod is made of.

From bottom to top, each merged over the one below:

1. dagctl's defaults, which pass the "restricted" Pod Security Standard: the pod runs
   as non-root with the RuntimeDefault seccomp profile, the task container without
   privilege escalation and with every capability dropped;
2. the user's pod template (`kube_pod_template`: a Pod YAML file, its path relative to
   the folder of dagctl.yaml), for anything Kubernetes supports that has no key here;
3. what dagctl makes (name, labels, the `task` container's image, command, env...) and
   the first-class `kube_*` keys.

Merging is strategic-merge style: mappings merge key by key; lists of named things
(containers, initContainers, volumes, env, volumeMounts, imagePullSecrets) merge item
by item on `name`; any other value from above replaces the one below. So a template's
sidecar container stays, and its `task` container gets dagctl's fields on top.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAMED_LISTS = frozenset(
    {
        "containers",
        "initContainers",
        "ephemeralContainers",
        "volumes",
        "env",
        "volumeMounts",
        "imagePullSecrets",
    }
)

RESTRICTED_POD_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}

_cache: dict[Path, tuple[int, dict[str, Any]]] = {}


class PodTemplateError(ValueError):
    """The pod template cannot be used; the message names the key and the file."""


def merge(lower: Any, upper: Any, key: str | None = None) -> Any:
    """`upper` over `lower`, strategic-merge style (see the module docstring)."""
    if isinstance(lower, Mapping) and isinstance(upper, Mapping):
        merged = dict(lower)
        for name, value in upper.items():
            merged[name] = merge(merged[name], value, name) if name in merged else copy.deepcopy(value)
        return merged
    if key in NAMED_LISTS and isinstance(lower, list) and isinstance(upper, list):
        merged_list = [copy.deepcopy(item) for item in lower]
        index = {item.get("name"): i for i, item in enumerate(merged_list) if isinstance(item, Mapping)}
        for item in upper:
            name = item.get("name") if isinstance(item, Mapping) else None
            if name is not None and name in index:
                merged_list[index[name]] = merge(merged_list[index[name]], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(upper)


def defaults(container: str) -> dict[str, Any]:
    """The bottom layer: what the restricted Pod Security Standard asks for."""
    return {
        "spec": {
            "securityContext": copy.deepcopy(RESTRICTED_POD_SECURITY),
            "containers": [
                {"name": container, "securityContext": copy.deepcopy(RESTRICTED_CONTAINER_SECURITY)}
            ],
        }
    }


def load_template(value: Any, config_dir: Path) -> dict[str, Any]:
    """The Pod of `kube_pod_template` (a path relative to `config_dir`, the folder of
    dagctl.yaml), read once per file version. Raises PodTemplateError naming the key."""

    if not isinstance(value, str) or not value.strip():
        raise PodTemplateError("worker_config.kube_pod_template must be the path of a Pod YAML file")
    path = (config_dir / value).resolve()
    import yaml

    try:
        stamp = path.stat().st_mtime_ns
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return copy.deepcopy(cached[1])
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PodTemplateError(
            f"worker_config.kube_pod_template: cannot read {value}: {exc.strerror or exc}"
            f" (the path is relative to {config_dir})"
        ) from None
    except yaml.YAMLError as exc:
        raise PodTemplateError(
            f"worker_config.kube_pod_template: {value} is not valid YAML: {' '.join(str(exc).split())}"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("kind", "Pod") != "Pod"
        or not isinstance(data.get("spec", {}), dict)
    ):
        raise PodTemplateError(
            f"worker_config.kube_pod_template: {value} must be a Pod (kind: Pod, with a spec)"
        )
    template = {k: v for k, v in data.items() if k in ("metadata", "spec")}
    metadata = template.get("metadata") or {}
    # Name and namespace are the attempt's: a template's would make every pod collide.
    template["metadata"] = {k: v for k, v in metadata.items() if k in ("labels", "annotations")}
    _cache[path] = (stamp, template)
    return copy.deepcopy(template)
