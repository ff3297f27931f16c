"""What a pod's status says, read from its JSON: pure functions, no client.

The shapes are those of a real API server: `status.phase`, `status.reason` (Evicted,
NodeLost), `status.conditions`, and the task container's `state` (waiting with a
reason such as ContainerCreating or ErrImagePull, running, terminated).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dagctl.managers.kubepod import CONTAINER

# Waiting reasons of a container that will not start by itself.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status  # type: ignore[no-any-return]
    return {}


def stuck_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a Pending pod will not start by itself (image pull, unschedulable), or None."""
    status = pod.get("status") or {}
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            message = waiting.get("message")
            return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            message = condition.get("message")
            return f"Unschedulable: {message}" if message else "Unschedulable"
    return None


def pending_reason(pod: Mapping[str, Any]) -> str:
    """What a Pending pod is waiting for, for the pending-timeout error: the stuck reason
    if any, else the container's waiting reason (ContainerCreating: a volume that
    cannot mount, a CNI that never answers...), else "Pending"."""
    stuck = stuck_reason(pod)
    if stuck is not None:
        return stuck
    waiting = (container_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        message = waiting.get("message")
        return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
    return str((pod.get("status") or {}).get("phase") or "Pending")


def evicted(pod: Mapping[str, Any]) -> str | None:
    """The eviction message of an evicted pod (the kubelet under node pressure, or the
    API's eviction), else None. Its container then shows ContainerStatusUnknown or 137,
    which is not what the task did."""
    status = pod.get("status") or {}
    if status.get("reason") != "Evicted":
        return None
    return str(status.get("message") or "evicted")


def node_lost(pod: Mapping[str, Any]) -> str | None:
    """Why a pod that was running no longer reports (its node stopped talking to the
    API), else None: phase Unknown, reason NodeLost, or Ready False with a node reason."""
    status = pod.get("status") or {}
    if status.get("phase") == "Unknown" or status.get("reason") == "NodeLost":
        return str(status.get("message") or status.get("reason") or "the pod's node stopped reporting")
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Ready"
            and condition.get("status") == "False"
            and condition.get("reason") in ("NodeLost", "NodeNotReady")
        ):
            return str(condition.get("message") or condition["reason"])
    return None


def failure(pod: Mapping[str, Any]) -> tuple[int | None, str]:
    """Exit code and error of a Failed pod."""
    eviction = evicted(pod)
    if eviction is not None:
        return None, f"the pod was evicted: {eviction}"
    container = container_status(pod)
    terminated = (container.get("state") or {}).get("terminated") or (container.get("lastState") or {}).get(
        "terminated"
    )
    if terminated and terminated.get("exitCode") is not None:
        code = int(terminated["exitCode"])
        reason = terminated.get("reason")
        error = f"exit code {code}"
        if reason and reason not in ("Error", "Completed"):
            error += f" ({reason})"
        return code, error
    status = pod.get("status") or {}
    reason, message = status.get("reason"), status.get("message")
    detail = ": ".join(str(p) for p in (reason, message) if p)
    return None, f"the pod failed: {detail}" if detail else "the pod failed"


def seconds_since(timestamp: Any) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (datetime.now(timezone.utc) - when).total_seconds())


def seconds_text(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0")
