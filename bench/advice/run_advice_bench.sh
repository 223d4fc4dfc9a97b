#!/usr/bin/env bash
# The advice benchmark, side by side (docs/advice.md): llama.cpp's own llama-bench and
# forkcast's engine on the same model and thread count, then the ratio.
#   bench/advice/run_advice_bench.sh [model.gguf] [threads]
# Results: $FORKCAST_BUILD_DIR/bench-results/advice-*.json and a summary on stdout.
# REQUESTS (default 50) per round, ROUNDS (default 3).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}
model=${1:-$root/models/advice-lm-q8_0.gguf}
threads=${2:-1}
requests=${REQUESTS:-50}
results="$build_dir/bench-results"
mkdir -p "$results"
cd "$root"

llama_bench=$("$root/bench/advice/build_llama_bench.sh")
cmake --build "$build_dir" --target bench_advice >/dev/null

# tg48 at depth 192: 48 new tokens after a context about as long as an advice prompt.
# Rounds alternate the two programs so that load from anything else on the machine hits
# both alike; the summary takes the median round.
rounds=${ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
  "$llama_bench" -m "$model" -t "$threads" -p 0 -n 48 -d 192 -r 5 -o json > "$results/advice-llama-bench-$r.json"
  "$build_dir/bench/advice/bench_advice" --model "$model" --threads "$threads" --requests "$requests" \
    > "$results/advice-engine-$r.json"
done

python3 - "$results" "$rounds" <<'PY'
import json, statistics, sys
results, rounds = sys.argv[1], int(sys.argv[2])
peers, runs = [], []
for r in range(1, rounds + 1):
    lb = json.load(open(f"{results}/advice-llama-bench-{r}.json"))
    peers.append([x for x in lb if x.get("n_gen", 0) > 0][0]["avg_ts"])
    runs.append(json.load(open(f"{results}/advice-engine-{r}.json")))
med = lambda xs: statistics.median(xs)
peer = med(peers)
ours = med([x["cached"]["gen_tokens_per_s"] for x in runs])
bw = med([x["read_bandwidth_gbs"] for x in runs])
model_bytes = runs[0]["cached"]["model_bytes"]
bound = bw * 1e9 / model_bytes
c0 = runs[0]["cached"]
print(f"model {runs[0]['model']}, {runs[0]['threads']} thread(s), {rounds} rounds of {c0['requests']} requests, "
      f"{c0['mean_new_tokens']:.1f} new tokens on average (cap 48)")
per_engine = ", ".join("%.1f" % x["cached"]["gen_tokens_per_s"] for x in runs)
per_peer = ", ".join("%.1f" % p for p in peers)
# Each round runs the two back to back, so the ratio is taken per round (what load there
# was hit both alike) and the median of those ratios is the claim.
ratios = [x["cached"]["gen_tokens_per_s"] / p for x, p in zip(runs, peers)]
print(f"generation: engine {ours:.1f} tok/s, llama-bench tg48@d192 {peer:.1f} tok/s (medians of rounds); "
      f"ratio per round {', '.join('%.3f' % r for r in ratios)}; median ratio {med(ratios):.3f}")
print(f"  per round: engine {per_engine}; llama-bench {per_peer}")
print(f"memory bound: {bw:.1f} GB/s single-thread read / {model_bytes / 1e6:.1f} MB = {bound:.0f} tok/s; "
      f"llama-bench reaches {peer / bound:.2f} of it, the engine {ours / bound:.2f}")
print("| prefix cache | TTFT p50 | TTFT p99 | full advice p50 | full advice p99 |")
print("|---|---|---|---|---|")
for name in ("cached", "uncached"):
    row = {k: med([x[name][k] for x in runs]) for k in ("ttft_ms_p50", "ttft_ms_p99", "total_ms_p50", "total_ms_p99")}
    print(f"| {'on' if name == 'cached' else 'off'} | {row['ttft_ms_p50']:.1f} ms | {row['ttft_ms_p99']:.1f} ms | "
          f"{row['total_ms_p50']:.1f} ms | {row['total_ms_p99']:.1f} ms |")
PY
