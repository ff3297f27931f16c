#!/usr/bin/env bash
# description: Count the example DAGs' files; publish the count and the folder
# inputs: []
set -euo pipefail
folder="$(cd .. && pwd)"
count="$(find "$folder" -type f | wc -l | tr -d ' ')"
echo "found $count files under $folder"
# key=value lines (or one JSON object) in $DAGCTL_OUTPUT are this task's outputs.
echo "count=$count" >> "$DAGCTL_OUTPUT"
echo "folder=$folder" >> "$DAGCTL_OUTPUT"
