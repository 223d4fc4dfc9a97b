// advice_lm_corpus: writes the training corpus of the bundled advice model.
//
//   advice_lm_corpus --data data --out build/advice-lm --examples 160000 --seed 20261201
//
// Writes <out>/corpus.jsonl (one {"prompt", "advice"} object a line; the prompt is
// facts_prompt() + "Advice:", the system text is in <out>/system.txt), and
// <out>/heldout_meals.txt (the 10 % of meals never used, for evaluation). Deterministic:
// the same catalog, seed and count give the same bytes.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "forkcast/advice/facts.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "sampling.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Writes the advice-model training corpus from the catalog"};
  std::string data_dir = "data";
  std::string out_dir = "build/advice-lm";
  long examples = 160'000;
  std::uint64_t seed = 20261201;
  app.add_option("--data", data_dir, "catalog folder (foods.csv, meals.yaml, population.yaml)");
  app.add_option("--out", out_dir, "output folder");
  app.add_option("--examples", examples, "number of prompt/advice pairs")
      ->check(CLI::Range(1L, 100'000'000L));
  app.add_option("--seed", seed, "generator seed");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto world = forkcast::advice_lm::load_world(data_dir);
    // Named references, not a structured binding: lambdas below capture them, which clang
    // before 16 does not allow for bindings.
    const auto& catalog = world.catalog;
    const auto& population = world.population;
    const auto& split = world.split;
    std::filesystem::create_directories(out_dir);
    {
      std::ofstream held(std::filesystem::path(out_dir) / "heldout_meals.txt");
      for (auto m : split.heldout) held << catalog.meals()[m].id << "\n";
    }
    {
      std::ofstream sys(std::filesystem::path(out_dir) / "system.txt", std::ios::binary);
      sys << forkcast::advice::system_prompt();
    }
    std::mt19937_64 rng(seed);
    long skipped = 0;
    // Writes `count` pairs for meals of `meals`; a share of them under made-up names.
    auto write = [&](const char* file, const std::vector<std::size_t>& meals, long count,
                     double synthetic_share) {
      std::ofstream out(std::filesystem::path(out_dir) / file, std::ios::binary);
      std::size_t bytes = 0;
      for (long written = 0; written < count;) {
        auto facts = forkcast::advice_lm::sample_facts(catalog, population, meals, rng);
        if (std::uniform_real_distribution<double>(0, 1)(rng) < synthetic_share) {
          facts.meal_name = forkcast::advice_lm::synthetic_meal_name(catalog, rng);
        }
        const auto advice = forkcast::advice_lm::sample_advice(facts, rng);
        if (advice.empty()) {
          ++skipped;
          continue;
        }
        nlohmann::json j;
        j["prompt"] =
            forkcast::advice::facts_prompt(facts) + std::string(forkcast::advice::kAdviceCue);
        j["advice"] = advice;
        const auto line = j.dump();
        bytes += line.size() + 1;
        out << line << "\n";
        ++written;
      }
      return bytes;
    };
    const auto train_bytes = write("corpus.jsonl", split.train, examples, 0.25);
    // Validation pairs on held-out meals (real names): the loss the model card reports.
    const auto valid_bytes = write("valid.jsonl", split.heldout, std::max(1L, examples / 80), 0.0);
    std::printf(
        "advice_lm_corpus: %ld training pairs (%zu bytes), %zu validation bytes; %ld drawn texts "
        "failed "
        "grounding and were redrawn; %zu train meals, %zu held out -> %s\n",
        examples, train_bytes, valid_bytes, skipped, split.train.size(), split.heldout.size(),
        out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "advice_lm_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
