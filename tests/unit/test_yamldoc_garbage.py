"""Loading DAGs leaves no cyclic garbage: a scheduler keeps thousands of DAGs alive, so
every full pass of the garbage collector rescans all of them, and garbage that only a
pass can free makes those passes come every few hundred DAGs loaded."""

from __future__ import annotations

import gc
from pathlib import Path

from dagctl.dags.tree import load_tree

WORKFLOW = """\
description: A DAG.
schedule: "5 1 * * *"
params:
  limit: {type: integer, default: 10, minimum: 1}
tags: [a, b]
"""


def test_loading_a_tree_leaves_nothing_for_the_garbage_collector(tmp_path: Path) -> None:
    for index in range(3):
        dag = tmp_path / "dags" / f"d{index}"
        dag.mkdir(parents=True)
        (dag / "workflow.yaml").write_text(WORKFLOW)
        (dag / "a.sh").write_text("# description: first\n# timeout: 5m\necho a\n")
        (dag / "b.yaml").write_text("type: no_op\ninputs: [a.sh]\nretry_delay: 30s\n")
        (dag / "c.py").write_text('"""\ninputs: [b.yaml]\n"""\n\n\ndef run(context):\n    return 1\n')
    load_tree(tmp_path / "dags")  # imports and caches settle first
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        tree = load_tree(tmp_path / "dags")
        gc.collect()
        leftovers = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert len(tree.dags) == 3, tree.problems
    assert leftovers == []
