"""
description: Read list_files.sh's outputs and publish a small report
inputs: [list_files.sh]
"""

from __future__ import annotations

from typing import Any


def run(context: dict[str, Any]) -> dict[str, Any]:
    listed = context["outputs"]["list_files.sh"]
    count = int(listed["count"])
    print(f"{count} files in {listed['folder']}")
    # A returned dict is this task's outputs (JSON types are kept).
    return {"count": count, "many": count > 20}
