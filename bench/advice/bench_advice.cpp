// bench_advice: the advice engine's speed (docs/advice.md, "Performance"), printed as JSON
// for run_advice_bench.sh, which puts it beside llama.cpp's own llama-bench.
//
//   bench_advice --model models/advice-lm-q8_0.gguf --threads 1 --requests 100
//
// For the same situations, with and without the cached system prefix: time to first
// token and full-advice latency (p50, p99) for up to --max-new-tokens tokens, and the
// engine's generation rate (tokens after the first / time after the first, so prompt
// processing is excluded, as in llama-bench's tg test). Also a single-thread memory read
// bandwidth, and the bound it sets: bandwidth / model bytes tokens per second.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <vector>

#include "forkcast/advice/engine.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "sampling.hpp"

namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Sums 1 GiB of 64-bit words, best of three: what one core can stream from memory.
double read_bandwidth_gbs() {
  std::vector<std::uint64_t> buf((1ULL << 30) / sizeof(std::uint64_t), 1);
  double best = 0;
  volatile std::uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (std::size_t i = 0; i + 3 < buf.size(); i += 4) {
      s0 += buf[i];
      s1 += buf[i + 1];
      s2 += buf[i + 2];
      s3 += buf[i + 3];
    }
    sink = sink + s0 + s1 + s2 + s3;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(buf.size() * sizeof(std::uint64_t)) / s / 1e9);
  }
  return best;
}

nlohmann::json run(const forkcast::advice::EngineOptions& options,
                   const std::vector<forkcast::advice::AdviceFacts>& facts, int warmup) {
  forkcast::advice::AdviceEngine engine(options);
  if (!engine.ready()) throw std::runtime_error(engine.load_error());
  for (int i = 0; i < warmup; ++i)
    engine.advise(facts[static_cast<std::size_t>(i) % facts.size()], std::chrono::minutes(1));
  std::vector<double> ttft, total;
  double gen_ms = 0;
  long gen_tokens = 0, all_tokens = 0;
  for (const auto& f : facts) {
    const auto r = engine.advise(f, std::chrono::minutes(1));
    ttft.push_back(r.first_token_ms);
    total.push_back(r.total_ms);
    all_tokens += r.generated_tokens;
    if (r.generated_tokens > 1) {
      gen_tokens += r.generated_tokens - 1;
      gen_ms += r.total_ms - r.first_token_ms;
    }
  }
  return {
      {"prefix_cache", options.prefix_cache},
      {"requests", facts.size()},
      {"mean_new_tokens", static_cast<double>(all_tokens) / static_cast<double>(facts.size())},
      {"ttft_ms_p50", percentile(ttft, 0.5)},
      {"ttft_ms_p99", percentile(ttft, 0.99)},
      {"total_ms_p50", percentile(total, 0.5)},
      {"total_ms_p99", percentile(total, 0.99)},
      {"gen_tokens_per_s", gen_ms > 0 ? 1000.0 * static_cast<double>(gen_tokens) / gen_ms : 0.0},
      {"model_bytes", engine.model_info().size_bytes}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Advice engine speed"};
  std::string model = "models/advice-lm-q8_0.gguf", data_dir = "data";
  int threads = 1, requests = 100, max_new = 48, warmup = 3;
  bool allow_unknown = false;
  app.add_option("--model", model);
  app.add_option("--data", data_dir);
  app.add_option("--threads", threads)->check(CLI::Range(1, 256));
  app.add_option("--requests", requests)->check(CLI::Range(1, 100000));
  app.add_option("--max-new-tokens", max_new)->check(CLI::Range(1, 512));
  app.add_flag("--allow-unknown-model", allow_unknown);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto world = forkcast::advice_lm::load_world(data_dir);
    const auto& [catalog, population, split] = world;
    std::mt19937_64 rng(11);
    std::vector<forkcast::advice::AdviceFacts> facts;
    for (int i = 0; i < requests; ++i)
      facts.push_back(forkcast::advice_lm::sample_facts(catalog, population, split.heldout, rng));
    forkcast::advice::EngineOptions o;
    o.model_path = model;
    o.allow_unknown_model = allow_unknown;
    o.contexts = 1;
    o.threads = threads;
    o.max_new_tokens = max_new;
    nlohmann::json out;
    out["threads"] = threads;
    out["model"] = model;
    out["cached"] = run(o, facts, warmup);
    o.prefix_cache = false;
    out["uncached"] = run(o, facts, warmup);
    const double bw = read_bandwidth_gbs();
    out["read_bandwidth_gbs"] = bw;
    out["bandwidth_bound_tokens_per_s"] = bw * 1e9 / out["cached"]["model_bytes"].get<double>();
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_advice: %s\n", e.what());
    return 1;
  }
  return 0;
}
