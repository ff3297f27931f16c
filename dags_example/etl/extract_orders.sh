#!/usr/bin/env bash
# description: >-
#   Extract the day's orders from the (simulated) shop system into orders.csv
#   in the run's work directory. The data is generated deterministically from
#   the date, so a re-run produces the same file.
# inputs: []
# parameters: [date]
# timeout: 30s
set -euo pipefail

if [[ ! "${date:-}" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
    echo "param date must look like YYYY-MM-DD, got '${date:-}'" >&2
    exit 2
fi

run_key="${DAGCTL_RUN_ID//[^A-Za-z0-9._-]/_}"
workdir="${TMPDIR:-/tmp}/dagctl-example/${run_key}"
mkdir -p "$workdir"

customers=(acme globex initech umbrella hooli)
currencies=(EUR USD GBP CHF)
day="${date//-/}"
seed=$(( 10#$day % 9973 ))

tmp="$workdir/orders.csv.tmp"
{
    echo "order_id,order_date,customer,currency,amount"
    for (( i = 1; i <= 12; i++ )); do
        n=$(( (seed * 31 + i * 7919) % 100000 ))
        printf '%s-%03d,%s,%s,%s,%d.%02d\n' "$day" "$i" "$date" \
            "${customers[n % 5]}" "${currencies[n % 4]}" $(( 10 + n % 490 )) $(( n % 100 ))
    done
} > "$tmp"
mv -f "$tmp" "$workdir/orders.csv"

rows=$(( $(wc -l < "$workdir/orders.csv") - 1 ))
echo "extracted ${rows} orders for ${date} into ${workdir}/orders.csv"
