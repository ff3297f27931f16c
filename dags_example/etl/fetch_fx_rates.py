"""
description: >-
  Fetch the EUR reference FX rates for the day (fixed demo values, no network)
  into fx_rates.json in the run's work directory.
inputs: []
parameters: [date]
timeout: 30s
"""

import json
import os
import re
import tempfile

# Units of currency per 1 EUR, as published by a central bank.
RATES = {"EUR": 1.0, "USD": 1.0835, "GBP": 0.8512, "CHF": 0.9764}


def work_dir(run_id: str) -> str:
    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    run_key = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return os.path.join(base, "dagctl-example", run_key)


def run(context):
    date = context["params"]["date"]
    out_dir = work_dir(context["run_id"])
    os.makedirs(out_dir, exist_ok=True)

    payload = {"base": "EUR", "date": date, "rates": RATES}
    path = os.path.join(out_dir, "fx_rates.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    print(f"wrote {len(RATES)} FX rates for {date} to {path}")
