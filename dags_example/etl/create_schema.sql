/*
description: Create the warehouse tables used by this DAG if they do not exist yet.
inputs: []
connection: warehouse
retries: 1
timeout: 30s
*/
CREATE TABLE IF NOT EXISTS raw_orders (
    order_id   TEXT PRIMARY KEY,
    order_date TEXT NOT NULL,
    customer   TEXT NOT NULL,
    currency   TEXT NOT NULL,
    amount     NUMERIC NOT NULL
);

CREATE TABLE IF NOT EXISTS fx_rates (
    rate_date   TEXT NOT NULL,
    currency    TEXT NOT NULL,
    rate_to_eur NUMERIC NOT NULL,
    PRIMARY KEY (rate_date, currency)
);

CREATE TABLE IF NOT EXISTS fct_orders (
    order_id   TEXT PRIMARY KEY,
    order_date TEXT NOT NULL,
    customer   TEXT NOT NULL,
    currency   TEXT NOT NULL,
    amount     NUMERIC NOT NULL,
    amount_eur NUMERIC NOT NULL
);

CREATE TABLE IF NOT EXISTS daily_sales_summary (
    order_date    TEXT NOT NULL,
    customer      TEXT NOT NULL,
    order_count   INTEGER NOT NULL,
    revenue_eur   NUMERIC NOT NULL,
    avg_order_eur NUMERIC NOT NULL,
    PRIMARY KEY (order_date, customer)
);

CREATE INDEX IF NOT EXISTS idx_raw_orders_date ON raw_orders (order_date);
CREATE INDEX IF NOT EXISTS idx_fct_orders_date ON fct_orders (order_date);
