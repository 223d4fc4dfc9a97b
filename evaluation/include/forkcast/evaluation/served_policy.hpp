// The served policy as a MealSim policy: `forkcast evaluate --policy served:<model>` runs the
// service's own decision path (policy::decide) in the simulator, exploration included, so
// the number an evaluation reports is the number of what POST /v1/recommendations does.
//
// At each step: the candidates are the slot's allowed meals in catalog order (the hard mask
// the service applies), epsilon is policy::serving_epsilon(exploration, decisions) where
// decisions counts this policy's decisions for the simulated user since its week began (a
// new user, as the service sees one), and the draw seed is one 64-bit output of the
// evaluation's generator. The suggestion is the drawn meal (rank 1 of the response).
//
// Ownership: shares the snapshot; the catalog must outlive the policy. Not thread-safe.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/baselines.hpp"
#include "forkcast/policy/decide.hpp"

namespace forkcast::evaluation {

class ServedMealPolicy final : public env::MealPolicy {
 public:
  ServedMealPolicy(std::shared_ptr<const policy::PolicySnapshot> snapshot, const config::ExplorationConfig& exploration);
  std::string_view name() const override { return "served"; }
  env::Action act(const env::MealSim& sim, std::mt19937_64& rng) override;
  // The same decision with the draw seed given (a logged decision's draw_seed replays it).
  policy::Decision decide(const env::MealSim& sim, std::uint64_t draw_seed);
  // The candidates of the last decision (catalog indices, catalog order).
  const std::vector<std::int32_t>& candidates() const noexcept { return candidates_; }

 private:
  std::shared_ptr<const policy::PolicySnapshot> snapshot_;
  config::ExplorationConfig exploration_;
  policy::DecisionWorkspace workspace_;
  std::vector<std::int32_t> candidates_;
};

}  // namespace forkcast::evaluation
