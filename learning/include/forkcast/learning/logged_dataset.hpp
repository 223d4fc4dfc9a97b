// The learner's view of the decision log (docs/learning-loop.md "Transitions"): every
// usable decision once, as the policy saw it, and the transitions between a user's
// consecutive decisions, built from the stream db::LearningLog::scan delivers.
//
//   DatasetBuilder builder(catalog, mealsim, {.gamma = 0.9, .until = to});
//   log.scan({from, to + next_wait, reward_wait, next_wait}, [&](auto batch) { builder.add(batch); });
//   LoggedDataset data = std::move(builder).finish();
//
// A decision becomes a row: its observation (state_features), its candidates as catalog
// indices with their logged recency (candidate_features, dim 1) and propensities, the
// position of the chosen meal, its epsilon and softmax temperature (context.temperature, 0
// when absent: epsilon-greedy), the user (hashed) and the time. A decision
// decided before `until` also becomes a transition:
//   reward   = logged_reward() (reward.hpp) of its joined feedback, or the client's own
//              reward when reward_source is `client` and the client sent one;
//   next     = the row of the user's next decision (the join's next_event_id), discount
//              gamma; none (discount 0) when the user made no decision within the join's
//              next_wait, or when that decision could not be used.
// Decisions at or after `until` are read only to be next states: the scan must cover
// [from, until + next_wait) so that every transition's next decision is in it.
//
// Candidate features are rebuilt from the row: the candidates name meals of the catalog
// whose version (the first 16 hex digits of env::Catalog::content_hash) the row's
// context.catalog names; a row logged against another catalog is skipped (its indices
// would point at other meals), as is a row without the candidates' recency, with an
// observation of the wrong size, a meal the catalog does not know or probabilities that
// are not a distribution. Every skip is counted by reason (DatasetStats).
//
// Memory: ~(83 + 10 x candidates) x 4 bytes per row, ~2.5 kB for MealSim's slots; the
// builder keeps, beside the rows, one entry per decision still waiting for its next.
// Errors: std::invalid_argument naming the option for bad options. Rows are validated
// (and skipped with a count), never thrown on. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/db/learning_log.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/observation.hpp"
#include "forkcast/learning/reward.hpp"

namespace forkcast::learning {

enum class RewardSource : std::uint8_t {
  computed,  // logged_reward() of the feedback and the meals logged (MealSim's terms)
  client     // the sum of the rewards clients sent with their feedback; computed when none did
};
// "computed" | "client"; throws std::invalid_argument naming `field` and the allowed values.
RewardSource reward_source_from_name(std::string_view name, std::string_view field = "learning.reward_source");
std::string_view reward_source_name(RewardSource source) noexcept;

struct Transition {
  std::int32_t row = 0;       // the decision
  std::int32_t next_row = -1; // the user's next decision, -1: none (discount 0)
  float reward = 0;
  float discount = 0;         // gamma with a next decision, else 0
  bool accepted = false;      // the user accepted or ate the suggestion
};

// Columnar storage: row r's candidates are [candidate_begin[r], candidate_begin[r + 1]).
struct LoggedDataset {
  std::vector<float> observations;             // rows x env::kObservationSize
  std::vector<std::int64_t> candidate_begin{0}; // rows + 1 offsets
  std::vector<std::int16_t> candidates;        // catalog indices, as logged
  std::vector<float> recency;                  // per candidate, as logged
  std::vector<float> propensities;             // per candidate, the logged probabilities
  std::vector<std::int32_t> chosen;            // per row, position of the chosen meal in its candidates
  std::vector<float> epsilon;                  // per row, the logged exploration rate
  std::vector<float> temperature;              // per row, the logged softmax temperature (0: epsilon-greedy)
  std::vector<std::uint64_t> user_key;         // per row, FNV-1a 64 of the user id
  std::vector<db::Timestamp> decided_at;       // per row
  std::vector<std::string> event_id;           // per row
  std::vector<Transition> transitions;         // in log order

  std::int32_t rows() const noexcept { return static_cast<std::int32_t>(chosen.size()); }
  std::span<const float> observation(std::int32_t row) const {
    return {observations.data() + static_cast<std::size_t>(row) * env::kObservationSize, env::kObservationSize};
  }
  std::size_t candidate_count(std::int32_t row) const {
    return static_cast<std::size_t>(candidate_begin[static_cast<std::size_t>(row) + 1] -
                                    candidate_begin[static_cast<std::size_t>(row)]);
  }
  std::span<const std::int16_t> candidates_of(std::int32_t row) const {
    return {candidates.data() + candidate_begin[static_cast<std::size_t>(row)], candidate_count(row)};
  }
  std::span<const float> recency_of(std::int32_t row) const {
    return {recency.data() + candidate_begin[static_cast<std::size_t>(row)], candidate_count(row)};
  }
  std::span<const float> propensities_of(std::int32_t row) const {
    return {propensities.data() + candidate_begin[static_cast<std::size_t>(row)], candidate_count(row)};
  }
  std::int16_t chosen_meal(std::int32_t row) const {
    return candidates[static_cast<std::size_t>(candidate_begin[static_cast<std::size_t>(row)] +
                                               chosen[static_cast<std::size_t>(row)])];
  }
};

struct DatasetStats {
  std::int64_t decisions = 0;         // decisions the builder was given
  std::int64_t rows = 0;              // kept as rows
  std::int64_t transitions = 0;       // decisions before `until` that became transitions
  std::int64_t with_next = 0;         // transitions with a next state
  std::int64_t accepted = 0;          // transitions whose suggestion was accepted or eaten
  std::int64_t with_feedback = 0;     // transitions with any feedback in the window
  std::int64_t client_rewards = 0;    // transitions whose reward the client gave (reward_source client)
  std::int64_t next_unusable = 0;     // a next decision existed but was skipped: the transition ends
  std::int64_t after_until = 0;       // read as possible next states only
  double reward_sum = 0;              // over transitions
  // Skipped decisions, by reason.
  std::int64_t skipped_other_catalog = 0;
  std::int64_t skipped_no_recency = 0;
  std::int64_t skipped_bad_observation = 0;
  std::int64_t skipped_unknown_meal = 0;
  std::int64_t skipped_bad_probabilities = 0;
  std::int64_t skipped() const noexcept {
    return skipped_other_catalog + skipped_no_recency + skipped_bad_observation + skipped_unknown_meal +
           skipped_bad_probabilities;
  }
};

struct DatasetOptions {
  double gamma = 0.9;              // discount of a transition with a next state, in [0, 1]
  db::Timestamp until{};           // decisions before this become transitions
  RewardSource reward_source = RewardSource::computed;
};

class DatasetBuilder {
 public:
  // Borrows the catalog (it must outlive the builder) and copies the config. Throws std::invalid_argument
  // for a gamma outside [0, 1] or a catalog of more than 32 767 meals (indices are int16, as
  // in agent::ReplayBuffer).
  DatasetBuilder(const env::Catalog& catalog, const config::MealSimConfig& mealsim, DatasetOptions options);

  // Adds decisions in log order (the order LearningLog::scan streams them).
  void add(std::span<const db::JoinedDecision> batch);
  const DatasetStats& stats() const noexcept { return stats_; }
  // The dataset; the builder is spent.
  LoggedDataset finish() &&;

 private:
  // Returns the new row, or -1 when the decision is skipped (counted).
  std::int32_t add_row(const db::Decision& decision);
  float reward_of(const db::JoinedDecision& joined, std::int32_t row, bool& accepted, bool& client_reward) const;

  const env::Catalog& catalog_;
  config::MealSimConfig mealsim_;  // a copy: callers pass temporaries ({} for the defaults)
  DatasetOptions options_;
  std::string catalog_version_;
  LoggedDataset data_;
  DatasetStats stats_;
  std::unordered_map<std::string, std::int16_t> meal_index_;  // meal id -> catalog index
  std::vector<std::int16_t> scratch_candidates_;
  // Transitions waiting for their next decision: next event id -> transition index.
  std::unordered_map<std::string, std::size_t> waiting_for_;
};

// FNV-1a 64 of a user id: the key the learner splits users by (training vs gate).
std::uint64_t user_key_of(std::string_view user_id) noexcept;

}  // namespace forkcast::learning
