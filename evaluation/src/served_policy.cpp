#include "forkcast/evaluation/served_policy.hpp"

#include "forkcast/env/mealsim.hpp"

namespace forkcast::evaluation {

ServedMealPolicy::ServedMealPolicy(std::shared_ptr<const policy::PolicySnapshot> snapshot,
                                   const config::ExplorationConfig& exploration)
    : snapshot_(std::move(snapshot)), exploration_(exploration) {
  candidates_.reserve(policy::kMaxCandidates);
}

policy::Decision ServedMealPolicy::decide(const env::MealSim& sim, std::uint64_t draw_seed) {
  candidates_.clear();
  const auto mask = sim.action_mask();
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) candidates_.push_back(static_cast<std::int32_t>(m));
  }
  policy::DecisionRequest request;
  request.slot = sim.tracker().slot();
  request.candidates = candidates_;
  request.epsilon = policy::serving_epsilon(exploration_, sim.step_index());
  request.temperature = exploration_.serving_temperature;
  request.draw_seed = draw_seed;
  request.n = 1;
  return policy::decide(snapshot_, sim.tracker(), request, workspace_);
}

env::Action ServedMealPolicy::act(const env::MealSim& sim, std::mt19937_64& rng) {
  const std::uint64_t draw_seed = rng();
  return static_cast<env::Action>(candidates_[decide(sim, draw_seed).chosen]);
}

}  // namespace forkcast::evaluation
