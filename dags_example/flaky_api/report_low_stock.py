"""
description: >-
  Parse inventory.json from the fetch task and report every item whose stock
  is below low_stock_threshold. Writes low_stock.json next to the input.
inputs: [fetch_inventory.sh]
parameters: [low_stock_threshold]
timeout: 30s
retries: 0
"""

import json
import os
import re
import tempfile


def work_dir(run_id: str) -> str:
    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    run_key = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return os.path.join(base, "dagctl-example", run_key)


def run(context):
    threshold = int(context["params"]["low_stock_threshold"])
    out_dir = work_dir(context["run_id"])
    with open(os.path.join(out_dir, "inventory.json"), encoding="utf-8") as fh:
        items = json.load(fh)["items"]
    if not items:
        raise ValueError("partner API returned an empty inventory")

    low = sorted((i for i in items if i["on_hand"] < threshold), key=lambda i: i["on_hand"])
    for item in low:
        print(f"LOW STOCK {item['sku']:<8} {item['name']:<12} on_hand={item['on_hand']}")
    print(f"{len(low)} of {len(items)} items below {threshold} units")

    path = os.path.join(out_dir, "low_stock.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"threshold": threshold, "items": low}, fh, indent=2)
