// A belief over the hidden half of one MealSim user, and the policies that act on it.
//
// MealBelief sees only what an app could know — the profile, what was suggested, whether
// the user accepted and what they ate — and keeps a belief over the rest: taste, boredom
// sensitivity, default meals and long-term satisfaction. It is a particle filter whose
// particles are whole simulated users. start() draws `particles` users whose archetype
// follows the posterior given the profile (share x profile_likelihood) and whose taste
// follows that archetype's prior, each with the real user's profile. observe() weighs
// each particle by the probability it gives to what happened (the acceptance or decline,
// and on a decline which of its default meals was eaten, floored at
// `default_evidence_floor`) and moves it with MealSim::replay, so each particle's
// satisfaction follows its own taste through the real history; it resamples
// (systematically) when the effective sample size falls below half.
//
// BeliefPolicy scores every allowed meal under each particle with the planning oracle's
// score (plan = true, "belief-planner") or the expected immediate reward (plan = false,
// "belief-myopic") and suggests the best weighted mean: the oracles' decision rules run on
// a belief instead of the truth. It reads no hidden state of the simulator it acts on, so
// it bounds what inferring the taste from one week of answers is worth (docs/mealsim.md §9).
//
// Ownership: both keep a pointer to the Population (it must outlive them); a started
// MealBelief also points to the simulator's Catalog. Not thread-safe. Deterministic given
// the generators they receive.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "forkcast/env/baselines.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::env {

struct BeliefOptions {
  int particles = 512;                  // simulated users in the belief, >= 1
  bool plan = true;                     // BeliefPolicy: planning oracle's score, else expected reward
  double default_evidence_floor = 0.1;  // likelihood of a decline to a meal outside a particle's defaults
};

// What the belief expects of suggesting one meal now: weighted means over the particles.
struct BeliefValue {
  double expected_reward = 0;     // MealSim::expected_reward
  double accept_probability = 0;  // MealSim::accept_probability
  double planning_score = 0;      // PlanningOraclePolicy::score
};

// What a learned policy reads from a belief about one candidate, appended after the
// simulator's kCandidateDynamicFeatures when a DQN is trained on a belief
// (`forkcast train --belief-particles N`): [0] expected reward / 3, [1] acceptance
// probability, [2] planning score / 5 (scaled to about [-1, 2]).
inline constexpr int kBeliefCandidateFeatures = 3;
void write_belief_features(const BeliefValue& value, float* out);

class MealBelief {
 public:
  // Throws std::invalid_argument for particles < 1 or a floor outside (0, 1].
  MealBelief(const Population& population, BeliefOptions options);

  // A new week for the user `sim` simulates: the prior given the profile (the only thing
  // read from `sim` besides its catalog and config). Throws std::invalid_argument unless
  // the week is at its first step (the belief must see every answer).
  void start(const MealSim& sim, std::mt19937_64& rng);
  // The last suggestion's outcome: `offered` was accepted, or declined and `eaten` eaten
  // instead. Call after every step that did not end the week.
  void observe(Action offered, bool accepted, Action eaten, std::mt19937_64& rng);
  // Means over the particles for suggesting `meal` now (allowed now). Requires start().
  BeliefValue value(Action meal) const;
  // Weighted mean of planning scores (plan) or expected rewards for every allowed meal of
  // `mask`, written into `scores` (same size as the mask; others untouched).
  void scores(std::span<const std::uint8_t> mask, bool plan, std::span<double> scores) const;

  bool started() const noexcept { return !particles_.empty() && !weight_.empty(); }
  int step_index() const noexcept { return started() ? particles_.front().step_index() : -1; }
  // Effective sample size of the current weights (1..particles).
  double effective_particles() const;
  const BeliefOptions& options() const noexcept { return options_; }

 private:
  void resample(std::mt19937_64& rng);

  const Population* population_;
  BeliefOptions options_;
  std::vector<MealSim> particles_;
  std::vector<double> log_weight_, weight_;  // weight_ normalised to sum 1
  std::vector<double> archetype_posterior_;  // cumulative, for drawing archetypes
  std::vector<MealSim> resampled_;           // scratch
};

class BeliefPolicy final : public MealPolicy {
 public:
  // Throws like MealBelief.
  BeliefPolicy(const Population& population, BeliefOptions options);

  std::string_view name() const override { return belief_.options().plan ? "belief-planner" : "belief-myopic"; }
  Action act(const MealSim& sim, std::mt19937_64& rng) override;
  const MealBelief& belief() const noexcept { return belief_; }

 private:
  MealBelief belief_;
  std::vector<double> score_;  // per catalog meal, scratch
  Action last_offered_ = -1;
  int last_step_ = -1;
  int accepted_before_ = 0;
};

// What an observer of `sim` learns from its last step, for policies that act on a
// MealBelief without seeing MealStep: whether `offered` was accepted (the week's accepted
// count grew past `accepted_before`) and what was eaten (the meal the tracker saw eaten
// one step ago). Returns {accepted, eaten}.
std::pair<bool, Action> observed_outcome(const MealSim& sim, Action offered, int accepted_before);

}  // namespace forkcast::env
