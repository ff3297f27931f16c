"""
description: Read the list of the items' outputs
inputs: [checksum.sh]
"""

from __future__ import annotations

from typing import Any


def run(context: dict[str, Any]) -> dict[str, Any]:
    results = context["outputs"]["checksum.sh"]["results"]
    print(f"{len(results)} files checksummed: {', '.join(r['file'] for r in results)}")
    return {"files": len(results)}
