#include "forkcast/learning/gate.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace forkcast::learning {

namespace {

std::string hex_key(std::uint64_t key) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(key));
  return text;
}

std::string fixed(double value, int digits = 4) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

}  // namespace

GateEstimator gate_estimator_from_name(std::string_view name, std::string_view field) {
  if (name == "dr") return GateEstimator::dr;
  if (name == "snips") return GateEstimator::snips;
  throw std::invalid_argument(std::string(field) + ": '" + std::string(name) + "' (allowed: dr, snips)");
}

std::string_view gate_estimator_name(GateEstimator estimator) noexcept {
  return estimator == GateEstimator::snips ? "snips" : "dr";
}

void check_gate_config(const GateConfig& c) {
  if (!(c.margin >= 0) || !std::isfinite(c.margin)) {
    throw std::invalid_argument("learning.gate_margin: " + std::to_string(c.margin) + " must be a number >= 0");
  }
  if (!(c.min_ess > 0) || !std::isfinite(c.min_ess)) {
    throw std::invalid_argument("learning.gate_min_ess: " + std::to_string(c.min_ess) + " must be > 0");
  }
  if (!(c.confidence > 0 && c.confidence < 1)) {
    throw std::invalid_argument("learning.gate_confidence: " + std::to_string(c.confidence) + " must be in (0, 1)");
  }
  if (c.bootstrap_resamples < 50) {
    throw std::invalid_argument("learning.gate_bootstrap_resamples: " + std::to_string(c.bootstrap_resamples) +
                                " must be >= 50");
  }
}

evaluation::DecisionLog held_out_log(const LoggedDataset& data, std::span<const std::int32_t> transitions) {
  evaluation::DecisionLog log;
  log.source = "learning log (held-out users)";
  log.decisions.reserve(transitions.size());
  for (const std::int32_t index : transitions) {
    const Transition& t = data.transitions[static_cast<std::size_t>(index)];
    const std::int32_t row = t.row;
    evaluation::LoggedDecision d;
    d.event_id = data.event_id[static_cast<std::size_t>(row)];
    d.user_id = hex_key(data.user_key[static_cast<std::size_t>(row)]);
    const auto observation = data.observation(row);
    d.state_features.assign(observation.begin(), observation.end());
    for (int s = 0; s < env::kNumSlots; ++s) {
      if (observation[static_cast<std::size_t>(env::kObsSlot + s)] > 0.5F) d.slot = s;
    }
    const auto candidates = data.candidates_of(row);
    d.candidates.assign(candidates.begin(), candidates.end());
    // Stored as float32; renormalised in double so that they sum to 1 as OPE requires.
    const auto propensities = data.propensities_of(row);
    double sum = 0;
    for (const float p : propensities) sum += p;
    d.probabilities.reserve(propensities.size());
    for (const float p : propensities) d.probabilities.push_back(static_cast<double>(p) / sum);
    d.chosen = static_cast<std::size_t>(data.chosen[static_cast<std::size_t>(row)]);
    d.epsilon = data.epsilon[static_cast<std::size_t>(row)];
    d.temperature = data.temperature[static_cast<std::size_t>(row)];
    const auto recency = data.recency_of(row);
    d.candidate_features.assign(recency.begin(), recency.end());
    d.candidate_feature_dim = 1;
    d.reward = t.reward;
    d.outcome = t.accepted ? "accepted" : "rejected";
    log.decisions.push_back(std::move(d));
  }
  return log;
}

SnapshotTarget::SnapshotTarget(std::string name, std::shared_ptr<const policy::PolicySnapshot> snapshot)
    : name_(std::move(name)), snapshot_(std::move(snapshot)), scores_(policy::kMaxCandidates) {
  if (!snapshot_) throw std::invalid_argument("SnapshotTarget: snapshot: null");
}

void SnapshotTarget::pmf(const evaluation::LoggedDecision& decision, std::span<double> pmf) {
  const std::size_t count = decision.candidates.size();
  if (decision.candidate_feature_dim != 1 || decision.candidate_features.size() != count) {
    throw std::invalid_argument("SnapshotTarget: decision " + decision.event_id +
                                " has no recency per candidate (candidate_feature_dim 1)");
  }
  policy::score_and_probabilities(snapshot_, decision.state_features, decision.candidates, decision.candidate_features,
                                  decision.epsilon, decision.temperature, std::span<float>(scores_.data(), count), pmf,
                                  workspace_);
}

GateResult apply_gate(const evaluation::DecisionLog& log, const evaluation::DirectMethodModel& model,
                      evaluation::OpeTarget& candidate, const GateConfig& config) {
  check_gate_config(config);
  evaluation::OpeOptions options;
  options.bootstrap_resamples = config.bootstrap_resamples;
  options.bootstrap_seed = config.seed;
  options.confidence = config.confidence;
  GateResult g;
  g.estimate = evaluation::evaluate_off_policy(log, model, candidate, options);
  g.logged = g.estimate.logged.value;
  const evaluation::OpeInterval& chosen = config.estimator == GateEstimator::snips ? g.estimate.snips : g.estimate.dr;
  g.lower = chosen.lo;
  const std::string name(gate_estimator_name(config.estimator));
  const std::string numbers = name + " " + fixed(chosen.value) + " [" + fixed(chosen.lo) + ", " + fixed(chosen.hi) +
                              "], logged " + fixed(g.logged) + ", margin " + fixed(config.margin) + ", ESS " +
                              fixed(g.estimate.ess, 1) + " of " + std::to_string(g.estimate.decisions) + " decisions";
  if (!(g.estimate.ess >= config.min_ess)) {
    g.reason = "too little support: ESS " + fixed(g.estimate.ess, 1) + " < min_ess " + fixed(config.min_ess, 1) + " (" +
               numbers + ")";
  } else if (!(chosen.lo > g.logged + config.margin)) {
    g.reason = "not better: lower bound " + fixed(chosen.lo) + " <= logged " + fixed(g.logged) + " + margin " +
               fixed(config.margin) + " (" + numbers + ")";
  } else {
    g.promote = true;
    g.reason = "better: lower bound " + fixed(chosen.lo) + " > logged " + fixed(g.logged) + " + margin " +
               fixed(config.margin) + " (" + numbers + ")";
  }
  return g;
}

}  // namespace forkcast::learning
