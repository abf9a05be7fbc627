#!/usr/bin/env bash
# run_cli_golden.sh BINARY PYTHON3 GOLDEN_DIR CASE [map options...]
#
# Maps GOLDEN_DIR/CASE.input.ndjson with the real binary (`BINARY map [options] FILE`), then
# compares the output with GOLDEN_DIR/CASE.expected.ndjson using the fixtures' own ecsdiff.py.
# Passes only when the binary exits 0, ecsdiff reports "0 failed", and the output has exactly
# as many documents as expected.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 BINARY PYTHON3 GOLDEN_DIR CASE [map options...]" >&2
  exit 2
fi
binary=$1
python3=$2
golden_dir=$3
case_name=$4
shift 4

input="$golden_dir/$case_name.input.ndjson"
expected="$golden_dir/$case_name.expected.ndjson"
for f in "$binary" "$input" "$expected" "$golden_dir/ecsdiff.py"; do
  if [[ ! -e "$f" ]]; then
    echo "FAIL: $f does not exist" >&2
    exit 1
  fi
done

actual=$(mktemp "${TMPDIR:-/tmp}/mdec-golden-$case_name.XXXXXX")
trap 'rm -f -- "$actual"' EXIT

status=0
"$binary" map "$@" "$input" >"$actual" || status=$?
if [[ $status -ne 0 ]]; then
  echo "FAIL: '$binary map $* $input' exited with status $status" >&2
  exit 1
fi

status=0
report=$("$python3" "$golden_dir/ecsdiff.py" "$expected" "$actual") || status=$?
printf '%s\n' "$report"
summary=$(printf '%s\n' "$report" | tail -n 1)
if [[ $status -ne 0 || ! "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
  echo "FAIL: ecsdiff found differences for $case_name (exit status $status)" >&2
  exit 1
fi

# ecsdiff counts expected documents; check the totals ourselves (blank lines are not documents).
count_documents() { grep -c '[^[:space:]]' "$1" || true; }
expected_count=$(count_documents "$expected")
actual_count=$(count_documents "$actual")
if [[ "$expected_count" -ne "$actual_count" ]]; then
  echo "FAIL: $case_name: expected $expected_count documents, got $actual_count" >&2
  exit 1
fi
echo "OK: $case_name: $actual_count documents match"
