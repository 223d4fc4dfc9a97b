// decide(): the one decision function of forkcast. The service's POST /v1/recommendations
// calls it, `forkcast evaluate --policy served:<model>` calls it (evaluation/policy_loader),
// and the learner will: what is served is exactly what is evaluated.
//
// One decision, in order:
//   1. observation — the user's tracker writes it for the slot asked about (a late request
//      keeps the state and changes only the slot one-hot, env/observation.hpp);
//   2. score — the snapshot scores every candidate (catalog indices that passed the hard
//      mask, in catalog order) with its recency, in the calling thread's workspace;
//   3. probabilities — epsilon-greedy over the candidates (explore.hpp: exact ties share
//      the greedy mass), or, with a temperature T > 0, (1 - epsilon) softmax(score / T) +
//      epsilon uniform;
//   4. sample — one index drawn from the probabilities with the stateless seeded rule of
//      sample_from_pmf(pmf, seed), so a logged draw_seed replays the choice;
//   5. rank — the drawn meal first (it is what the policy acts on), then by score, ties by
//      catalog order; only the n shown are ordered.
//
// Ownership: a Decision's spans point into the DecisionWorkspace; they stay valid until the
// workspace's next decide(). A workspace belongs to one thread at a time.
// Allocation: none after the workspace has been sized for the snapshot (the first decision
// with a snapshot, or after a promotion to one of other layer sizes).
// Errors: std::invalid_argument naming the argument for no candidates, more than
// kMaxCandidates, n < 1, an epsilon outside [0, 1], or a slot outside 0..3.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/observation.hpp"
#include "forkcast/env/user_tracker.hpp"
#include "forkcast/policy/snapshot.hpp"

namespace forkcast::policy {

// Serving's exploration: epsilon decays exponentially over the decisions already made for
// this user (config exploration.serving_*; an epsilon_min above epsilon_max is read as
// epsilon_max, a constant).
double serving_epsilon(const config::ExplorationConfig& exploration, std::int64_t decisions);

// Per-thread scratch of decide(), sized once for kMaxCandidates.
class DecisionWorkspace {
 public:
  DecisionWorkspace();
  // The snapshot's scoring workspace, rebuilt when the snapshot changes. Ownership, not the
  // address, tells snapshots apart: a promoted snapshot may be allocated where a freed one
  // lived, and the weak reference keeps the old one's control block (never its weights)
  // from being reused.
  ScoringWorkspace& scoring_for(const std::shared_ptr<const PolicySnapshot>& snapshot);

  std::array<float, env::kObservationSize> observation{};
  std::vector<float> recency, scores;
  std::vector<double> probabilities;
  std::vector<std::int32_t> order;

 private:
  std::weak_ptr<const PolicySnapshot> scoring_for_;
  std::optional<ScoringWorkspace> scoring_;
};

struct DecisionRequest {
  env::Slot slot = env::Slot::breakfast;     // the slot asked about (may be earlier than the tracker's)
  std::span<const std::int32_t> candidates;  // catalog indices, the hard mask applied, catalog order
  double epsilon = 0;                         // serving_epsilon() in the service
  double temperature = 0;                     // 0: epsilon-greedy; > 0: softmax(score / T), then epsilon mixed in
  std::uint64_t draw_seed = 0;                // the exploration draw's seed (logged)
  int n = 1;                                  // meals to rank, >= 1 (fewer if fewer candidates)
};

// What was decided; spans into the workspace (see the top of this file).
struct Decision {
  std::span<const float> observation;         // kObservationSize values, as scored
  std::span<const float> recency;             // per candidate
  std::span<const float> scores;              // per candidate
  std::span<const double> probabilities;      // per candidate, the logged propensities
  std::size_t chosen = 0;                     // position in candidates of the drawn meal
  std::size_t greedy = 0;                     // position of the best-scored meal (lowest on ties)
  std::span<const std::int32_t> ranked;       // positions in candidates, chosen first, min(n, count)
};

Decision decide(const std::shared_ptr<const PolicySnapshot>& snapshot, const env::UserTracker& tracker,
                const DecisionRequest& request, DecisionWorkspace& workspace);

// Steps 2 and 3 of decide() for a state already observed: the candidates' scores and their
// probabilities (epsilon-greedy, or softmax at `temperature` > 0 with epsilon mixed in),
// into `scores` and `pmf` (candidates.size() each). decide() runs exactly this; the
// learner's gate runs it on logged decisions (observation, recency, epsilon and temperature
// as logged) to get the probabilities a model would have served them with.
// Errors as decide()'s, and std::invalid_argument when the spans' sizes differ or the
// temperature is negative or not finite.
void score_and_probabilities(const std::shared_ptr<const PolicySnapshot>& snapshot, std::span<const float> observation,
                             std::span<const std::int32_t> candidates, std::span<const float> recency, double epsilon,
                             double temperature, std::span<float> scores, std::span<double> pmf,
                             DecisionWorkspace& workspace);

}  // namespace forkcast::policy
