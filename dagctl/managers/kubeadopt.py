"""The kubernetes manager's adoption side (`dagctl.managers.base.AdoptingManager`): the
pods of this installation that no scheduler watches any more, found by label in the
namespaces the DAGs use, and what is left of attempts deleted once recorded (failed
pods kept when their task says `kube_keep_failed_pods`). A mixin of KubernetesManager.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagctl.dags.model import Dag
from dagctl.managers.kubepod import (
    LABEL_DAG,
    LABEL_INSTANCE,
    LABEL_TASK,
    LABEL_TASK_RUN,
    MANAGED_BY,
    PodPlace,
    in_cluster_for,
    instance_label,
    keep_failed_pods,
    namespace_for,
)

log = logging.getLogger("dagctl.kubernetes")


class PodAdoption:
    if TYPE_CHECKING:
        owner: str
        instance: str
        _pods: dict[int, Any]
        _doomed: dict[int, PodPlace]
        _foreign: dict[int, PodPlace]
        _ended: dict[int, PodPlace]
        _kept: set[int]
        _places: dict[str, tuple[str, frozenset[tuple[bool, str]]]]

        def _list(self, in_cluster: bool, namespace: str, selector: str) -> list[dict[str, Any]] | None: ...

        def _delete(self, key: int, place: PodPlace) -> None: ...

    def bind(self, owner: str, installation: str) -> None:
        """`installation`: the state database's installation id (store/installation.py)."""
        self.owner = owner
        self.instance = instance_label(installation)

    def found(self, dags: Mapping[str, Dag]) -> Sequence[int]:
        """Pods of this installation, in the namespaces the DAGs use, that this manager
        is not watching (ended ones it reported included: the store knows whether their
        outcome was recorded). Pods being deleted are not news."""
        places: set[tuple[bool, str]] = {(p.place.in_cluster, p.place.namespace) for p in self._pods.values()}
        for dag in dags.values():
            places |= self._dag_places(dag)
        # Ended pods are included: if the scheduler could not record them (another one
        # adopted the attempt meanwhile), it never discards them; the store decides.
        known = self._pods.keys() | self._doomed.keys()
        foreign: dict[int, PodPlace] = {}
        selector = f"{MANAGED_BY}=dagctl,{LABEL_INSTANCE}={self.instance}"
        for in_cluster, namespace in sorted(places):
            for item in self._list(in_cluster, namespace, selector) or []:
                metadata = item.get("metadata") or {}
                if metadata.get("deletionTimestamp"):
                    continue
                try:
                    key = int((metadata.get("labels") or {}).get(LABEL_TASK_RUN, ""))
                except ValueError:
                    continue
                if key not in known and metadata.get("name"):
                    foreign[key] = PodPlace(in_cluster, namespace, str(metadata["name"]))
                    if (item.get("status") or {}).get("phase") == "Failed" and self._keeps(dags, metadata):
                        self._kept.add(key)
        self._foreign = foreign
        return sorted(foreign)

    @staticmethod
    def _keeps(dags: Mapping[str, Dag], metadata: Mapping[str, Any]) -> bool:
        """Whether a found pod's task keeps its failed pods (its exact names are in the
        pod's annotations)."""
        annotations = metadata.get("annotations") or {}
        dag = dags.get(str(annotations.get(LABEL_DAG)))
        task = dag.tasks.get(str(annotations.get(LABEL_TASK))) if dag is not None else None
        return task is not None and keep_failed_pods(dag.worker_config_for(task))  # type: ignore[union-attr]

    def discard(self, task_run_ids: Sequence[int]) -> None:
        for key in task_run_ids:
            place = self._ended.pop(key, None) or self._foreign.pop(key, None)
            if key in self._kept:
                self._kept.discard(key)
                log.info(
                    "keeping failed pod %s/%s (kube_keep_failed_pods)",
                    place and place.namespace,
                    place and place.name,
                )
                continue
            if place is not None:
                self._delete(key, place)

    def _dag_places(self, dag: Dag) -> frozenset[tuple[bool, str]]:
        """Where the DAG's pods go, computed once per definition (fingerprint)."""
        cached = self._places.get(dag.name)
        if cached is None or cached[0] != dag.fingerprint:
            places = frozenset(
                (in_cluster_for(config), namespace_for(config))
                for config in (dag.worker_config_for(t) for t in dag.tasks.values() if t.type != "no_op")
            )
            cached = self._places[dag.name] = (dag.fingerprint, places)
        return cached[1]
