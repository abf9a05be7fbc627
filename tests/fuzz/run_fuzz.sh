#!/usr/bin/env bash
# run_fuzz.sh FUZZER GOLDEN_DIR SECONDS [SEEDS]: runs a libFuzzer target for a bounded time;
# fails on any crash or sanitizer report. SEEDS says what the target is seeded with:
#   golden     (default; mapper_fuzz) every golden input file and each of its lines
#   pages      (page_scan_fuzz) the golden lines (alerts and API pages) and a few pages
#              written here: pretty-printed, Graph's time key, escaped @odata.nextLink
#   http-time  (http_time_fuzz) HTTP-dates and Retry-After values, each behind the byte
#              that picks the server's clock ('0': 2027, '1': 1994, '3': year 9999, ...)
set -euo pipefail
# The fuzz build lets UBSan recover: make every report fatal, whatever else is asked for.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1"
fuzzer=$(realpath "$1") golden=$(realpath "$2") seconds=$3 kind=${4:-golden}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seeds" "$work/corpus"
max_len=65536

golden_seeds() {
  local f line n=0
  for f in "$golden"/*.input.ndjson; do
    cp "$f" "$work/seeds/$(basename "$f")"
    while IFS= read -r line || [ -n "$line" ]; do
      n=$((n + 1))
      printf '%s' "$line" >"$work/seeds/line-$n"
    done <"$f"
  done
}

case "$kind" in
  golden) golden_seeds ;;
  pages)
    golden_seeds
    printf '%s' '{"@odata.context":"x","value":[{"id":"a","lastUpdateTime":"2026-01-02T03:04:05.1234567Z"}],"@odata.nextLink":"https:\/\/graph.test\/v1.0\/security\/alerts_v2?$skiptoken=a\u0026b"}' \
      >"$work/seeds/page-next-link"
    printf '{\n\t"value" : [\n\t\t{ "lastUpdateDateTime" : "2026-01-02T03:04:05Z" ,\r\n "id" : "a\\"b\\u00e9" },\n\t\t{ "evidence": [ { "id": "ev" } ], "id": null }\n\t] ,\n\t"@odata.nextLink" : 3\n}\n' \
      >"$work/seeds/page-pretty"
    printf '%s' '{"value":[{"id":"x","lastUpdateTime":null,"@odata.nextLink":"inner"},[],"s",1,{"id":"y","id":"z"}],"value":[]}' \
      >"$work/seeds/page-odd"
    printf '%s' '{"value": 3}' >"$work/seeds/page-bad"
    ;;
  http-time)
    max_len=128
    n=0
    for v in "0120" "099999999999999999999" "00" "0000000120" "0-5" "0abc" "0" "01.5" "0 120 " \
      "0Fri, 15 Jan 2027 08:00:30 GMT" "0Fri, 31 Dec 9999 23:59:59 GMT" \
      "1Sun, 06 Nov 1994 08:49:37 GMT" "1Sunday, 06-Nov-94 08:49:37 GMT" \
      "1Sun Nov  6 08:49:37 1994" "1Thu, 29 Feb 1996 00:00:00 GMT" \
      "2Thu, 01 Jan 1970 00:00:00 GMT" "2Wed, 31 Dec 1969 23:59:59 GMT" \
      "3Fri, 31 Dec 9999 23:59:60 GMT" "3Sat, 01 Jan 10000 00:00:00 GMT" \
      "4Fri, 31 Dec 9999 23:59:59 GMT" "5Thu, 01 Jan 1970 00:00:01 GMT" \
      "6Thu, 01 Jan 1970 00:00:00 GMT" "6Fri Dec 31 23:59:59 9999" "63600" \
      "7abcdefghFri, 15 Jan 2027 08:00:30 GMT"; do
      n=$((n + 1))
      printf '%s' "$v" >"$work/seeds/value-$n"
    done
    ;;
  *) echo "run_fuzz.sh: unknown seeds '$kind'" >&2; exit 2 ;;
esac

echo "fuzzing $(basename "$fuzzer") for ${seconds}s with $(ls "$work/seeds" | wc -l) seeds"
cd "$work"
"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len="$max_len" \
  -print_final_stats=1 "$work/corpus" "$work/seeds" 2>&1 | tail -n 25
exit "${PIPESTATUS[0]}"
