#!/usr/bin/env bash
# The advice benchmark, side by side (docs/advice.md): llama.cpp's own llama-bench and
# forkcast's engine on the same model and thread count, then the ratio.
#   bench/advice/run_advice_bench.sh [model.gguf] [threads]
# Results: $FORKCAST_BUILD_DIR/bench-results/advice-*.json and a summary on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}
model=${1:-$root/models/advice-lm-q8_0.gguf}
threads=${2:-1}
requests=${REQUESTS:-100}
results="$build_dir/bench-results"
mkdir -p "$results"
cd "$root"

llama_bench=$("$root/bench/advice/build_llama_bench.sh")
cmake --build "$build_dir" --target bench_advice >/dev/null

# tg48 at depth 192: 48 new tokens after a context about as long as an advice prompt.
"$llama_bench" -m "$model" -t "$threads" -p 0 -n 48 -d 192 -r 10 -o json > "$results/advice-llama-bench.json"
"$build_dir/bench/advice/bench_advice" --model "$model" --threads "$threads" --requests "$requests" \
  > "$results/advice-engine.json"

python3 - "$results/advice-llama-bench.json" "$results/advice-engine.json" <<'PY'
import json, sys
lb = json.load(open(sys.argv[1]))
ours = json.load(open(sys.argv[2]))
peer = [r for r in lb if r.get("n_gen", 0) > 0][0]["avg_ts"]
c, u = ours["cached"], ours["uncached"]
print(f"model {ours['model']}, {ours['threads']} thread(s), {c['requests']} requests, "
      f"{c['mean_new_tokens']:.1f} new tokens on average (cap 48)")
print(f"generation: engine {c['gen_tokens_per_s']:.1f} tok/s, llama-bench tg48@d192 {peer:.1f} tok/s, "
      f"ratio {c['gen_tokens_per_s'] / peer:.3f}")
print(f"memory bound: {ours['read_bandwidth_gbs']:.1f} GB/s single-thread read / {c['model_bytes'] / 1e6:.1f} MB "
      f"= {ours['bandwidth_bound_tokens_per_s']:.0f} tok/s; llama-bench reaches {peer / ours['bandwidth_bound_tokens_per_s']:.2f} of it")
print("| prefix cache | TTFT p50 | TTFT p99 | full advice p50 | full advice p99 |")
print("|---|---|---|---|---|")
for name, r in (("on", c), ("off", u)):
    print(f"| {name} | {r['ttft_ms_p50']:.1f} ms | {r['ttft_ms_p99']:.1f} ms | {r['total_ms_p50']:.1f} ms | {r['total_ms_p99']:.1f} ms |")
PY
