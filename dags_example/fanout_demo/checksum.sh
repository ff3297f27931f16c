#!/usr/bin/env bash
# description: The checksum of one file, the item ($DAGCTL_ITEM)
# inputs: [list_files.sh]
# for_each: "{{ outputs['list_files.sh'].files }}"
# max_parallel: 4
set -euo pipefail
sum=$(cksum < "../$DAGCTL_ITEM" | cut -d' ' -f1)
echo "item $DAGCTL_ITEM_INDEX: $DAGCTL_ITEM $sum"
echo "file=$DAGCTL_ITEM" >> "$DAGCTL_OUTPUT"
echo "cksum=$sum" >> "$DAGCTL_OUTPUT"
