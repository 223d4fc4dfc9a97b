#!/usr/bin/env bash
# Candidate scoring for one MealSim state (240 meals): PolicySnapshot::score (float32 and int8,
# each fused kernel this CPU runs, and the generic Eigen path) against libtorch's plain batched
# forward of the same 139-128-64-1 network, one thread, alternating runs; prints the medians
# over runs of each benchmark's median CPU time and the ratios. docs/performance.md quotes it.
#
#   bench/agent/snapshot_vs_libtorch.sh            # 3 runs
#   FORKCAST_BENCH_RUNS=5 bench/agent/snapshot_vs_libtorch.sh
#
# Needs bench_snapshot and bench_libtorch_dqn_step (scripts/setup.sh --with-peers, then
# ninja -C $FORKCAST_BUILD_DIR bench_snapshot bench_libtorch_dqn_step).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${FORKCAST_BUILD_DIR:-$ROOT/build}"
RUNS="${FORKCAST_BENCH_RUNS:-3}"
OURS="$BUILD_DIR/bench/agent/bench_snapshot"
TORCH="$BUILD_DIR/bench/agent/bench_libtorch_dqn_step"
for exe in "$OURS" "$TORCH"; do
  [[ -x "$exe" ]] || { echo "snapshot_vs_libtorch.sh: $exe not built" >&2; exit 1; }
done
OUT="$BUILD_DIR/bench-results/snapshot_vs_libtorch"
mkdir -p "$OUT"
OPENMP=/usr/lib/x86_64-linux-gnu/openblas-openmp
gb=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true --benchmark_out_format=json)

for run in $(seq 1 "$RUNS"); do
  echo "== run $run of $RUNS ($(uptime | sed 's/.*load average/load average/'))"
  for cap in avx512 avx2 none; do
    FORKCAST_SCORER_ISA=$cap OPENBLAS_NUM_THREADS=1 "$OURS" --benchmark_filter='BM_SnapshotScore/240/' "${gb[@]}" \
      --benchmark_out="$OUT/ours_${cap}_$run.json" >/dev/null 2>&1
  done
  if [[ -e "$OPENMP/libblas.so.3" ]]; then
    LD_LIBRARY_PATH="$OPENMP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
      "$TORCH" --benchmark_filter='BM_Predict/candidates240' "${gb[@]}" \
      --benchmark_out="$OUT/torch_$run.json" >/dev/null 2>&1
  else
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$TORCH" --benchmark_filter='BM_Predict/candidates240' "${gb[@]}" \
      --benchmark_out="$OUT/torch_$run.json" >/dev/null 2>&1
  fi
done

python3 - "$OUT" "$RUNS" <<'PYEOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def medians(path):
    res = {}
    for r in json.load(open(path))["benchmarks"]:
        if r.get("aggregate_name") == "median":
            res[(r["run_name"], r.get("label", ""))] = r["cpu_time"]
    return res
torch, ours = [], {}
for run in range(1, runs + 1):
    torch += list(medians(f"{out}/torch_{run}.json").values())
    for cap in ("avx512", "avx2", "none"):
        for (name, label), t in medians(f"{out}/ours_{cap}_{run}.json").items():
            ours.setdefault(label, []).append(t)
t = statistics.median(torch)
print(f"libtorch forward, 240 x 139-128-64-1: {t:.1f} us CPU (runs: {', '.join('%.1f' % x for x in torch)})")
for label, ts in sorted(ours.items()):
    m = statistics.median(ts)
    print(f"PolicySnapshot {label:<18} {m:7.1f} us CPU  {t / m:5.1f}x libtorch (runs: {', '.join('%.1f' % x for x in ts)})")
PYEOF
