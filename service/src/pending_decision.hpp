// PendingDecision: a decision as the request path hands it to the decision log (and, first,
// to the crash journal): catalog indices and raw numbers, no strings per candidate.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "forkcast/db/records.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/observation.hpp"

namespace forkcast::service {

// A decision as the request path hands it over: catalog indices and raw numbers, so that the
// request pays for three small copies, not for a hundred strings; the writer thread turns
// it into a db::Decision (meal ids, rounded numbers) just before storing.
struct PendingDecision {
  std::string event_id;
  std::string user_id;
  db::Timestamp decided_at{};
  env::Slot slot = env::Slot::breakfast;
  std::string model_version;
  double epsilon = 0;
  double temperature = 0;                // the softmax temperature (0: epsilon-greedy); 0 in older journals
  std::vector<std::int32_t> candidates;  // catalog indices
  std::vector<float> scores;             // per candidate
  std::vector<double> probabilities;     // per candidate
  std::size_t chosen = 0;                // index into candidates
  std::size_t greedy = 0;                // index into candidates
  std::vector<std::size_t> ranked;       // indices into candidates, in rank order
  std::array<float, env::kObservationSize> observation{};
  // Per candidate: the recency the candidate-scoring model saw beside the observation
  // (policy::Decision::recency). With the observation and the catalog it rebuilds every
  // candidate's input row (env::write_candidate_input), so the learner can score the logged
  // candidates exactly as the serving model did. Empty in decisions journaled by an older
  // binary.
  std::vector<float> recency;
  // The catalog the candidates were drawn from: the first 16 hex digits of
  // env::Catalog::content_hash(). Empty in decisions journaled by an older binary.
  std::string catalog_version;
  std::uint64_t draw_seed = 0;
  std::int64_t step = 0;
  int n = 0;
};

// The row stored for a pending decision: candidate i is the meal `meal_ids[candidates[i]]`
// (the catalog's ids in index order; the journal replays with the table it recorded).
// Scores and features are the float32 values, which the repository writes as their
// shortest float text.
// The catalog's meal ids in index order (what to_stored and the journal's meal table take).
std::vector<std::string> meal_ids_of(const env::Catalog& catalog);

db::Decision to_stored(const PendingDecision& pending, std::span<const std::string> meal_ids);

}  // namespace forkcast::service
