#!/usr/bin/env bash
# description: List the example DAGs' workflow files, as one JSON object
# inputs: []
set -euo pipefail
cd ..
files=$(printf '"%s",' */workflow.yaml)
echo "{\"files\": [${files%,}]}" > "$DAGCTL_OUTPUT"
