#!/usr/bin/env bash
# description: Choose the table the child run counts
# inputs: []
set -euo pipefail
echo "table=customers" >> "$DAGCTL_OUTPUT"
