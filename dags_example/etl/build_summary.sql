/*
description: >-
  Rebuild warehouse.daily_sales_summary for the date from fct_orders
  (order count, revenue and average order value in EUR per customer).
inputs: [transform.py]
parameters: [date]
connection: warehouse
timeout: 1m
*/
DELETE FROM daily_sales_summary WHERE order_date = :date;

INSERT INTO daily_sales_summary (order_date, customer, order_count, revenue_eur, avg_order_eur)
SELECT order_date,
       customer,
       COUNT(*),
       ROUND(SUM(amount_eur), 2),
       ROUND(AVG(amount_eur), 2)
FROM fct_orders
WHERE order_date = :date
GROUP BY order_date, customer;
