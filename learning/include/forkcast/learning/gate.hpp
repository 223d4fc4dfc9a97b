// The learner's gate (docs/learning-loop.md "The gate"): before a new model may be
// promoted, its value is estimated off-policy on held-out logged decisions (users the
// update never trained on), with the estimators of evaluation/ope.hpp, and compared with
// what the logging policy actually earned there.
//
// The new model is evaluated as it would be served: for each held-out decision, the
// probabilities policy::score_and_probabilities gives its candidates (the logged
// observation and recency, the logged epsilon and softmax temperature) — decide()'s own
// steps 2 and 3 — so the estimate is of the policy POST /v1/recommendations would run.
//
// Rule: promote iff
//   ESS >= min_ess                       (enough of the log supports the new policy), and
//   lower(estimator) > logged + margin   (its interval's lower bound beats the mean reward
//                                         the log earned, by `margin` reward units)
// where estimator is DR (default) or SNIPS. Otherwise the model is kept, rejected, with
// the reason. The estimand is the per-decision reward (docs/evaluation.md §4): a one-step
// value on the logged states, not a week's return.
// Errors: std::invalid_argument naming the option; evaluation::OpeInputError for a
// held-out set that cannot be evaluated (no decisions).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "forkcast/env/catalog.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "forkcast/learning/logged_dataset.hpp"
#include "forkcast/policy/decide.hpp"

namespace forkcast::learning {

enum class GateEstimator : std::uint8_t { dr, snips };
// "dr" | "snips"; throws std::invalid_argument naming `field` and the allowed values.
GateEstimator gate_estimator_from_name(std::string_view name, std::string_view field = "learning.gate_estimator");
std::string_view gate_estimator_name(GateEstimator estimator) noexcept;

struct GateConfig {
  GateEstimator estimator = GateEstimator::dr;
  double margin = 0.0;            // reward units per decision, >= 0
  double min_ess = 200;           // effective sample size, > 0
  double confidence = 0.95;       // of the intervals, in (0, 1)
  int bootstrap_resamples = 500;  // >= 50
  std::uint64_t seed = 20'240'607;
};

// Throws std::invalid_argument naming the first bad field.
void check_gate_config(const GateConfig& config);

// The held-out transitions as an OPE decision log (reward = the transition's reward).
evaluation::DecisionLog held_out_log(const LoggedDataset& data, std::span<const std::int32_t> transitions);

// A model as an OPE target: its serving probabilities on each logged decision. Shares the
// snapshot; not thread-safe (one workspace).
class SnapshotTarget final : public evaluation::OpeTarget {
 public:
  SnapshotTarget(std::string name, std::shared_ptr<const policy::PolicySnapshot> snapshot);
  std::string_view name() const override { return name_; }
  void pmf(const evaluation::LoggedDecision& decision, std::span<double> pmf) override;

 private:
  std::string name_;
  std::shared_ptr<const policy::PolicySnapshot> snapshot_;
  policy::DecisionWorkspace workspace_;
  std::vector<float> scores_;
};

struct GateResult {
  bool promote = false;
  std::string reason;             // why, in words, with the numbers
  evaluation::OpeResult estimate; // of the candidate
  double logged = 0;              // mean logged reward on the held-out decisions
  double lower = 0;               // the deciding lower bound
};

// Evaluates `candidate` on `log` (with `model` from evaluation::fit_direct_method on the same
// log) and applies the rule.
GateResult apply_gate(const evaluation::DecisionLog& log, const evaluation::DirectMethodModel& model,
                      evaluation::OpeTarget& candidate, const GateConfig& config);

}  // namespace forkcast::learning
