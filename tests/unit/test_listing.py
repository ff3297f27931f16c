"""The `list` summaries a scheduler writes: only what changed, however often it syncs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dagctl.dags.model import BrokenDag, Dag, DagTree, Problem, RootConfig
from dagctl.scheduling.listing import ListingSummaries

NOW = datetime(2024, 6, 2, 12, 0)


class Recorder:
    """Stands for the store: what each write of summaries changed."""

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    def record_summaries(
        self, changed: Mapping[str, tuple[str, str]], removed: Collection[str], now: datetime
    ) -> None:
        self.writes.append({name: json.loads(text)["description"] for name, (_, text) in changed.items()})


def tree(dags: list[Dag], broken: tuple[BrokenDag, ...] = ()) -> DagTree:
    return DagTree(
        root=Path("/dags"),
        config=RootConfig(),
        dags=MappingProxyType({d.name: d for d in dags}),
        broken=MappingProxyType({b.name: b for b in broken}),
        problems=(),
    )


def test_a_summary_is_written_again_only_when_its_dag_was_loaded_again_or_broke() -> None:
    store = Recorder()
    listing = ListingSummaries(store)  # type: ignore[arg-type]
    a = Dag(name="a", folder="/dags/a", description="A", tasks={}, fingerprint="f")
    b = Dag(name="b", folder="/dags/b", description="B", tasks={}, fingerprint="f")
    stamps = {"a": "s1", "b": "s1"}
    listing.write(tree([a, b]), stamps, NOW)
    listing.write(tree([a, b]), stamps, NOW)  # the same DAG objects: nothing to write
    edited = dataclasses.replace(a, description="A2")  # its files changed, its stat did not
    listing.write(tree([edited, b]), stamps, NOW)
    gone_bad = BrokenDag("b", Path("/dags/b"), (Problem(path="b/x.sh", line=1, message="bad"),))
    listing.write(tree([edited], (gone_bad,)), stamps, NOW)
    listing.write(tree([edited], (gone_bad,)), stamps, NOW)  # the same reason: nothing
    assert store.writes == [{"a": "A", "b": "B"}, {"a": "A2"}, {"b": None}]
