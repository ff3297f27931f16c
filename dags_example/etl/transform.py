"""
description: >-
  Fan-in of the order load and the FX fetch. Stores the day's FX rates in
  warehouse.fx_rates and rebuilds warehouse.fct_orders for the date with every
  amount converted to EUR. Fails if an order's currency has no rate.
inputs: [load_orders.py, fetch_fx_rates.py]
parameters: [date]
timeout: 1m
"""

import json
import os
import re
import tempfile
from contextlib import closing

import warehouse


def work_dir(run_id: str) -> str:
    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    run_key = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return os.path.join(base, "dagctl-example", run_key)


def run(context):
    date = context["params"]["date"]
    with open(os.path.join(work_dir(context["run_id"]), "fx_rates.json"), encoding="utf-8") as fh:
        fx = json.load(fh)
    if fx.get("base") != "EUR":
        raise ValueError(f"expected EUR-based rates, got base {fx.get('base')!r}")

    with closing(warehouse.connect()) as conn, conn:
        conn.execute("DELETE FROM fx_rates WHERE rate_date = ?", (date,))
        conn.executemany(
            "INSERT INTO fx_rates (rate_date, currency, rate_to_eur) VALUES (?, ?, ?)",
            [(date, cur, rate) for cur, rate in sorted(fx["rates"].items())],
        )
        missing = conn.execute(
            "SELECT DISTINCT o.currency FROM raw_orders o"
            " LEFT JOIN fx_rates r ON r.rate_date = o.order_date AND r.currency = o.currency"
            " WHERE o.order_date = ? AND r.currency IS NULL",
            (date,),
        ).fetchall()
        if missing:
            raise ValueError(f"no FX rate for {date}: {', '.join(c for (c,) in missing)}")

        conn.execute("DELETE FROM fct_orders WHERE order_date = ?", (date,))
        cur = conn.execute(
            "INSERT INTO fct_orders (order_id, order_date, customer, currency, amount, amount_eur)"
            " SELECT o.order_id, o.order_date, o.customer, o.currency, o.amount,"
            "        ROUND(o.amount / r.rate_to_eur, 2)"
            " FROM raw_orders o"
            " JOIN fx_rates r ON r.rate_date = o.order_date AND r.currency = o.currency"
            " WHERE o.order_date = ?",
            (date,),
        )
    print(f"transformed {cur.rowcount} orders for {date} to EUR")
