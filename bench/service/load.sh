#!/usr/bin/env bash
# Service load benchmark, side by side in one run (docs/performance.md, "Service"):
#   1. the physical limit: a bare Beast keep-alive server (bench_hello_server), wrk at 64 connections;
#   2. forkcast serve: POST /v1/recommendations, wrk at 64 connections, users round-robin;
#   3. forkcast serve: POST /v1/feedback (acknowledged after COMMIT), 64 connections.
# Prints requests/s, p50/p99 latency and the ratio recommendations / hello-world, where a
# recommendation counts once its decision row is stored (the log's backlog is waited for).
#
#   bench/service/load.sh [--seconds 10] [--connections 64] [--wrk-threads 1]
#
# Needs wrk (scripts/setup.sh --with-peers) and a build with benchmarks (build/ by default,
# FORKCAST_BUILD_DIR to change; FORKCAST_EXE to run another forkcast binary). Starts its own PostgreSQL in a temp dir (under $TMPDIR, default /tmp); everything listens
# on 127.0.0.1 and everything it started is stopped by PID at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FORKCAST_BUILD_DIR:-$root/build}
forkcast=${FORKCAST_EXE:-$build/apps/forkcast}
seconds=10 connections=64 wrk_threads=1
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    *) echo "load.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "load.sh: wrk not found: scripts/setup.sh --with-peers" >&2; exit 1; }
for exe in "$forkcast" "$build/bench/service/bench_hello_server"; do
  [[ -x $exe ]] || { echo "load.sh: $exe not built (cmake --build $build)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/forkcast-load.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

report() {  # name, wrk output file
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$2")
  p50=$(awk '$1=="50%" {print $2}' "$2")
  p99=$(awk '$1=="99%" {print $2}' "$2")
  printf '%-34s %12s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99"
  echo "$rps"  > "$2.rps"
}

echo "== machine: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$wrk_threads -c$connections -d${seconds}s"
hello_port=$(free_port)
"$build/bench/service/bench_hello_server" "$hello_port" 2 & pids+=($!)
sleep 0.5
wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$hello_port/" > "$work/hello.txt"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

port=$(free_port) db_port=$(free_port)
export FORKCAST_DATABASE__DATA_DIR=$work/pgdata FORKCAST_DATABASE__PORT=$db_port
export FORKCAST_SERVER__RATE_LIMIT_PER_SECOND=1000000000 FORKCAST_SERVER__RATE_LIMIT_BURST=1000000000
# A queue that holds the whole run's backlog: every decision is stored, so (wrk time + drain
# time) is the time the service needed for all the work it accepted.
export FORKCAST_SERVER__DECISION_LOG_QUEUE=$((seconds * 50000))
(cd "$root" && exec "$forkcast" --log-level warn serve --port "$port") > "$work/serve.log" 2>&1 & pids+=($!)
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { echo "forkcast serve did not become ready:"; cat "$work/serve.log"; exit 1; }
python3 "$root/bench/service/prepare_load.py" "http://127.0.0.1:$port" 200 5 "$work"
metric() { curl -fsS "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
logged0=$(metric forkcast_decisions_logged_total) failed0=$(metric forkcast_decisions_log_failed_total)
wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" --latency -s "$work/recommend.lua" "http://127.0.0.1:$port" > "$work/recommend.txt"
# Recommendations are answered before their decision rows are stored: a backlog left in the
# log when wrk stops is work the run has not paid for. Wait until the log has drained and
# count the recommendations served *and logged* over the whole time (wrk + drain).
drain_start=$(date +%s.%N)
for _ in $(seq 1 1200); do
  [[ "$(metric forkcast_decision_log_queue)" == "0" ]] && break
  sleep 0.1
done
drain_s=$(python3 -c "import time; print(round(time.time() - $drain_start, 2))")
logged=$(python3 -c "print(int($(metric forkcast_decisions_logged_total) - $logged0))")
failed=$(python3 -c "print(int($(metric forkcast_decisions_log_failed_total) - $failed0))")
wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" --latency -s "$work/feedback.lua" "http://127.0.0.1:$port" > "$work/feedback.txt"
for f in recommend feedback; do
  grep -q "Non-2xx" "$work/$f.txt" && { echo "WARNING: $f run had non-2xx responses:"; grep "Non-2xx" "$work/$f.txt"; }
done

echo
report "bare Beast hello-world (limit)" "$work/hello.txt"
report "POST /v1/recommendations" "$work/recommend.txt"
report "POST /v1/feedback (acknowledged)" "$work/feedback.txt"
sustained=$(python3 -c "print(round($logged / ($seconds + $drain_s), 1))")
printf '%-34s %12s req/s   (%s logged, %s not logged, log drained %s s after wrk)\n' \
  "recommendations served and logged" "$sustained" "$logged" "$failed" "$drain_s"
awk -v a="$sustained" -v r="$(cat "$work/recommend.txt.rps")" -v b="$(cat "$work/hello.txt.rps")" \
  'BEGIN { printf "recommendations served and logged / hello-world: %.1f %% (target >= 40 %%); answered during wrk / hello-world: %.1f %%\n", 100 * a / b, 100 * r / b }'
