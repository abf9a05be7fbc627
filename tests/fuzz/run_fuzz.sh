#!/usr/bin/env bash
# run_fuzz.sh FUZZER GOLDEN_DIR SECONDS: runs the mapper fuzzer for a bounded time,
# seeded with every line of the golden inputs; fails on any crash or sanitizer report.
set -euo pipefail
fuzzer=$(realpath "$1") golden=$(realpath "$2") seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seeds" "$work/corpus"
n=0
for f in "$golden"/*.input.ndjson; do
  cp "$f" "$work/seeds/$(basename "$f")"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    printf '%s' "$line" >"$work/seeds/line-$n"
  done <"$f"
done
echo "fuzzing for ${seconds}s with $(ls "$work/seeds" | wc -l) seeds"
cd "$work"
"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
  -print_final_stats=1 "$work/corpus" "$work/seeds" 2>&1 | tail -n 25
exit "${PIPESTATUS[0]}"
