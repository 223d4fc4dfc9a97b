#include "pending_decision.hpp"

namespace forkcast::service {

std::vector<std::string> meal_ids_of(const env::Catalog& catalog) {
  std::vector<std::string> ids;
  ids.reserve(catalog.meals().size());
  for (const env::Meal& meal : catalog.meals()) ids.push_back(meal.id);
  return ids;
}

db::Decision to_stored(const PendingDecision& p, std::span<const std::string> meal_ids) {
  db::Decision d;
  d.event_id = p.event_id;
  db::NewDecision& n = d.logged;
  n.user_id = p.user_id;
  n.decided_at = p.decided_at;
  n.slot = static_cast<db::Slot>(p.slot);
  n.model_version = p.model_version;
  // How the probabilities arose (policy/decide.hpp step 3); the learner's gate reads both.
  n.policy = p.temperature > 0 ? "softmax_epsilon" : "epsilon_greedy";
  n.epsilon = p.epsilon;
  n.candidates.reserve(p.candidates.size());
  n.scores.reserve(p.candidates.size());
  for (std::size_t i = 0; i < p.candidates.size(); ++i) {
    n.candidates.push_back(meal_ids[static_cast<std::size_t>(p.candidates[i])]);
    n.scores.push_back(p.scores[i]);  // floats: stored as the float's shortest text
  }
  n.probabilities = p.probabilities;  // exact: they must sum to 1
  n.chosen = n.candidates[p.chosen];
  for (const std::size_t r : p.ranked) n.ranked.push_back(n.candidates[r]);
  n.state_features.reserve(p.observation.size());
  for (const float x : p.observation) n.state_features.push_back(x);
  if (p.recency.size() == p.candidates.size()) {
    n.candidate_features.assign(p.recency.begin(), p.recency.end());
    n.candidate_feature_dim = 1;
  }
  n.context = {{"draw_seed", p.draw_seed}, {"step", p.step}, {"greedy", n.candidates[p.greedy]}, {"n", p.n}};
  if (n.candidate_feature_dim == 1) n.context["candidate_features"] = "recency";
  if (!p.catalog_version.empty()) n.context["catalog"] = p.catalog_version;
  if (p.temperature > 0) n.context["temperature"] = p.temperature;
  return d;
}

}  // namespace forkcast::service
