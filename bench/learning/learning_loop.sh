#!/usr/bin/env bash
# The learning loop end to end (docs/learning-loop.md "Measured"): one `forkcast serve` on
# simulated time with a start model, then `cycles` times: a week of simulated traffic
# (forkcast simulate-traffic: new MealSim users as HTTP clients) and one `forkcast learn
# --once`; then a last week on whatever is served at the end. Each week's online return is
# the served policy's at that time (the model the previous cycle left in production).
#
# Usage: bench/learning/learning_loop.sh START_MODEL OUT_DIR [CYCLES [USERS [POPULATION [SEED]]]]
#   START_MODEL  model.safetensors to start from (served as production)
#   OUT_DIR      a new folder: database, journal, models, reports, traffic-*.json, learn-*.json, summary.json
#   CYCLES       learner cycles (default 8); USERS per week (default 300); POPULATION (default
#                data/population.yaml); SEED of the users (default 1000; week k uses SEED + 100000 k)
# Extra settings pass through the environment (FORKCAST_LEARNING__UPDATES=..., ...); LEARN_ARGS
# goes to every `forkcast learn` (e.g. "--override-gate promote" to measure the update alone).
# Bounded: every process it starts is stopped by PID on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exe=${FORKCAST_EXE:-$root/build/apps/forkcast}
start_model=$(realpath "$1"); out=$2; cycles=${3:-8}; users=${4:-300}
population=$(realpath "${5:-$root/data/population.yaml}"); seed=${6:-1000}
[[ -e $out ]] && { echo "learning_loop: $out exists; give a new folder" >&2; exit 2; }
mkdir -p "$out/policies"
out=$(realpath "$out")
cp "$start_model" "$out/policies/mealsim-dqn-default.safetensors"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export FORKCAST_DATABASE__DATA_DIR=$out/pgdata FORKCAST_DATABASE__PORT=$(free_port)
export FORKCAST_SERVER__PORT=$(free_port) FORKCAST_SERVER__SIMULATION_CLOCK=true
export FORKCAST_SERVER__DECISION_JOURNAL_DIR=$out/journal FORKCAST_POLICY__MODEL_DIR=$out/policies
export FORKCAST_SERVER__RATE_LIMIT_PER_SECOND=${FORKCAST_SERVER__RATE_LIMIT_PER_SECOND:-100000}
export FORKCAST_SERVER__RATE_LIMIT_BURST=${FORKCAST_SERVER__RATE_LIMIT_BURST:-100000}
export FORKCAST_ADVICE__ENABLED=false
export FORKCAST_LEARNING__CLOCK=log FORKCAST_LEARNING__MODELS_DIR=$out/models FORKCAST_LEARNING__REPORTS_DIR=$out/reports
export FORKCAST_LEARNING__REWARD_WAIT_S=${FORKCAST_LEARNING__REWARD_WAIT_S:-3600}
export FORKCAST_LEARNING__NEXT_WAIT_S=${FORKCAST_LEARNING__NEXT_WAIT_S:-43200}
cd "$root"
"$exe" serve > "$out/serve.log" 2>&1 &
serve_pid=$!
trap 'kill -TERM $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$FORKCAST_SERVER__PORT/readyz" > /dev/null && break
  kill -0 $serve_pid 2>/dev/null || { echo "learning_loop: serve exited:"; tail -5 "$out/serve.log"; exit 1; } >&2
  sleep 0.1
done
week_start() { date -u -d "2030-01-07 +$(( 7 * ($1 - 1) )) days" +%F; }  # Mondays
started=$(date +%s)
for k in $(seq 1 $((cycles + 1))); do
  "$exe" simulate-traffic --port "$FORKCAST_SERVER__PORT" --users "$users" --seed $((seed + 100000 * k)) \
    --start "$(week_start "$k")" --population "$population" --out "$out/traffic-$k.json" > "$out/traffic-$k.line" 2>> "$out/progress.log"
  echo "week $k: $(python3 -c "import json,sys; d=json.load(open('$out/traffic-$k.json')); r=d['weekly_return']; print(f\"return {r['value']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] acceptance {d['acceptance']['value']:.3f} served {d['served_by_model']}\")")"
  (( k > cycles )) && break
  # Every week but the last is followed by a cycle, once its reward and next-state windows
  # have closed: the log's clock is its newest decision, so the cycle learns from every
  # decision up to the end of the week minus the waits.
  "$exe" learn --once ${LEARN_ARGS:-} > "$out/learn-$k.json" 2>> "$out/progress.log"
  echo "cycle $k: $(python3 -c "import json; d=json.load(open('$out/learn-$k.json')); print(d['outcome'], d.get('model_version'), '-', d['reason'][:160])")"
done
echo "learning_loop: $cycles cycles in $(( $(date +%s) - started )) s; $out"
