"""
description: >-
  Rank the region's products by revenue for report_date and write the top_n
  as a Markdown report (report.md) into the run's work directory. The sales
  figures are generated deterministically from region and date.
inputs: [print_params.sh]
parameters: [report_date, top_n, min_revenue, region]
timeout: 1m
"""

import hashlib
import os
import re
import tempfile

PRODUCTS = [
    "anvil",
    "bolt cutter",
    "cable ties",
    "drill",
    "extension cord",
    "file set",
    "glue gun",
    "hammer",
    "inspection lamp",
    "jigsaw",
    "knee pads",
    "ladder",
]


def work_dir(run_id: str) -> str:
    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    run_key = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return os.path.join(base, "dagctl-example", run_key)


def sales(region: str, date: str, product: str) -> tuple[int, float]:
    """Deterministic fake (units, revenue) for one product on one day."""
    digest = hashlib.sha256(f"{region}|{date}|{product}".encode()).digest()
    units = 1 + digest[0] % 60
    unit_price = 5 + int.from_bytes(digest[1:3], "big") % 9500 / 100
    return units, round(units * unit_price, 2)


def run(context):
    params = context["params"]
    date, region = str(params["report_date"]), str(params["region"])
    top_n, min_revenue = int(params["top_n"]), float(params["min_revenue"])

    ranked = sorted(((p, *sales(region, date, p)) for p in PRODUCTS), key=lambda r: (-r[2], r[0]))
    shown = [r for r in ranked if r[2] >= min_revenue][:top_n]
    total = sum(r[2] for r in ranked)

    lines = [
        f"# Daily sales report: {region.upper()}, {date}",
        "",
        f"Total revenue: {total:,.2f} USD across {len(PRODUCTS)} products.",
        "",
        "| # | Product | Units | Revenue (USD) |",
        "|---|---------|------:|--------------:|",
    ]
    lines += [f"| {i} | {p} | {u} | {rev:,.2f} |" for i, (p, u, rev) in enumerate(shown, 1)]
    if not shown:
        lines.append(f"| - | no product reached {min_revenue:,.2f} USD | | |")
    report = "\n".join(lines) + "\n"

    out_dir = work_dir(context["run_id"])
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(report)
    print(report)
    print(f"wrote {path}")
