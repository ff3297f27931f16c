#!/usr/bin/env bash
# description: >-
#   Log the effective parameters of this run (taken from the environment)
#   and reject inconsistent combinations before any work is done.
# inputs: []
# parameters: [report_date, top_n, min_revenue, region, recipient, dry_run]
# timeout: 30s
set -euo pipefail

echo "dag=${DAGCTL_DAG:-?} task=${DAGCTL_TASK:-?} run=${DAGCTL_RUN_ID:-?} attempt=${DAGCTL_ATTEMPT:-?}"
echo "logical_date=${DAGCTL_LOGICAL_DATE:-?}"
printf '  %-12s %s\n' \
    report_date "$report_date" \
    top_n "$top_n" \
    min_revenue "$min_revenue" \
    region "$region" \
    recipient "$recipient" \
    dry_run "$dry_run"

if [[ ! "$top_n" =~ ^[0-9]+$ ]] || (( top_n < 1 )); then
    echo "top_n must be a positive integer, got '${top_n}'" >&2
    exit 2
fi

case "$dry_run" in
    true | True | TRUE | 1 | yes) echo "dry run: the report will be built but not published" ;;
    false | False | FALSE | 0 | no | "") echo "the report will be published for ${recipient}" ;;
    *) echo "dry_run must be a boolean, got '${dry_run}'" >&2; exit 2 ;;
esac
