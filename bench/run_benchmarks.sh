#!/usr/bin/env bash
# Runs forkcast's benchmarks beside their peers, in one run, and prints ours / peer
# ratios (or ours / target where no peer exists). docs/performance.md quotes its output.
#
#   bench/run_benchmarks.sh                 # every benchmark in BENCHMARKS
#   bench/run_benchmarks.sh cartpole taxi   # only some of them
#
# Environment:
#   FORKCAST_BUILD_DIR     build tree holding bench/env/bench_* (default: build)
#   FORKCAST_PEER_SECONDS  how long each Python peer measures (default: 2)
#   FORKCAST_REPETITIONS   Google Benchmark repetitions; the median is reported (default: 3)
#   PYTHON                 interpreter with numpy (default: Debian's /usr/bin/python3, which
#                          gets numpy from `scripts/setup.sh --with-peers`, i.e. python3-numpy)
#
# Raw results land in $FORKCAST_BUILD_DIR/bench-results/ (Google Benchmark JSON, one peer
# JSON line each, and summary.tsv with one row per comparison). Single-thread
# numbers: run on an otherwise idle machine and copy the summary to docs/performance.md.
#
# Adding a benchmark: write a bench_<name> function that runs ours and its peer and
# calls `report`, then add <name> to BENCHMARKS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${FORKCAST_BUILD_DIR:-build}"
RESULTS_DIR="$BUILD_DIR/bench-results"
PEER_SECONDS="${FORKCAST_PEER_SECONDS:-2}"
REPETITIONS="${FORKCAST_REPETITIONS:-3}"
SUMMARY="$RESULTS_DIR/summary.tsv"

BENCHMARKS=(cartpole mealsim taxi_update taxi_train dqn_train snapshot nn_gemm nn_train_small nn_train_large nn_predict)

die() {
  echo "run_env_bench.sh: $*" >&2
  exit 1
}

# The first interpreter that can import numpy.
find_python() {
  local candidate
  for candidate in "${PYTHON:-}" /usr/bin/python3 python3; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import numpy' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  die "no python3 with numpy found (install python3-numpy: scripts/setup.sh --with-peers, or set PYTHON)"
}

# bench_exe NAME: path of a Google Benchmark program of the build, or a helpful error.
bench_exe() {
  local exe
  exe="$(ls "$BUILD_DIR"/bench/*/"$1" 2>/dev/null | head -n 1)"
  [[ -n "$exe" && -x "$exe" ]] || die "$1 not found under $BUILD_DIR/bench; build it first: ninja -C $BUILD_DIR $1"
  echo "$exe"
}

# run_gbench EXE OUT_JSON [FILTER]: runs a Google Benchmark program, JSON to OUT_JSON.
run_gbench() {
  local exe="$1" out="$2" filter="${3:-.}"
  # The JSON goes to its own file: a program's log lines on stdout (a model trained on the
  # way, say) would corrupt it.
  "$exe" --benchmark_out="$out" --benchmark_out_format=json --benchmark_filter="$filter" \
    --benchmark_repetitions="$REPETITIONS" --benchmark_report_aggregates_only=true \
    >/dev/null
}

# items_per_second JSON BENCHMARK: the median items_per_second of one benchmark.
items_per_second() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
path, name = sys.argv[1], sys.argv[2]
runs = json.load(open(path))["benchmarks"]
wanted = [r for r in runs if r.get("run_name", r["name"]) == name and r.get("aggregate_name", "median") == "median"]
if not wanted:
    sys.exit("no median result for %s in %s" % (name, path))
print(wanted[0]["items_per_second"])
EOF
}

# json_field JSON_FILE FIELD: one top-level field of a one-line JSON document.
json_field() {
  "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# report WHAT OURS PEER_NAME PEER [DIGITS]: prints and records one comparison (the ratio with
# DIGITS decimals, default 1).
report() {
  local what="$1" ours="$2" peer_name="$3" peer="$4" digits="${5:-1}"
  local ratio
  ratio="$("$PY" -c 'import sys; print("%.*f" % (int(sys.argv[3]), float(sys.argv[1]) / float(sys.argv[2])))' "$ours" "$peer" "$digits")"
  printf '%-34s ours %14.0f  %-16s %14.0f  ratio %sx\n' "$what" "$ours" "$peer_name" "$peer" "$ratio"
  printf '%s\t%.0f\t%s\t%.0f\t%s\n' "$what" "$ours" "$peer_name" "$peer" "$ratio" >>"$SUMMARY"
}

# CartPole-v1 steps per second, one thread, resets included, same policy on both sides.
bench_cartpole() {
  local exe json peer_json ours peer
  exe="$(bench_exe bench_cartpole)"
  json="$RESULTS_DIR/bench_cartpole.json"
  peer_json="$RESULTS_DIR/cartpole_numpy.json"
  run_gbench "$exe" "$json" 'BM_CartPoleStep$'
  "$PY" bench/peers/cartpole_numpy.py --seconds "$PEER_SECONDS" >"$peer_json"
  ours="$(items_per_second "$json" BM_CartPoleStep)"
  peer="$(json_field "$peer_json" steps_per_s)"
  report "CartPole-v1 steps/s (1 thread)" "$ours" "numpy_cartpole" "$peer"
}

# MealSim steps per second with the shipped catalog; no peer exists, so against the
# issue's target of 1 M steps/s.
bench_mealsim() {
  local exe json ours
  exe="$(bench_exe bench_mealsim)"
  json="$RESULTS_DIR/bench_mealsim.json"
  run_gbench "$exe" "$json" 'BM_MealSimStep$'
  ours="$(items_per_second "$json" BM_MealSimStep)"
  report "MealSim steps/s (1 thread)" "$ours" "target" 1000000
}

# Tabular Q-updates per second on Taxi, environment excluded; against the 100 M/s target.
bench_taxi_update() {
  local exe json ours
  exe="$(bench_exe bench_tabular)"
  json="$RESULTS_DIR/bench_tabular_update.json"
  run_gbench "$exe" "$json" 'BM_QUpdateTaxi$'
  ours="$(items_per_second "$json" BM_QUpdateTaxi)"
  report "Taxi Q-updates/s, env excluded" "$ours" "target" 100000000
}

# Whole Taxi training run with the Deep RL course settings, env included, against the
# course's Python train() on a pure-Python Taxi with a numpy Q-table.
bench_taxi_train() {
  local exe json peer_json ours peer
  exe="$(bench_exe bench_tabular)"
  json="$RESULTS_DIR/bench_tabular_train.json"
  peer_json="$RESULTS_DIR/taxi_qlearning_python.json"
  run_gbench "$exe" "$json" 'BM_TaxiTrainCourse'
  "$PY" bench/peers/taxi_qlearning.py 0 >"$peer_json"
  ours="$(items_per_second "$json" BM_TaxiTrainCourse/min_time:2.000)"
  peer="$(json_field "$peer_json" updates_per_s)"
  report "Taxi course training updates/s" "$ours" "python_numpy" "$peer"
}

# --- agent/nn: the DQN's kernels (docs/performance.md (the DQN's kernels)) -------------------------------------
# bench_nn and its libtorch peer run once per invocation, single thread (OPENBLAS_NUM_THREADS=1;
# bench_nn also sets it itself, the peer calls torch::set_num_threads(1)). Rates are medians of
# $REPETITIONS repetitions over CPU time, which other load on the machine disturbs least.
NN_JSON=""
TORCH_JSON=""

# nn_run: runs bench_nn (train steps, the 1024^3 sgemm, predictions) once.
nn_run() {
  [[ -n "$NN_JSON" ]] && return 0
  NN_JSON="$RESULTS_DIR/bench_nn.json"
  OPENBLAS_NUM_THREADS=1 run_gbench "$(bench_exe bench_nn)" "$NN_JSON" 'BM_TrainStep|BM_Sgemm|BM_Predict'
}

# torch_run: runs the libtorch peer once, if it was built (it needs libtorch-dev); returns 1 if not.
# With Debian's OpenMP build of OpenBLAS installed (libopenblas0-openmp) the peer runs on it, as
# libtorch's own OpenMP threads expect; otherwise on the default pthread build, one thread.
torch_run() {
  [[ -n "$TORCH_JSON" ]] && return 0
  local exe
  exe="$(ls "$BUILD_DIR"/bench/*/bench_libtorch_dqn_step 2>/dev/null | head -n 1)"
  if [[ -z "$exe" ]]; then
    echo "nn: libtorch peer not built (scripts/setup.sh --with-peers; ninja -C $BUILD_DIR bench_libtorch_dqn_step): skipped" >&2
    return 1
  fi
  local openmp=/usr/lib/x86_64-linux-gnu/openblas-openmp
  TORCH_JSON="$RESULTS_DIR/libtorch_dqn_step.json"
  if [[ -e "$openmp/libblas.so.3" ]]; then
    LD_LIBRARY_PATH="$openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
      run_gbench "$exe" "$TORCH_JSON"
  else
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 run_gbench "$exe" "$TORCH_JSON"
  fi
}

# nn_counter JSON BENCHMARK FIELD: the median of one field (items_per_second, a counter) of one benchmark.
nn_counter() {
  "$PY" - "$1" "$2" "$3" <<'EOF2'
import json, sys
path, name, field = sys.argv[1:4]
runs = json.load(open(path))["benchmarks"]
wanted = [r for r in runs if r.get("run_name", r["name"]) == name and r.get("aggregate_name", "median") == "median"]
if not wanted:
    sys.exit("no median result for %s in %s" % (name, path))
print(wanted[0][field])
EOF2
}

# The FLOP limit: the faster of Eigen's and OpenBLAS's 1024^3 sgemm, in FLOP/s, this run.
nn_flop_limit() {
  "$PY" -c 'import sys; print(max(float(a) for a in sys.argv[1:]))' \
    "$(nn_counter "$NN_JSON" BM_Sgemm/1024/eigen/min_time:1.000/process_time GFLOP/s)" \
    "$(nn_counter "$NN_JSON" BM_Sgemm/1024/blas/min_time:1.000/process_time GFLOP/s)"
}

# Large-sgemm rate of Eigen against OpenBLAS, one core.
bench_nn_gemm() {
  nn_run
  report "sgemm 1024^3 GFLOP/s, Eigen" "$(nn_counter "$NN_JSON" BM_Sgemm/1024/eigen/min_time:1.000/process_time GFLOP/s)" \
    "openblas" "$(nn_counter "$NN_JSON" BM_Sgemm/1024/blas/min_time:1.000/process_time GFLOP/s)" 2
}

# nn_train_step NET LABEL: one DQN train step, steps/s against libtorch and against the FLOP limit
# (the step's FLOPs at the large-sgemm rate).
nn_train_step() {
  local net="$1" label="$2" ours limit
  nn_run
  ours="$(nn_counter "$NN_JSON" "BM_TrainStep/$net/auto/process_time" items_per_second)"
  if torch_run; then
    report "DQN step $label steps/s" "$ours" "libtorch" \
      "$(nn_counter "$TORCH_JSON" "BM_TrainStep/$net/libtorch/process_time" items_per_second)" 2
  fi
  limit="$("$PY" -c 'import sys; print(float(sys.argv[1]) * 1e9 / float(sys.argv[2]))' \
    "$(nn_flop_limit)" "$(nn_counter "$NN_JSON" "BM_TrainStep/$net/auto/process_time" flops)")"
  report "DQN step $label steps/s" "$ours" "FLOP limit" "$limit" 2
}

bench_nn_train_small() { nn_train_step cartpole_4-120-84-2_b128 "4-120-84-2 b128"; }
bench_nn_train_large() { nn_train_step mealsim_96-256-256-200_b256 "96-256-256-200 b256"; }

# Single-state inference, forwards/s: float32 and int8 against libtorch's float32.
bench_nn_predict() {
  nn_run
  torch_run || return 0
  local net label
  for net in cartpole_4-120-84-2_b1 cartpole256_4-256-256-2_b1 candidates240_119-128-64-1_b240; do
    label="${net#*_}"
    report "predict $label f32/s" "$(nn_counter "$NN_JSON" "BM_Predict/$net/float32/process_time" items_per_second)" \
      "libtorch" "$(nn_counter "$TORCH_JSON" "BM_Predict/$net/libtorch/process_time" items_per_second)" 2
    report "predict $label int8/s" "$(nn_counter "$NN_JSON" "BM_Predict/$net/int8/process_time" items_per_second)" \
      "libtorch" "$(nn_counter "$TORCH_JSON" "BM_Predict/$net/libtorch/process_time" items_per_second)" 2
  done
}

# CartPole DQN training, env included, CleanRL dqn.py's settings on both sides (50 000 steps,
# learning from 10 000): ours against the PyTorch script, per CPU second (robust to load).
bench_dqn_train() {
  local exe json peer_json ours peer
  exe="$(bench_exe bench_dqn)"
  json="$RESULTS_DIR/bench_dqn.json"
  peer_json="$RESULTS_DIR/cleanrl_dqn_cartpole.json"
  "$exe" --benchmark_out="$json" --benchmark_out_format=json >/dev/null
  "$PY" bench/peers/cleanrl_dqn_cartpole.py --total-timesteps 50000 >"$peer_json"
  ours="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["benchmarks"][0]["items_per_second"])' "$json")"
  peer="$(json_field "$peer_json" steps_per_cpu_s)"
  report "CartPole DQN training steps/s (CPU)" "$ours" "cleanrl_pytorch" "$peer"
}

# PolicySnapshot scoring 240 candidates of one state, float32 and int8 (microseconds; no
# peer in this run: bench_nn's BM_PredictCandidates and the libtorch peer give the plain
# forward).
bench_snapshot() {
  local exe json
  exe="$(bench_exe bench_snapshot)"
  json="$RESULTS_DIR/bench_snapshot.json"
  run_gbench "$exe" "$json" 'BM_SnapshotScore'
  "$PY" - "$json" <<'PYEOF'
import json, sys
for r in json.load(open(sys.argv[1]))["benchmarks"]:
    if r.get("aggregate_name") == "median":
        print("%-40s %8.1f us cpu (%s)" % (r["run_name"], r["cpu_time"], r.get("label", "")))
PYEOF
}

main() {
  local names=("$@")
  if [[ ${#names[@]} -eq 0 ]]; then
    names=("${BENCHMARKS[@]}")
  fi
  local name
  for name in "${names[@]}"; do
    declare -F "bench_$name" >/dev/null || die "unknown benchmark '$name' (known: ${BENCHMARKS[*]})"
  done
  [[ -d "$BUILD_DIR" ]] || die "build directory '$BUILD_DIR' not found (set FORKCAST_BUILD_DIR)"
  PY="$(find_python)"
  mkdir -p "$RESULTS_DIR"
  printf 'benchmark\tours\tpeer\tpeer_value\tratio\n' >"$SUMMARY"
  for name in "${names[@]}"; do
    "bench_$name"
  done
  echo "results: $RESULTS_DIR (summary: $SUMMARY)"
}

main "$@"
