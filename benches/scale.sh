#!/usr/bin/env bash
# Scale benchmark: billxfer against its own decode floor and against an independent DuckDB
# rating of the same files (benches/duckdb_rating.py, which also checks every org's totals).
#
# Usage: benches/scale.sh [LINES] [ORGS] [REPS]        (defaults: 50000000 1000 3)
#
# Steps, each measured REPS times (wall seconds and peak RSS, with /usr/bin/time -f "%e %M"):
#   1. decode floor   billxfer decode-floor: read exactly the columns a run needs, nothing else
#   2. run            billxfer run --quiet (with --exports none when `run` has an --exports flag)
#   2b. run, detected the same without --period: what the default invocation pays for detecting the
#                     period in the inputs (it must cost little next to step 2)
#   3. run + CUR      billxfer run --exports cur (only when `run` has an --exports flag)
#   3b. run + all     billxfer run --exports all (pro forma CUR and FOCUS per customer, partner FOCUS)
#   3c. run + daily   billxfer run --exports all --granularity daily (streaming roll-ups)
#   4. duckdb         python3 benches/duckdb_rating.py, which compares its per-org totals with the
#                     output of step 2; its SQL-only time is reported as a row of its own
#   5. duckdb GROUP BY  python3 benches/duckdb_groupby.py: sum of cost and usage per usage account,
#                     product code, usage type and line item type, warm, $(nproc) threads; the
#                     report gives step 2's time against it
#   6. write floor    python3 benches/write_floor.py on step 3b's output: Arrow C++ (pyarrow) writing
#                     the same export files again with the same settings, $(nproc) threads, files
#                     already in memory; the report gives step 3b's time against it (needs pyarrow;
#                     skipped with a message without it)
#   also              billxfer run --threads 1, once per rep, for the 1 -> N threads speed-up
#
# Environment:
#   BILLXFER=/path/to/billxfer  use this binary instead of building (no cargo invocation at all)
#   CARGO_TARGET_DIR            where `cargo build --release` puts the binary (default ./target)
#   BASE=/path                  generated base (default /tmp/billxfer-scale-$LINES); reused when its
#                               .scale-params stamp shows the same parameters (delete it to regenerate,
#                               e.g. after the generator changed)
#   OUT=/path                   run outputs (default $BASE-out). billxfer flushes its output with one
#                               syncfs before the atomic swap; on a busy disk that can take a while,
#                               OUT=/dev/shm/... measures compute only
#   PYTHON=python3              interpreter for the DuckDB script (needs `pip install duckdb`)
#
# The generated base is 2026-10, seed 1, 5 accounts per org. "lines/s" divides the rows the
# generator wrote (customer lines plus the partner's ~1%) by the median wall time. "ratio to
# DuckDB" divides by the median SQL-only time of the DuckDB script (its process time, with Python
# start-up, config parsing and the JSON comparison, is shown as a separate row).
# Exit status: 0, or 1 when a step fails or the DuckDB totals differ from billxfer's.
set -euo pipefail

LINES=${1:-50000000}
ORGS=${2:-1000}
REPS=${3:-3}
PERIOD=2026-10
SEED=1
ACCOUNTS=5

# Paths given relative to the caller's folder stay so; the script then works from the repository root.
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
BASE=$(abspath "${BASE:-/tmp/billxfer-scale-$LINES}")
OUT=$(abspath "${OUT:-$BASE-out}")
if [[ -n "${BILLXFER:-}" && "$BILLXFER" == */* ]]; then BILLXFER=$(abspath "$BILLXFER"); fi
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/billxfer-scale-work.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

log() { printf '%s\n' "scale: $*" >&2; }

# --- binary -----------------------------------------------------------------------------------
if [[ -n "${BILLXFER:-}" ]]; then
  BIN=$BILLXFER
  log "using BILLXFER=$BIN (not building)"
else
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  log "cargo build --release (target dir $TARGET)"
  cargo build --release >&2
  BIN=$TARGET/release/billxfer
fi
[[ -x "$BIN" ]] || { log "no executable at $BIN"; exit 1; }
log "$("$BIN" --version)"

# --- timer ------------------------------------------------------------------------------------
# measure FILE CMD...: runs CMD, appends "wall_seconds peak_rss_kb" to FILE; CMD's stdout goes to
# $WORK/last.out, its stderr to $WORK/last.err. Returns CMD's status (and shows its stderr if it failed).
if [[ -x /usr/bin/time ]] && /usr/bin/time -f "%e %M" -o /dev/null true 2>/dev/null; then
  timed() { /usr/bin/time -f "%e %M" -o "$WORK/time" "$@"; }
else
  log "/usr/bin/time (GNU time) not found: measuring with python3's resource module (apt-get install -y time for the usual tool)"
  cat >"$WORK/timer.py" <<'EOF'
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
open(sys.argv[1], "w").write(f"{wall:.2f} {peak}\n")
sys.exit(rc)
EOF
  timed() { python3 "$WORK/timer.py" "$WORK/time" "$@"; }
fi
measure() {
  local file=$1 rc=0; shift
  timed "$@" >"$WORK/last.out" 2>"$WORK/last.err" || rc=$?
  tail -n 1 "$WORK/time" >>"$file"
  if ((rc)); then log "command failed (status $rc): $*"; tail -n 20 "$WORK/last.err" >&2; fi
  return $rc
}

# --- base -------------------------------------------------------------------------------------
PARAMS="orgs=$ORGS accounts_per_org=$ACCOUNTS lines=$LINES period=$PERIOD seed=$SEED"
STAMP=$BASE/.scale-params
if [[ -f "$STAMP" && -f "$BASE/billxfer.toml" ]] && [[ "$(head -n 1 "$STAMP")" == "$PARAMS" ]]; then
  ROWS=$(sed -n 2p "$STAMP")
  log "reusing $BASE ($PARAMS, $ROWS rows)"
else
  log "generating $BASE ($PARAMS)"
  rm -rf "$BASE"
  "$BIN" generate --orgs "$ORGS" --accounts-per-org "$ACCOUNTS" --lines "$LINES" --period "$PERIOD" \
    --seed "$SEED" --out "$BASE" 2>"$WORK/gen.err" || { cat "$WORK/gen.err" >&2; exit 1; }
  cat "$WORK/gen.err" >&2
  ROWS=$(grep -oE 'wrote [0-9]+ rows' "$WORK/gen.err" | grep -oE '[0-9]+' || echo "$LINES")
  printf '%s\n%s\n' "$PARAMS" "$ROWS" >"$STAMP"
fi
CONFIG=$BASE/billxfer.toml

# --- steps ------------------------------------------------------------------------------------
EXPORTS=0
if "$BIN" run --help 2>/dev/null | grep -q -- '--exports'; then EXPORTS=1; fi
RUN_ARGS=(run --config "$CONFIG" --period "$PERIOD" --quiet)
RUN_DETECT=(run --config "$CONFIG" --quiet)
if ((EXPORTS)); then
  RUN_PLAIN=("${RUN_ARGS[@]}" --exports none)
  RUN_DETECT+=(--exports none)
else
  RUN_PLAIN=("${RUN_ARGS[@]}")
  log "billxfer run has no --exports flag: step 3 (run + CUR export) is skipped"
fi
"$PYTHON" -c 'import duckdb' 2>/dev/null || { log "python: import duckdb failed (pip install duckdb)"; exit 1; }

STATUS=0
for ((rep = 1; rep <= REPS; rep++)); do
  log "rep $rep/$REPS: decode floor"
  measure "$WORK/floor" "$BIN" decode-floor --config "$CONFIG" --period "$PERIOD"

  log "rep $rep/$REPS: run"
  rm -rf "$OUT/run/$PERIOD"
  measure "$WORK/run" "$BIN" "${RUN_PLAIN[@]}" --out "$OUT/run"

  log "rep $rep/$REPS: run, period detected"
  rm -rf "$OUT/detect/$PERIOD"
  measure "$WORK/detect" "$BIN" "${RUN_DETECT[@]}" --out "$OUT/detect"

  if ((EXPORTS)); then
    log "rep $rep/$REPS: run + CUR export"
    rm -rf "$OUT/cur/$PERIOD"
    measure "$WORK/cur" "$BIN" "${RUN_ARGS[@]}" --exports cur --out "$OUT/cur"
    log "rep $rep/$REPS: run + all exports"
    rm -rf "$OUT/all/$PERIOD"
    measure "$WORK/all" "$BIN" "${RUN_ARGS[@]}" --exports all --out "$OUT/all"
    if "$PYTHON" -c 'import pyarrow' 2>/dev/null; then
      log "rep $rep/$REPS: write floor of the exports (pyarrow)"
      if measure "$WORK/write_proc" "$PYTHON" "$ROOT/benches/write_floor.py" "$OUT/all/$PERIOD" --threads "$(nproc)"; then
        grep -E '^ELAPSED_WRITE ' "$WORK/last.out" | awk '{print $2, 0}' >>"$WORK/write"
      else
        STATUS=1
      fi
    else
      log "python: import pyarrow failed (pip install pyarrow): step 6 (write floor) is skipped"
    fi
    log "rep $rep/$REPS: run + all exports, daily"
    rm -rf "$OUT/daily/$PERIOD"
    measure "$WORK/daily" "$BIN" "${RUN_ARGS[@]}" --exports all --granularity daily --out "$OUT/daily"
  fi

  log "rep $rep/$REPS: run --threads 1"
  rm -rf "$OUT/t1/$PERIOD"
  measure "$WORK/t1" "$BIN" "${RUN_PLAIN[@]}" --threads 1 --out "$OUT/t1"

  log "rep $rep/$REPS: duckdb"
  if measure "$WORK/duck" "$PYTHON" "$ROOT/benches/duckdb_rating.py" --config "$CONFIG" --period "$PERIOD" \
       --billxfer-out "$OUT/run"; then
    grep -E '^ELAPSED_SQL ' "$WORK/last.out" | awk '{print $2, 0}' >>"$WORK/duck_sql"
    grep -E '^compared ' "$WORK/last.out" >&2
  else
    STATUS=1
    grep -E '^ELAPSED_SQL ' "$WORK/last.out" | awk '{print $2, 0}' >>"$WORK/duck_sql" || true
    grep -E '^compared |^  ' "$WORK/last.out" >&2 || true
  fi

  log "rep $rep/$REPS: duckdb GROUP BY"
  if measure "$WORK/group_proc" "$PYTHON" "$ROOT/benches/duckdb_groupby.py" --config "$CONFIG" --threads "$(nproc)"; then
    grep -E '^ELAPSED_SQL ' "$WORK/last.out" | awk '{print $2, 0}' >>"$WORK/group"
  else
    STATUS=1
  fi
done

# --- report -----------------------------------------------------------------------------------
"$PYTHON" - "$WORK" "$ROWS" "$EXPORTS" "$(nproc)" "$LINES" "$ORGS" "$REPS" "$("$BIN" --version)" <<'EOF'
import os, statistics, sys
work, rows, exports, ncpu, lines, orgs, reps, version = sys.argv[1:]
rows = int(rows)

def load(name):
    p = os.path.join(work, name)
    if not os.path.exists(p):
        return None
    vals = [l.split() for l in open(p) if l.strip()]
    return [float(v[0]) for v in vals], [int(v[1]) for v in vals]

steps = [
    ("1. decode floor", "floor"),
    ("2. billxfer run", "run"),
    ("2b. billxfer run, period detected (no --period)", "detect"),
    ("3. billxfer run + CUR export", "cur" if exports == "1" else None),
    ("3b. billxfer run + all exports (CUR, FOCUS, partner FOCUS)", "all" if exports == "1" else None),
    ("3c. billxfer run + all exports, daily roll-up", "daily" if exports == "1" else None),
    ("4. duckdb (SQL only)", "duck_sql"),
    ("4. duckdb (process)", "duck"),
    ("5. duckdb GROUP BY (SQL only, warm)", "group"),
    ("6. write floor of step 3b's files (pyarrow, files in memory)", "write" if exports == "1" else None),
    ("billxfer run --threads 1", "t1"),
]
data = {key: load(key) for _, key in steps if key}
med = {k: statistics.median(v[0]) for k, v in data.items() if v and v[0]}
floor, duck = med.get("floor"), med.get("duck_sql")
print(f"\n{version}, {lines} lines requested ({rows} rows written), {orgs} orgs, {reps} reps, {ncpu} CPUs\n")
print("| step | median s | lines/s | ratio to floor | ratio to DuckDB | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|")
for label, key in steps:
    if key is None:
        print(f"| {label} | skipped: `billxfer run` has no `--exports` flag | | | | |")
        continue
    if key not in med:
        print(f"| {label} | n/a | | | | |")
        continue
    m = med[key]
    rss = max(data[key][1]) / 1024 if any(data[key][1]) else None
    print(f"| {label} | {m:.2f} | {rows / m:,.0f} | {m / floor:.2f}x | {m / duck:.2f}x | "
          f"{'' if rss is None else f'{rss:,.0f}'} |" if floor and duck else f"| {label} | {m:.2f} | {rows / m:,.0f} | | | |")
if "group" in med and "run" in med:
    print(f"\nbillxfer run (both tracks, invoices only) vs DuckDB GROUP BY: {med['run'] / med['group']:.2f}x "
          f"({med['run']:.2f} s vs {med['group']:.2f} s)")
if "write" in med and "all" in med and "run" in med:
    print(f"\nbillxfer run + all exports vs writing the same files with pyarrow: {med['all'] / med['write']:.2f}x "
          f"({med['all']:.2f} s vs {med['write']:.2f} s); the writing floor alone is "
          f"{med['write'] / med['run']:.1f}x the invoices-only run")
if "all" in med and "run" in med:
    print(f"\nall exports / invoices only: {med['all'] / med['run']:.2f}x")
if "daily" in med and "all" in med:
    print(f"\ndaily roll-up / line level: {med['daily'] / med['all']:.2f}x")
if "run" in med and "floor" in med:
    print(f"\ninvoices only / decode floor: {med['run'] / med['floor']:.2f}x")
if "detect" in med and "run" in med:
    print(f"\nperiod detected / --period given: {med['detect'] / med['run']:.2f}x")
if "t1" in med and "run" in med:
    print(f"\nbillxfer run speed-up 1 -> {ncpu} threads: {med['t1'] / med['run']:.2f}x "
          f"({med['t1']:.2f} s -> {med['run']:.2f} s)")
EOF
if ((STATUS)); then log "the DuckDB totals differ from billxfer's (see above)"; fi
exit $STATUS
