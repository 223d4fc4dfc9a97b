// Baseline policies for MealSim, usable by training reports and the evaluator:
//   random          uniform among the meals allowed now;
//   popularity      the allowed meal most often accepted across the population
//                   (estimated from simulated logs of a random policy);
//   myopic-oracle   knows the hidden taste and maximises the immediate expected reward;
//   planning-oracle knows the hidden taste and also values what a choice does to the
//                   rest of the day (nutrition budget), to satisfaction and to boredom —
//                   the evidence that MealSim rewards planning (docs/mealsim.md).
// Oracles read hidden simulator state; they exist to bound what a learned policy can do.
#pragma once

#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "forkcast/env/mealsim.hpp"

namespace forkcast::env {

class MealPolicy {
 public:
  virtual ~MealPolicy() = default;
  virtual std::string_view name() const = 0;
  // Picks an allowed meal for the simulator's current state. `rng` is the policy's own
  // generator (never the simulator's), so policies cannot disturb common random numbers.
  virtual Action act(const MealSim& sim, std::mt19937_64& rng) = 0;
};

class RandomPolicy final : public MealPolicy {
 public:
  std::string_view name() const override { return "random"; }
  Action act(const MealSim& sim, std::mt19937_64& rng) override;

 private:
  std::vector<Action> allowed_;  // scratch, reused across calls
};

class PopularityPolicy final : public MealPolicy {
 public:
  explicit PopularityPolicy(std::vector<double> popularity) : popularity_(std::move(popularity)) {}
  std::string_view name() const override { return "popularity"; }
  Action act(const MealSim& sim, std::mt19937_64& rng) override;

 private:
  std::vector<double> popularity_;
};

class MyopicOraclePolicy final : public MealPolicy {
 public:
  std::string_view name() const override { return "myopic-oracle"; }
  Action act(const MealSim& sim, std::mt19937_64& rng) override;
};

// The planning oracle's view of one candidate: acceptance probability, expected reward
// of this step (the myopic oracle's score) and the planner's score.
struct PlanningTerms {
  double accept_probability = 0;
  double expected_reward = 0;
  double score = 0;
};

class PlanningOraclePolicy final : public MealPolicy {
 public:
  std::string_view name() const override { return "planning-oracle"; }
  Action act(const MealSim& sim, std::mt19937_64& rng) override;
  // The planner's score of `meal` now (expected reward plus its look-ahead terms).
  static double score(const MealSim& sim, Action meal);
  // The score with the two terms it starts from, computed once.
  static PlanningTerms terms(const MealSim& sim, Action meal);
};

// Acceptance rate per meal ((accepted + 1) / (offered + 2)) from `users` simulated weeks
// of the random policy, seeded by `seed`.
std::vector<double> estimate_popularity(const Catalog& catalog, const Population& population,
                                        const config::MealSimConfig& config, int users, std::uint64_t seed);

struct EpisodeResult {
  double total_reward = 0;
  EpisodeStats stats;
};

// Runs one week of `policy` from sim.reset(seed).
EpisodeResult run_episode(MealSim& sim, MealPolicy& policy, std::uint64_t seed, std::mt19937_64& policy_rng);

}  // namespace forkcast::env
