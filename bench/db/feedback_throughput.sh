#!/usr/bin/env bash
# Acknowledged feedback writes per second, group commit vs one transaction per write, with
# 8 client threads against a fresh local PostgreSQL (fsync and synchronous_commit on); prints
# the table and the ratio (target >= 5x). docs/performance.md (Database section) quotes its output.
#
#   bench/db/feedback_throughput.sh                # 3 runs of 5 s per mode, median ratio
#   FORKCAST_DB_BENCH_RUNS=5 bench/db/feedback_throughput.sh --seconds 10 --window-ms 2
#
# Extra arguments go to bench_db_feedback (--threads, --seconds, --window-ms, --url, --events,
# --modes).
# Environment: FORKCAST_BUILD_DIR (default build), FORKCAST_DB_BENCH_RUNS (default 3).
# Run it on an otherwise idle machine, or at `nice -n -10` (root; the PostgreSQL server it
# starts inherits it): both modes are CPU-bound on 2 cores, and other work
# takes a larger share from the mode with fewer runnable threads (group commit).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${FORKCAST_BUILD_DIR:-$ROOT/build}"
RUNS="${FORKCAST_DB_BENCH_RUNS:-3}"
EXE="$BUILD_DIR/bench/db/bench_db_feedback"
[[ -x "$EXE" ]] || { echo "feedback_throughput.sh: $EXE not found; build it: ninja -C $BUILD_DIR bench_db_feedback" >&2; exit 1; }
OUT="$BUILD_DIR/bench-results"
mkdir -p "$OUT"

ratios=()
for run in $(seq 1 "$RUNS"); do
  echo "== run $run of $RUNS ($(uptime | sed 's/.*load average/load average/'))"
  "$EXE" --threads 8 --seconds 5 --json "$OUT/db_feedback_$run.jsonl" "$@"
  ratios+=("$(sed -n 's/^{"ratio": \(.*\)}$/\1/p' "$OUT/db_feedback_$run.jsonl")")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}')
printf 'ratios: %s\n' "${ratios[*]}"
printf 'median ratio group commit / one transaction per write: %.1fx (target >= 5x)\n' "$median"
