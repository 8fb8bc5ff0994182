#!/usr/bin/env bash
# Atomic output under SIGKILL: kill `billxfer run` at random moments and check
# that <out>/<period>/ is always either the complete previous output or the
# complete new one, never partial, and that the next run leaves no stray
# temporary folder.
#
#   scripts/kill_test.sh [KILLS] [LINES]      (defaults: 100 kills, 300000 lines)
#
# BILLXFER=path/to/billxfer overrides the binary (default: release build in
# $CARGO_TARGET_DIR or ./target). Prints a summary line:
#   kill test: N kills, P partial outputs, S stray folders after recovery
# and exits non-zero when P or S is not 0.
set -euo pipefail
kills="${1:-100}"
lines="${2:-300000}"
cd "$(dirname "$0")/.."
bin="${BILLXFER:-${CARGO_TARGET_DIR:-target}/release/billxfer}"
if [ ! -x "$bin" ]; then cargo build --release --quiet; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" generate --orgs 40 --accounts-per-org 3 --lines "$lines" --period 2026-10 --seed 9 --out "$work/base" 2>/dev/null
# Two configurations whose outputs differ: the generated one and one rounding half-even.
cp "$work/base/billxfer.toml" "$work/base/a.toml"
sed 's/^\[partner\]/[run]\nrounding = "toward_zero"\n\n[partner]/' "$work/base/billxfer.toml" > "$work/base/b.toml"

digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }
for v in a b; do
  "$bin" run --config "$work/base/$v.toml" --period 2026-10 --out "$work/ref-$v" --quiet
done
ref_a="$(digest "$work/ref-a/2026-10")"
ref_b="$(digest "$work/ref-b/2026-10")"
[ "$ref_a" != "$ref_b" ] || { echo "the two configurations give the same output; the test would prove nothing"; exit 1; }

# Time of one run, to spread the kills over it.
start=$(date +%s%N)
"$bin" run --config "$work/base/a.toml" --period 2026-10 --out "$work/out" --quiet
run_ms=$(( ( $(date +%s%N) - start ) / 1000000 ))
partial=0; stray=0; killed_mid=0
for i in $(seq 1 "$kills"); do
  v=$([ $((RANDOM % 2)) -eq 0 ] && echo a || echo b)
  "$bin" run --config "$work/base/$v.toml" --period 2026-10 --out "$work/out" --quiet &
  pid=$!
  sleep "$(awk -v r=$RANDOM -v ms="$run_ms" 'BEGIN { printf "%.4f", (r / 32768.0) * ms * 1.2 / 1000 }')"
  if kill -9 "$pid" 2>/dev/null; then killed_mid=$((killed_mid + 1)); fi
  wait "$pid" 2>/dev/null || true
  if [ -d "$work/out/2026-10" ]; then
    d="$(digest "$work/out/2026-10")"
    if [ "$d" != "$ref_a" ] && [ "$d" != "$ref_b" ]; then
      partial=$((partial + 1)); echo "kill $i: partial output"
    fi
  else
    partial=$((partial + 1)); echo "kill $i: output folder missing"
  fi
done
# The next run recovers: no temporary folders remain.
"$bin" run --config "$work/base/a.toml" --period 2026-10 --out "$work/out" --quiet
stray=$(find "$work/out" -maxdepth 1 -name '.2026-10.*' | wc -l)
[ "$(digest "$work/out/2026-10")" = "$ref_a" ] || { echo "final run differs from the reference"; partial=$((partial + 1)); }
echo "kill test: $kills kills ($killed_mid while running, run time ${run_ms} ms), $partial partial outputs, $stray stray folders after recovery"
[ "$partial" -eq 0 ] && [ "$stray" -eq 0 ]
