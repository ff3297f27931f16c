#!/usr/bin/env bash
# description: >-
#   Download the inventory snapshot from the partner API into inventory.json
#   in the run's work directory. The simulated API answers 503 on attempts 1
#   and 2, so the task succeeds on attempt 3 after the DAG's retries.
# inputs: [check_api_health.sh]
# parameters: [endpoint, api_token]
# timeout: 1m
# worker_config:
#   env:
#     HTTP_USER_AGENT: dagctl-example/1.0
set -euo pipefail

attempt="${DAGCTL_ATTEMPT:-1}"
if [[ -z "${api_token:-}" ]]; then
    echo "api_token is empty" >&2
    exit 2
fi

echo "attempt ${attempt}: GET ${endpoint} (token: ${#api_token} chars, hidden)"
if [ "$attempt" -lt 3 ]; then
    echo "upstream API returned 503 Service Unavailable, will retry" >&2
    exit 1
fi

run_key="${DAGCTL_RUN_ID//[^A-Za-z0-9._-]/_}"
workdir="${TMPDIR:-/tmp}/dagctl-example/${run_key}"
mkdir -p "$workdir"

cat > "$workdir/inventory.json.tmp" <<JSON
{
  "fetched_at": "${DAGCTL_LOGICAL_DATE:-unknown}",
  "items": [
    {"sku": "ANV-001", "name": "anvil", "on_hand": 42},
    {"sku": "BLT-010", "name": "bolt cutter", "on_hand": 7},
    {"sku": "CBL-100", "name": "cable ties", "on_hand": 1200},
    {"sku": "DRL-200", "name": "drill", "on_hand": 3},
    {"sku": "GLU-050", "name": "glue gun", "on_hand": 15}
  ]
}
JSON
mv -f "$workdir/inventory.json.tmp" "$workdir/inventory.json"
echo "200 OK: saved ${workdir}/inventory.json"
