#!/usr/bin/env bash
# Local run vs a Ballista cluster of 1 and 2 executors on one machine, same cores in all
# three (the machine's): wall time, shuffle bytes per line, peak RSS per executor.
# Usage: benches/cluster_scale.sh BIN CONFIG [EXTRA RUN ARGS...]
#   BIN: a release billxfer built with --features distributed
#   e.g. benches/cluster_scale.sh target/release/billxfer /tmp/base/billxfer.toml --exports none
set -euo pipefail
bin="$(realpath "$1")"; config="$(realpath "$2")"; shift 2
extra=("$@")
cores="$(nproc)"
work="$(mktemp -d)"
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
base_port="${CLUSTER_BASE_PORT:-22050}"
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.2; done; }
now() { date +%s.%N; }
# Stage 1's files are the shuffle (rating -> finish); stage 2's hold the finished orgs the
# driver fetches. Paths: <executor work dir>/<job>/<stage>/<partition>/data*.arrow.
stage_bytes() {
    for d in "$work"/e$n-*; do find "$d" -name 'data*.arrow' -printf '%P %s\n' 2>/dev/null; done |
        awk -v s="$1" '{split($1, p, "/"); if (p[2] == s) t += $2} END {print t+0}'
}

run_once() { # out [args]
    local out="$1"; shift
    rm -rf "$out"
    local t0; t0=$(now)
    "$bin" run --config "$config" --out "$out" --quiet "${extra[@]}" "$@"
    echo "$(now) - $t0" | bc
}

local_s=$(run_once "$work/local")
rows=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sum(f['rows_read'] for f in m['inputs']))" "$work/local/2026-10/manifest.json")
echo "rows: $rows, cores: $cores"
echo "local: ${local_s}s"
for n in 1 2; do
    "$bin" cluster scheduler --bind "127.0.0.1:$base_port" >/dev/null 2>&1 & pids+=($!)
    wait_port "$base_port"
    execs=()
    for k in $(seq "$n"); do
        mkdir -p "$work/e$n-$k"
        "$bin" cluster executor --scheduler "127.0.0.1:$base_port" --port $((base_port + 10 * k + 1)) \
            --grpc-port $((base_port + 10 * k + 2)) --work-dir "$work/e$n-$k" --cores $((cores / n)) >/dev/null 2>&1 &
        pids+=($!); execs+=($!)
        wait_port $((base_port + 10 * k + 1))
    done
    sleep 3
    run_once "$work/c$n" --cluster "df://127.0.0.1:$base_port" >"$work/wall" &
    run_pid=$!
    # Ballista removes a stage's shuffle files once the job is done: sample them meanwhile.
    shuffle=0
    while kill -0 "$run_pid" 2>/dev/null; do
        now_bytes=$(stage_bytes 1)
        [ "$now_bytes" -gt "$shuffle" ] && shuffle=$now_bytes
        sleep 0.1
    done
    wait "$run_pid"
    s=$(cat "$work/wall")
    results=$(stage_bytes 2)
    rss=""
    for p in "${execs[@]}"; do rss="$rss $(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$p/status")MB"; done
    per_line=$(python3 -c "print(round($shuffle / max($rows, 1), 2))")
    ratio=$(python3 -c "print(round($s / $local_s, 2))")
    echo "cluster, $n executor(s) x $((cores / n)) core(s): ${s}s (${ratio}x local), shuffle $shuffle bytes (${per_line} B/line), finished orgs $results bytes, peak RSS per executor:$rss"
    cmp <(cd "$work/local/2026-10" && find . -type f ! -name manifest.json -print0 | sort -z | xargs -0 sha256sum) \
        <(cd "$work/c$n/2026-10" && find . -type f ! -name manifest.json -print0 | sort -z | xargs -0 sha256sum) \
        && echo "  same bytes as local (manifest aside)"
    stop_all
done
