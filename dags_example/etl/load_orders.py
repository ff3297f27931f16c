"""
description: >-
  Validate orders.csv and load it into warehouse.raw_orders, replacing the
  rows already loaded for the same date.
inputs: [create_schema.sql, extract_orders.sh]
parameters: [date]
timeout: 1m
"""

import csv
import os
import re
import tempfile
from contextlib import closing
from decimal import Decimal, InvalidOperation

import warehouse

COLUMNS = ["order_id", "order_date", "customer", "currency", "amount"]


def work_dir(run_id: str) -> str:
    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    run_key = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return os.path.join(base, "dagctl-example", run_key)


def read_orders(path: str, date: str) -> list[tuple[str, str, str, str, str]]:
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != COLUMNS:
            raise ValueError(f"{path}: unexpected header {reader.fieldnames}")
        for line_no, rec in enumerate(reader, start=2):
            if rec["order_date"] != date:
                raise ValueError(f"{path}:{line_no}: order_date {rec['order_date']} != {date}")
            try:
                amount = Decimal(rec["amount"])
            except InvalidOperation:
                raise ValueError(f"{path}:{line_no}: bad amount {rec['amount']!r}") from None
            if amount <= 0:
                raise ValueError(f"{path}:{line_no}: amount must be positive")
            rows.append((rec["order_id"], date, rec["customer"], rec["currency"], str(amount)))
    return rows


def run(context):
    date = context["params"]["date"]
    rows = read_orders(os.path.join(work_dir(context["run_id"]), "orders.csv"), date)

    with closing(warehouse.connect()) as conn, conn:
        conn.execute("DELETE FROM raw_orders WHERE order_date = ?", (date,))
        conn.executemany(
            "INSERT INTO raw_orders (order_id, order_date, customer, currency, amount)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    print(f"loaded {len(rows)} orders for {date} into {warehouse.path()}")
