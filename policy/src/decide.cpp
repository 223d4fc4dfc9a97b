#include "forkcast/policy/decide.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "forkcast/policy/explore.hpp"

namespace forkcast::policy {

double serving_epsilon(const config::ExplorationConfig& c, std::int64_t decisions) {
  return epsilon_exponential(c.serving_epsilon_max, std::min(c.serving_epsilon_min, c.serving_epsilon_max), c.serving_decay,
                             decisions);
}

DecisionWorkspace::DecisionWorkspace()
    : recency(kMaxCandidates), scores(kMaxCandidates), probabilities(kMaxCandidates), order(kMaxCandidates) {}

ScoringWorkspace& DecisionWorkspace::scoring_for(const std::shared_ptr<const PolicySnapshot>& snapshot) {
  const bool same = !scoring_for_.owner_before(snapshot) && !snapshot.owner_before(scoring_for_);
  if (!scoring_ || !same) {  // a promoted model may have other layer sizes
    scoring_.emplace(snapshot->make_workspace());
    scoring_for_ = snapshot;
  }
  return *scoring_;
}

void score_and_probabilities(const std::shared_ptr<const PolicySnapshot>& snapshot, std::span<const float> observation,
                             std::span<const std::int32_t> candidates, std::span<const float> recency, double epsilon,
                             double temperature, std::span<float> scores, std::span<double> pmf,
                             DecisionWorkspace& workspace) {
  const std::size_t count = candidates.size();
  if (count == 0) throw std::invalid_argument("score_and_probabilities: candidates: none");
  if (count > static_cast<std::size_t>(kMaxCandidates)) {
    throw std::invalid_argument("score_and_probabilities: candidates: " + std::to_string(count) + " exceed " +
                                std::to_string(kMaxCandidates));
  }
  if (recency.size() != count || scores.size() != count || pmf.size() != count) {
    throw std::invalid_argument("score_and_probabilities: recency, scores and pmf must have one value per candidate (" +
                                std::to_string(count) + ")");
  }
  if (!(temperature >= 0.0) || !std::isfinite(temperature)) {
    throw std::invalid_argument("score_and_probabilities: temperature: " + std::to_string(temperature) +
                                " must be a finite number >= 0");
  }
  snapshot->score(observation, candidates, recency, scores, workspace.scoring_for(snapshot));
  if (temperature == 0.0) {
    epsilon_greedy_pmf(std::span<const float>(scores), {}, epsilon, pmf);  // validates epsilon
    return;
  }
  if (!(epsilon >= 0.0 && epsilon <= 1.0)) {
    throw std::invalid_argument("score_and_probabilities: epsilon: " + std::to_string(epsilon) + " is outside [0, 1]");
  }
  softmax_pmf(std::span<const float>(scores), {}, temperature, pmf);
  const double uniform = epsilon / static_cast<double>(count);
  for (double& p : pmf) p = (1.0 - epsilon) * p + uniform;
}

Decision decide(const std::shared_ptr<const PolicySnapshot>& snapshot, const env::UserTracker& tracker,
                const DecisionRequest& request, DecisionWorkspace& workspace) {
  const std::size_t count = request.candidates.size();
  if (count == 0) throw std::invalid_argument("decide: candidates: none (the hard mask left no meal)");
  if (count > static_cast<std::size_t>(kMaxCandidates)) {
    throw std::invalid_argument("decide: candidates: " + std::to_string(count) + " exceed " +
                                std::to_string(kMaxCandidates));
  }
  if (request.n < 1) throw std::invalid_argument("decide: n: " + std::to_string(request.n) + " must be >= 1");
  const auto slot_index = static_cast<int>(request.slot);
  if (slot_index < 0 || slot_index >= env::kNumSlots) {
    throw std::invalid_argument("decide: slot: " + std::to_string(slot_index) + " is outside 0.." +
                                std::to_string(env::kNumSlots - 1));
  }

  // 1. observation and the candidates' recencies
  tracker.write_observation(workspace.observation, request.slot);
  const std::span<float> recency(workspace.recency.data(), count);
  for (std::size_t i = 0; i < count; ++i) recency[i] = static_cast<float>(tracker.meal_recency(request.candidates[i]));

  // 2. score and 3. probabilities
  const std::span<float> scores(workspace.scores.data(), count);
  const std::span<double> pmf(workspace.probabilities.data(), count);
  score_and_probabilities(snapshot, workspace.observation, request.candidates, recency, request.epsilon,
                          request.temperature, scores, pmf, workspace);

  // 4. sample, with the stateless seeded rule a logged draw_seed replays
  Decision d;
  d.chosen = sample_from_pmf(std::span<const double>(pmf), request.draw_seed);
  d.greedy = argmax_masked(std::span<const float>(scores), {});

  // 5. rank: the drawn meal first, then by score (ties by catalog order); only the n shown
  const std::size_t shown = std::min<std::size_t>(static_cast<std::size_t>(request.n), count);
  const auto order = workspace.order.begin();
  std::iota(order, order + static_cast<std::ptrdiff_t>(count), 0);
  const auto first = static_cast<std::int32_t>(d.chosen);
  std::partial_sort(order, order + static_cast<std::ptrdiff_t>(shown), order + static_cast<std::ptrdiff_t>(count),
                    [&](std::int32_t a, std::int32_t b) {
                      if ((a == first) != (b == first)) return a == first;
                      const float sa = scores[static_cast<std::size_t>(a)], sb = scores[static_cast<std::size_t>(b)];
                      return sa != sb ? sa > sb : a < b;
                    });

  d.observation = workspace.observation;
  d.recency = recency;
  d.scores = scores;
  d.probabilities = pmf;
  d.ranked = std::span<const std::int32_t>(workspace.order.data(), shown);
  return d;
}

}  // namespace forkcast::policy
