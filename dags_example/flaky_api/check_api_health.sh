#!/usr/bin/env bash
# description: >-
#   Poll the partner API's (simulated) health endpoint until it reports ready.
#   The poll loop is bounded; the 30s task timeout is the backstop if the
#   check ever hangs.
# inputs: []
# parameters: [endpoint]
# timeout: 30s
# retries: 1
set -euo pipefail

for (( poll = 1; poll <= 3; poll++ )); do
    echo "GET ${endpoint%/}/health (poll ${poll})"
    if (( poll >= 2 )); then
        echo "partner API healthy"
        exit 0
    fi
    sleep 0.2
done

echo "partner API not healthy after ${poll} polls" >&2
exit 1
