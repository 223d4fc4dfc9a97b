// A MealSim policy that sees only what an app could know — the profile, what it suggested,
// whether the user accepted and what they ate — and acts on a belief over the hidden rest:
// taste, boredom sensitivity, default meals and long-term satisfaction.
//
// The belief is a particle filter whose particles are whole simulated users. At the first
// step of a week it draws `particles` users whose archetype follows the posterior given the
// profile (share x profile_likelihood) and whose taste follows that archetype's prior, each
// with the real user's profile. After every step it weighs each particle by the probability
// it gives to what was observed (the acceptance or decline, and on a decline which of its
// default meals was eaten, floored at `default_evidence_floor`) and moves it with
// MealSim::replay, so each particle's satisfaction follows its own taste through the real
// history. It resamples (systematically) when the effective sample size falls below half.
//
// Acting: every allowed meal is scored under each particle with the planning oracle's
// score (plan = true, "belief-planner") or the expected immediate reward (plan = false,
// "belief-myopic"), and the meal with the highest weighted mean score is suggested. It
// reads no hidden state of the simulator it acts on: these are the oracles' decision rules
// run on a belief instead of the truth, i.e. a bound on what inferring the taste from one
// week of answers is worth with the oracles' own planning (docs/agents.md).
//
// Ownership: keeps a pointer to the Population (it must outlive the policy). Not
// thread-safe. Deterministic given the generator act() receives.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "forkcast/env/baselines.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::env {

struct BeliefOptions {
  int particles = 512;                  // simulated users in the belief, >= 1
  bool plan = true;                     // planning oracle's score, else expected reward
  double default_evidence_floor = 0.1;  // likelihood of a decline to a meal outside a particle's defaults
};

class BeliefPolicy final : public MealPolicy {
 public:
  // Throws std::invalid_argument for particles < 1 or a floor outside (0, 1].
  BeliefPolicy(const Population& population, BeliefOptions options);

  std::string_view name() const override { return options_.plan ? "belief-planner" : "belief-myopic"; }
  Action act(const MealSim& sim, std::mt19937_64& rng) override;

  // Effective sample size of the current weights (1..particles).
  double effective_particles() const;

 private:
  void start_week(const MealSim& sim, std::mt19937_64& rng);
  void observe(const MealSim& sim);
  void resample(std::mt19937_64& rng);

  const Population* population_;
  BeliefOptions options_;
  std::vector<MealSim> particles_;
  std::vector<double> log_weight_, weight_;  // weight_ normalised to sum 1
  std::vector<double> archetype_posterior_;  // cumulative, for drawing archetypes
  std::vector<double> score_;                // per catalog meal, scratch
  std::vector<MealSim> resampled_;           // scratch
  Action last_offered_ = -1;
  int last_step_ = -1;
  int accepted_before_ = 0;
};

}  // namespace forkcast::env
