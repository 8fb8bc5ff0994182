#!/usr/bin/env bash
# A real Ballista cluster on 127.0.0.1: a scheduler and two executors as
# separate processes of BIN (built with --features distributed). Checks that
#   1. the sample month (with every export) and a generated base (LINES lines,
#      default 1M; invoices only, the exports of a generated base are checked by
#      tests/cluster.rs) run with --cluster give the bytes of a run here (but the
#      manifest's `engine`);
#   2. both executors ran tasks (each wrote shuffle files);
#   3. an executor killed in the middle of a job either is survived (the engine
#      reruns its tasks: same bytes) or fails the run with a clear error, and
#      in both cases nothing partial is published and the last month stays. The
#      run has --cluster-timeout 120: Ballista 55 was once seen to neither recover
#      nor fail the job (the driver waited past 600 s), and the timeout makes that
#      a clear error too.
# Usage: benches/cluster_check.sh BIN [LINES]     (called by .ci/run)
set -euo pipefail
bin="$(realpath "$1")"
lines="${2:-1000000}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
pids=()
stop() {
    # SIGTERM lets an executor finish its running tasks; give them 5 s, then SIGKILL.
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" -eq 1 ] || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
# Ports: the scheduler's, then each executor's Flight and gRPC ports.
# Below 32768: Linux hands out 32768-60999 as ephemeral source ports, so a fixed port
# there can be taken by any outgoing connection ("Address already in use").
base_port="${CLUSTER_BASE_PORT:-21050}"
sched="127.0.0.1:$base_port"

# Refuse to start beside another cluster on the same ports (it would take our jobs).
if (exec 3<>"/dev/tcp/127.0.0.1/$base_port") 2>/dev/null; then
    echo "cluster_check: port $base_port is taken (another scheduler?); set CLUSTER_BASE_PORT" >&2
    exit 1
fi

wait_port() { # host port seconds
    local end=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || { echo "cluster_check: nothing listens on $1:$2 after $3 s" >&2; exit 1; }
        sleep 0.2
    done
}

"$bin" cluster scheduler --bind "$sched" >"$work/scheduler.log" 2>&1 & pids+=($!)
wait_port 127.0.0.1 "$base_port" 30
start_executor() { # n
    local flight=$((base_port + 10 * $1 + 1)) grpc=$((base_port + 10 * $1 + 2))
    mkdir -p "$work/exec$1"
    "$bin" cluster executor --scheduler "$sched" --port "$flight" --grpc-port "$grpc" \
        --work-dir "$work/exec$1" --cores 1 >"$work/exec$1.log" 2>&1 &
    pids+=($!)
    eval "exec$1_pid=$!"
    wait_port 127.0.0.1 "$flight" 30
}
start_executor 1
start_executor 2
sleep 3 # both register on their first heartbeat

# The month's files with the manifest's engine blanked, for `diff -r`.
normalized() { # month-dir copy-dir
    cp -rL "$1" "$2"
    sed -i 's/"engine": "[^"]*"/"engine": "-"/' "$2/manifest.json"
}
same_bytes() { # local-month cluster-month what
    normalized "$1" "$work/a" && normalized "$2" "$work/b"
    grep -q '"engine": "ballista' "$2/manifest.json"
    diff -r "$work/a" "$work/b" >/dev/null || { echo "cluster_check: $3: the cluster run differs from the run here" >&2; diff -rq "$work/a" "$work/b" >&2; exit 1; }
    rm -rf "$work/a" "$work/b"
    echo "cluster_check: $3: same bytes as a run here"
}
run_month() { # config out [args]
    local config="$1" out="$2"; shift 2
    "$bin" run --config "$config" --period 2026-10 --out "$out" --quiet "$@"
}

# 1. The sample month.
run_month sample_data/billxfer.toml "$work/sample-local"
run_month sample_data/billxfer.toml "$work/sample-cluster" --cluster "df://$sched"
same_bytes "$work/sample-local/2026-10" "$work/sample-cluster/2026-10" "sample month"

# 1b. A generated base.
"$bin" generate --orgs 40 --accounts-per-org 3 --lines "$lines" --period 2026-10 --seed 5 --out "$work/base" >/dev/null
run_month "$work/base/billxfer.toml" "$work/base-local" --exports none
run_month "$work/base/billxfer.toml" "$work/base-cluster" --exports none --cluster "df://$sched" --partitions 8,4
same_bytes "$work/base-local/2026-10" "$work/base-cluster/2026-10" "generated base of $lines lines"

# 2. Both executors ran tasks.
for n in 1 2; do
    files=$(find "$work/exec$n" -type f | wc -l)
    [ "$files" -gt 0 ] || { echo "cluster_check: executor $n ran no task" >&2; exit 1; }
    echo "cluster_check: executor $n wrote $files shuffle file(s)"
done

# 3. Kill executor 2 in the middle of a job. The output folder holds last month's run.
out="$work/kill-out"
cp -r "$work/base-local" "$out"
before="$(cd "$out" && find . -type f -print0 | sort -z | xargs -0 sha256sum)"
set +e
timeout 600 "$bin" run --config "$work/base/billxfer.toml" --period 2026-10 --out "$out" --quiet \
    --exports none --cluster "df://$sched" --partitions 8,4 --cluster-timeout 120 >"$work/kill.log" 2>&1 &
run_pid=$!
sleep "${KILL_AFTER:-4}"
kill -9 "$exec2_pid"
wait "$run_pid"
rc=$?
set -e
if [ "$rc" -eq 0 ]; then
    same_bytes "$work/base-local/2026-10" "$out/2026-10" "run that lost an executor (the engine reran its tasks)"
else
    [ "$rc" -ne 124 ] || { echo "cluster_check: the run that lost an executor hung (killed after 600 s)" >&2; exit 1; }
    grep -q "billxfer: error: cluster" "$work/kill.log" || { echo "cluster_check: unclear error:" >&2; cat "$work/kill.log" >&2; exit 1; }
    after="$(cd "$out" && find . -type f -print0 | sort -z | xargs -0 sha256sum)"
    [ "$before" = "$after" ] || { echo "cluster_check: the failed run changed the published output" >&2; exit 1; }
    echo "cluster_check: the run that lost an executor failed clearly ($(grep -m1 'error' "$work/kill.log" | cut -c1-160)); last month's output intact"
fi
leftovers=$(find "$out" -mindepth 1 -maxdepth 1 -name '.*' ! -name '.billxfer.lock' | wc -l)
[ "$leftovers" -eq 0 ] || { echo "cluster_check: temporary folders left in $out" >&2; ls -la "$out" >&2; exit 1; }
echo "cluster_check: ok"
