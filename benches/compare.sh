#!/usr/bin/env bash
# Two builds of billxfer compared on one generated base, with the decode floor and an independent
# DuckDB GROUP BY of the same files in the same rounds: the ratios of issue 12, measured so that the
# machine's drift (about 1.4x within an hour here) hits every step alike.
#
# Usage: benches/compare.sh BASE_BIN NEW_BIN BASE_DIR [ROUNDS] [PERIOD]     (defaults: 7 2026-10)
#
#   BASE_BIN, NEW_BIN  two release builds of billxfer (copy target/release/billxfer aside between builds)
#   BASE_DIR           a base written by `billxfer generate ... --out BASE_DIR` (its billxfer.toml is used)
#
# Each round runs, one after the other: NEW_BIN decode-floor, BASE_BIN run, NEW_BIN run (both
# `--exports none`, output under $OUT, default a temporary folder; OUT=/dev/shm/... measures compute
# only), and benches/duckdb_groupby.py --threads 2 (its SQL time). It prints every time, the medians
# and the ratios, and checks that both builds wrote byte-identical outputs (diff -r).
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
BASE_BIN=$1 NEW_BIN=$2 GEN=$3 ROUNDS=${4:-7} PERIOD=${5:-2026-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
for f in "$BASE_BIN" "$NEW_BIN" "$GEN/billxfer.toml"; do
  [[ -e "$f" ]] || { echo "compare: $f does not exist" >&2; exit 2; }
done
OUT=${OUT:-$(mktemp -d /tmp/billxfer-compare.XXXXXX)}
mkdir -p "$OUT"
TIMES=$(mktemp /tmp/billxfer-compare-times.XXXXXX)
trap 'rm -f "$TIMES"' EXIT

timed() { # label, command...: appends "label seconds peak_rss_kb"
  local label=$1; shift
  /usr/bin/time -f "$label %e %M" -o "$TIMES.one" "$@" > /dev/null
  cat "$TIMES.one" >> "$TIMES"
}

for r in $(seq "$ROUNDS"); do
  echo "compare: round $r/$ROUNDS" >&2
  timed floor "$NEW_BIN" decode-floor --config "$GEN/billxfer.toml" --period "$PERIOD"
  for b in base new; do
    bin=$BASE_BIN; [[ $b == new ]] && bin=$NEW_BIN
    rm -rf "${OUT:?}/$b"
    timed "$b" "$bin" run --config "$GEN/billxfer.toml" --period "$PERIOD" --out "$OUT/$b" --exports none --quiet
  done
  sql=$("$PYTHON" "$ROOT/benches/duckdb_groupby.py" --config "$GEN/billxfer.toml" --threads 2 | awk '/ELAPSED_SQL/ {print $2}')
  echo "duckdb $sql 0" >> "$TIMES"
done
rm -f "$TIMES.one"

"$PYTHON" - "$TIMES" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, seconds, rss = line.split()
    times[label].append((float(seconds), int(rss)))
med = {k: statistics.median(s for s, _ in v) for k, v in times.items()}
for k, v in times.items():
    print(f"{k:7s} median {med[k]:.2f} s  peak RSS {max(r for _, r in v)} KB  rounds {[s for s, _ in v]}")
print(f"new / base {med['new'] / med['base']:.2f}x   new / floor {med['new'] / med['floor']:.2f}x   "
      f"base / floor {med['base'] / med['floor']:.2f}x   new / DuckDB {med['new'] / med['duckdb']:.2f}x   "
      f"base / DuckDB {med['base'] / med['duckdb']:.2f}x")
PY
if diff -r "$OUT/base" "$OUT/new" > /dev/null; then
  echo "outputs: identical"
else
  echo "outputs: DIFFER (diff -r $OUT/base $OUT/new)"
  exit 1
fi
