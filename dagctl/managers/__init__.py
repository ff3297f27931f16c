"""Task managers: the built-in ones by name, plug-ins from the `dagctl.managers`
entry point group.

A plug-in entry point names a class (or any callable) taking `concurrency=` and
returning an object that implements `dagctl.managers.base.Manager`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from dagctl.dags.model import Dag, Problem
from dagctl.errors import UsageError
from dagctl.managers.base import Manager


def _worker(concurrency: int | None) -> Manager:
    from dagctl.managers.worker import WorkerManager

    return WorkerManager(concurrency=concurrency)


def _kubernetes(concurrency: int | None) -> Manager:
    # Raises a one-line UsageError when the kubernetes client is not installed.
    from dagctl.managers.kubeapi import require_client, require_cluster_configuration
    from dagctl.managers.kubernetes import KubernetesManager

    require_client()
    require_cluster_configuration()
    return KubernetesManager(concurrency=concurrency)


# Imported only when chosen, so naming a manager costs nothing until it is used.
BUILTIN_MANAGERS: dict[str, Callable[[int | None], Manager]] = {"worker": _worker, "kubernetes": _kubernetes}


def available_managers() -> list[str]:
    """Built-in names first, then installed plug-ins, alphabetically."""
    from dagctl.plugins import manager_names

    return [*BUILTIN_MANAGERS, *sorted(manager_names() - set(BUILTIN_MANAGERS))]


def get_manager(name: str, concurrency: int | None) -> Manager:
    """The manager called `name`, ready to launch. Raises UsageError for an unknown
    name (with a "did you mean" hint and the list of available ones) or a plug-in that
    cannot be loaded."""
    builtin = BUILTIN_MANAGERS.get(name)
    if builtin is not None:
        return builtin(concurrency)
    from dagctl.plugins import load_manager, manager_names

    if name not in manager_names():
        raise _unknown_manager(name)
    try:
        factory = load_manager(name)
        manager: Manager = factory(concurrency=concurrency)
    except Exception as exc:
        raise UsageError(f"cannot load the manager plug-in {name!r}: {exc}") from exc
    return manager


def _unknown_manager(name: str) -> UsageError:
    from dagctl.dags.hints import did_you_mean

    names = available_managers()
    close = did_you_mean(name, names)
    listing = f"available managers: {', '.join(names)}"
    return UsageError(f"unknown manager {name!r}", f"{close} {listing}" if close else listing)


def validation_problems(name: str, dags: Mapping[str, Dag], root: Path) -> list[Problem]:
    """What `dagctl validate --manager NAME` checks beyond the DAG format: the settings
    that manager needs (kubernetes: a kube_image for every task that starts a pod).
    Needs no plug-in or client to be importable; an unknown name is a UsageError."""
    if name == "kubernetes":
        from dagctl.managers.kubecheck import check_dags

        return check_dags(dags, root)
    if name not in BUILTIN_MANAGERS:
        from dagctl.plugins import manager_names

        if name not in manager_names():
            raise _unknown_manager(name)
    return []
