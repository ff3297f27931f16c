#!/usr/bin/env bash
# description: Pretend to count the rows of $table (at most $limit) and publish them
# inputs: []
# parameters: [table, limit]
set -euo pipefail
rows=$(( ${#table} * 7 ))
if (( rows > limit )); then rows=$limit; fi
echo "table $table has $rows rows"
echo "rows=$rows" >> "$DAGCTL_OUTPUT"
echo "table=$table" >> "$DAGCTL_OUTPUT"
