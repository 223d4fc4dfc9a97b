// Sampling of advice situations and reference advice texts from the catalog, shared by
// the corpus generator (training data) and the evaluation (held-out prompts), so both
// describe the same world. Deterministic: everything draws from the caller's generator.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "forkcast/advice/facts.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::advice_lm {

// Meals split by a stable hash of their id: 10 % held out for evaluation, never in the
// corpus. Stable across catalog edits that do not touch a meal's id.
struct MealSplit {
  std::vector<std::size_t> train;
  std::vector<std::size_t> heldout;
};
MealSplit split_meals(const env::Catalog& catalog, double heldout_fraction = 0.10);

// What every advice-lm program samples situations from: the catalog and population of
// `data_dir` and the catalog's meal split. Throws what Catalog/Population::load throw.
struct World {
  env::Catalog catalog;
  env::Population population;
  MealSplit split;
};
World load_world(const std::filesystem::path& data_dir);

// One situation: a user, a meal among `meals` they allow, what they ate before it today,
// maybe a side. Redraws the user until one allows some meal of the list.
advice::AdviceFacts sample_facts(const env::Catalog& catalog, const env::Population& population,
                                 const std::vector<std::size_t>& meals, std::mt19937_64& rng);

// A made-up meal name from words of catalog names (corpus augmentation: teaches copying).
std::string synthetic_meal_name(const env::Catalog& catalog, std::mt19937_64& rng);

// A varied reference advice for the facts: 2-3 sentences, every statement true of the
// facts. Returns "" when the drawn text would not pass check_grounding (the caller skips).
std::string sample_advice(const advice::AdviceFacts& facts, std::mt19937_64& rng);

}  // namespace forkcast::advice_lm
