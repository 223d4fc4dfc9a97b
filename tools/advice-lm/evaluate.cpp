// advice_lm_eval: the acceptance evaluation of an advice model (models/advice-lm.md).
//
//   advice_lm_eval --model models/advice-lm-q8_0.gguf --prompts 500 --seed 7 --samples 20
//
// Draws situations for the held-out meals only (never in the corpus), asks the engine for
// advice (greedy), and reports how many of the model's own texts pass the grounding check,
// which rule the others broke, and that every returned text (after the template fallback)
// is grounded. Prints markdown; --json writes the numbers too.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "forkcast/advice/engine.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "sampling.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Evaluates an advice model on held-out meals"};
  std::string data_dir = "data", model = "models/advice-lm-q8_0.gguf", manifest, json_path;
  int prompts = 500, samples = 20, threads = 1;
  std::uint64_t seed = 7;
  bool allow_unknown = false;
  app.add_option("--data", data_dir, "catalog folder");
  app.add_option("--model", model, "GGUF model");
  app.add_option("--manifest", manifest, "sha256 manifest (default: beside the model)");
  app.add_flag("--allow-unknown-model", allow_unknown, "load a model missing from the manifest");
  app.add_option("--prompts", prompts, "situations to evaluate")->check(CLI::Range(1, 100000));
  app.add_option("--samples", samples, "generations to print")->check(CLI::Range(0, 1000));
  app.add_option("--seed", seed, "situation seed");
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256));
  app.add_option("--json", json_path, "also write the numbers as JSON");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto world = forkcast::advice_lm::load_world(data_dir);
    const auto& [catalog, population, split] = world;
    forkcast::advice::EngineOptions options;
    options.model_path = model;
    options.manifest_path = manifest;
    options.allow_unknown_model = allow_unknown;
    options.contexts = 1;
    options.threads = threads;
    options.queue_capacity = 4;
    forkcast::advice::AdviceEngine engine(options);
    if (!engine.ready()) {
      std::fprintf(stderr, "advice_lm_eval: %s\n", engine.load_error().c_str());
      return 1;
    }
    std::mt19937_64 rng(seed);
    int model_grounded = 0, returned_grounded = 0;
    std::map<std::string, int> failures;
    std::string sample_md;
    double total_ms = 0;
    long tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < prompts; ++i) {
      const auto facts = forkcast::advice_lm::sample_facts(catalog, population, split.heldout, rng);
      const auto r = engine.advise(facts, std::chrono::minutes(1));
      const auto g = forkcast::advice::check_grounding(r.model_text, facts);
      if (g.ok()) {
        ++model_grounded;
      } else {
        ++failures[std::string(forkcast::advice::rule_name(g.rule))];
      }
      if (forkcast::advice::check_grounding(r.text, facts).ok()) ++returned_grounded;
      total_ms += r.total_ms;
      tokens += r.generated_tokens;
      if (i < samples) {
        sample_md +=
            "| " + std::to_string(i + 1) + " | " + facts.meal_name + " (" + facts.slot + ", " +
            facts.goal +
            (facts.excluded.empty() ? "" : ", avoids " + std::to_string(facts.excluded.size())) +
            ") | " + r.model_text + " | " +
            (g.ok() ? "yes" : std::string(forkcast::advice::rule_name(g.rule)) + ": " + g.detail) +
            " |\n";
      }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& info = engine.model_info();
    std::printf("## Evaluation: %s\n\n", model.c_str());
    std::printf("- model: %s, %llu parameters, %.1f MB of tensors, sha256 %s\n",
                info.description.c_str(), static_cast<unsigned long long>(info.parameters),
                static_cast<double>(info.size_bytes) / 1e6, info.sha256.c_str());
    std::printf("- %d prompts on %zu held-out meals (seed %llu), greedy, %d thread(s)\n", prompts,
                split.heldout.size(), static_cast<unsigned long long>(seed), threads);
    std::printf("- model texts passing the grounding check: %d / %d = %.1f %%\n", model_grounded,
                prompts, 100.0 * model_grounded / prompts);
    for (const auto& [rule, n] : failures) std::printf("  - failed %s: %d\n", rule.c_str(), n);
    std::printf("- returned texts (after the template fallback) grounded: %d / %d = %.1f %%\n",
                returned_grounded, prompts, 100.0 * returned_grounded / prompts);
    std::printf(
        "- %.1f generated tokens per advice on average, %.1f ms per advice, %.1f s in all\n\n",
        static_cast<double>(tokens) / prompts, total_ms / prompts, secs);
    if (samples > 0) {
      std::printf(
          "| # | meal (slot, goal, restrictions) | generated advice | grounded "
          "|\n|---|---|---|---|\n%s\n",
          sample_md.c_str());
    }
    if (!json_path.empty()) {
      nlohmann::json j = {{"model", model},
                          {"sha256", info.sha256},
                          {"prompts", prompts},
                          {"model_grounded", model_grounded},
                          {"returned_grounded", returned_grounded},
                          {"failures", failures},
                          {"mean_ms", total_ms / prompts},
                          {"mean_tokens", static_cast<double>(tokens) / prompts}};
      std::ofstream(json_path) << j.dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "advice_lm_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
