#!/usr/bin/env bash
# Times `forkcast evaluate` on the issue's case, 4 policies x 1000 users x 1 seed, end to end
# (process start, catalog load, policies, simulation, bootstrap, report.json/html/md written),
# and the library part with Google Benchmark (bench_evaluate). Prints the median of the runs
# against the 60 s budget; docs/performance.md (Policy evaluation) quotes its output.
#
#   bench/evaluation/run_evaluate_bench.sh            # 3 runs
#   FORKCAST_BUILD_DIR=build-eval FORKCAST_RUNS=5 bench/evaluation/run_evaluate_bench.sh
#
# Optional: FORKCAST_EVAL_CHECKPOINT=<tabular checkpoint> evaluates it as a fifth policy in
# an extra timed run (the checkpoint's learning curve and model card included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BUILD_DIR="${FORKCAST_BUILD_DIR:-build}"
RUNS="${FORKCAST_RUNS:-3}"
EXE="$BUILD_DIR/apps/forkcast"
BENCH="$BUILD_DIR/bench/evaluation/bench_evaluate"
[[ -x "$EXE" ]] || { echo "run_evaluate_bench.sh: $EXE not built (ninja -C $BUILD_DIR forkcast)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

time_run() {  # prints wall seconds of one evaluate command
  local out="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$EXE" --log-level warn evaluate "$@" --users 1000 --seeds 1 --data-dir data --no-progress --out "$out" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
times=()
for ((i = 1; i <= RUNS; ++i)); do
  t=$(time_run "$work/report$i" --policy random --policy popularity --policy myopic-oracle --policy planning-oracle)
  printf 'run %d: %.2f s\n' "$i" "$t"
  times+=("$t")
done
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
printf 'forkcast evaluate, 4 policies x 1000 users x 1 seed (end to end): median %.2f s of %d runs; budget 60 s; %.1fx under\n' \
  "$median" "$RUNS" "$(awk -v m="$median" 'BEGIN { print 60 / m }')"

if [[ -n "${FORKCAST_EVAL_CHECKPOINT:-}" ]]; then
  t=$(time_run "$work/with_checkpoint" --policy random --policy popularity --policy myopic-oracle --policy planning-oracle \
      --policy "$FORKCAST_EVAL_CHECKPOINT" --model-card "$FORKCAST_EVAL_CHECKPOINT")
  printf 'with the checkpoint as a fifth policy and its model card: %.2f s\n' "$t"
fi

if [[ -x "$BENCH" ]]; then
  "$BENCH" --benchmark_counters_tabular=true
else
  echo "($BENCH not built: ninja -C $BUILD_DIR bench_evaluate)"
fi
