// Off-policy evaluation (OPE) of meal policies from logged decisions: what a target policy
// would have earned, estimated from what a logging policy did. Estimators: inverse
// propensity scoring (IPS), self-normalised IPS (SNIPS), the direct method (DM, a ridge
// regression of reward on state and meal features) and doubly robust (DR = DM + IPS of its
// residuals); Dudík, Langford & Li, "Doubly Robust Policy Evaluation and Learning", ICML 2011.
//
// Estimand (docs/evaluation.md §4): the expected per-decision reward if the target policy
// had picked the meal at the logged decision points, each decision weighted equally:
//   V(pi) = E_{x ~ d_mu} [ sum_a pi(a | x) E[r | x, a] ],
// where d_mu is the distribution of decision contexts the logging policy mu produced. It is
// a one-step (contextual-bandit) value: the history before each decision stays the
// logged one. It is not the weekly return the target would earn if it had run the whole
// week (that needs the simulator: evaluation.hpp).
//
// Input: DecisionLog, the join of the `decisions` and `feedback` tables of DESIGN.md §4.
// Today it is read from a JSON-lines export (read_decision_log, format in
// docs/evaluation.md §4.1); a PostgreSQL reader in db/ will fill the same struct.
//
// Uncertainty: decisions of one user are dependent (one week is one trajectory), so every
// interval is a percentile bootstrap that resamples users, not decisions. The DM model is
// cross-fitted on two folds of users (each decision is predicted by the model fitted on
// the other fold), which keeps DR unbiased whatever the model's quality.
//
// Errors: a log that cannot be used throws OpeInputError naming the file, the line and the
// problem (empty log, malformed JSON, a propensity outside (0, 1], probabilities that do
// not sum to 1, a chosen meal that is not a candidate, an unknown meal, ...).
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/baselines.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::evaluation {

// A decision log that cannot be used. what() is "<file>:<line>: <problem>" (line 0 when the
// problem is the file as a whole, e.g. "no decisions").
class OpeInputError : public std::invalid_argument {
 public:
  OpeInputError(std::string source, std::int64_t line, std::string problem);
  const std::string& source() const noexcept { return source_; }
  std::int64_t line() const noexcept { return line_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string source_;
  std::int64_t line_;
  std::string problem_;
};

// One logged decision joined with its feedback.
struct LoggedDecision {
  std::string event_id;
  std::string user_id;
  std::string model_version;
  int slot = -1;                        // 0..3 (breakfast..snack), -1 when not logged
  std::int64_t line = 0;                // line of the decision record in its file
  std::vector<std::int32_t> candidates; // catalog meal indices the logging policy chose among
  std::vector<double> scores;           // logging model's score per candidate (empty if not logged)
  std::vector<double> probabilities;    // logging probability per candidate, sums to 1
  std::size_t chosen = 0;               // index into candidates
  double epsilon = std::numeric_limits<double>::quiet_NaN();
  double temperature = 0;               // the logging policy's softmax temperature (0: epsilon-greedy)
  std::vector<float> state_features;    // e.g. the 63 MealSim observation values
  std::vector<float> candidate_features;  // row-major candidates x candidate_feature_dim (optional)
  int candidate_feature_dim = 0;
  double reward = 0;                    // from the feedback record
  std::string outcome;                  // accepted, rejected, ...

  double propensity() const { return probabilities[chosen]; }
  std::int32_t chosen_meal() const { return candidates[chosen]; }
};

struct DecisionLog {
  std::string source;                     // file name, for messages
  std::vector<LoggedDecision> decisions;  // with feedback, in file order
  std::int64_t decisions_without_feedback = 0;  // excluded: no reward known
  std::int64_t orphan_feedback = 0;             // feedback for an event never logged; ignored
  std::int64_t duplicate_feedback = 0;          // repeats of an idempotency key; collapsed
};

// Reads the JSON-lines export (docs/evaluation.md §4.1): one object per line, "kind" is
// "decision" or "feedback", joined on "event_id"; blank lines are skipped. Candidate meals are
// catalog ids resolved against `catalog`. Throws OpeInputError (file, line, problem) on an
// unreadable file, a malformed or incomplete record, a propensity of the chosen meal outside
// (0, 1], a probability outside [0, 1], probabilities not summing to 1 (within 1e-6), a
// chosen meal not among the candidates, an unknown meal id, a repeated event id, conflicting
// feedback for one event, or a log with no decision that has feedback.
DecisionLog read_decision_log(const std::filesystem::path& path, const env::Catalog& catalog);

// Writes `decisions` as the JSON-lines export (a decision record and a feedback record per
// decision), atomically (<path>.tmp then rename). Throws std::runtime_error on I/O failure.
void write_decision_log(const std::filesystem::path& path, const std::vector<LoggedDecision>& decisions,
                        const env::Catalog& catalog);

// Checks one decision's internal consistency (sizes, probabilities, chosen index), throwing
// OpeInputError(source, decision.line, ...) naming the rule it breaks.
void validate_decision(const LoggedDecision& decision, std::string_view source);

// ---- target policies -----------------------------------------------------------------

// A policy that can be evaluated from logs: its probability of each logged candidate, given
// only what the log holds (no simulator, no hidden state).
class OpeTarget {
 public:
  virtual ~OpeTarget() = default;
  virtual std::string_view name() const = 0;
  // Writes pi(candidate | decision) for each candidate into pmf (pmf.size() ==
  // decision.candidates.size()); the values are >= 0 and sum to 1.
  virtual void pmf(const LoggedDecision& decision, std::span<double> pmf) = 0;
};

// Uniform among the logged candidates (the random baseline).
class UniformTarget final : public OpeTarget {
 public:
  std::string_view name() const override { return "random"; }
  void pmf(const LoggedDecision& decision, std::span<double> pmf) override;
};

// Greedy on a fixed score per catalog meal (the popularity baseline); ties go to the lowest
// catalog index, as PopularityPolicy does.
class MealScoreGreedyTarget final : public OpeTarget {
 public:
  MealScoreGreedyTarget(std::string name, std::vector<double> meal_scores)
      : name_(std::move(name)), meal_scores_(std::move(meal_scores)) {}
  std::string_view name() const override { return name_; }
  void pmf(const LoggedDecision& decision, std::span<double> pmf) override;

 private:
  std::string name_;
  std::vector<double> meal_scores_;
};

// Softmax (temperature > 0) or greedy (temperature == 0) over the *logged* scores, mixed with
// epsilon uniform: "the logging model with other exploration settings". Throws
// std::invalid_argument on a decision without scores.
class LoggedScoreTarget final : public OpeTarget {
 public:
  LoggedScoreTarget(std::string name, double temperature, double epsilon);
  std::string_view name() const override { return name_; }
  void pmf(const LoggedDecision& decision, std::span<double> pmf) override;

 private:
  std::string name_;
  double temperature_;
  double epsilon_;
};

// ---- estimators ----------------------------------------------------------------------

struct OpeOptions {
  int bootstrap_resamples = 2000;
  std::uint64_t bootstrap_seed = 20'240'607;
  double confidence = 0.95;
  double ridge_lambda = 1.0;          // on standardised features; the intercept is not penalised
  double near_zero_propensity = 1e-3; // a chosen propensity below this is warned about
  double low_ess_fraction = 0.05;     // ESS / decisions below this is warned about
};

// The direct-method model's cross-fitted predictions: q_hat for every candidate of every
// decision of the log it was fitted on.
struct DirectMethodModel {
  std::vector<std::vector<double>> predictions;  // [decision][candidate]
  int features = 0;                              // regression dimension, intercept included
  double train_r2 = 0;                           // on the chosen meals, out of fold
  std::vector<std::string> notes;                // e.g. "one fold: fitted and predicted on all users"
};

// Fits reward ~ ridge(features(state, meal)) on the chosen meals, two folds of users
// (FNV-1a hash of user_id), and predicts every candidate from the other fold's model.
// Features: state_features, the meal's static catalog features, logged candidate
// features and score when present, and MealSim interactions when state_features has the
// MealSim layout (docs/evaluation.md §4.3).
DirectMethodModel fit_direct_method(const DecisionLog& log, const env::Catalog& catalog, const OpeOptions& options);

struct OpeInterval {
  double value = std::numeric_limits<double>::quiet_NaN();
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
};

struct OpeResult {
  std::string target;
  std::int64_t decisions = 0;
  std::int64_t users = 0;
  OpeInterval logged;  // mean logged reward: the logging policy's own value (on-policy)
  OpeInterval ips, snips, dm, dr;
  double ess = 0;                 // (sum w)^2 / sum w^2, importance weights w = pi / mu
  double max_weight = 0;
  double mean_weight = 0;         // 1 in expectation when the logging policy covers the target
  double min_propensity = 0;      // smallest logged propensity of a chosen meal
  std::int64_t near_zero_propensities = 0;
  double unsupported_mass = 0;    // mean target mass on candidates the logging policy gave 0
  std::vector<std::string> warnings;
};

// Evaluates `target` on `log` with the cross-fitted `model` (from fit_direct_method on the
// same log). Deterministic for a given bootstrap_seed.
OpeResult evaluate_off_policy(const DecisionLog& log, const DirectMethodModel& model, OpeTarget& target,
                              const OpeOptions& options);

// ---- synthetic logs from MealSim (validation) ------------------------------------------

// A logging policy with known propensities: softmax(score / temperature) over the allowed
// meals, mixed with epsilon uniform, where score is the myopic oracle's expected reward
// ("myopic") or the popularity estimate ("popularity").
struct SyntheticLogOptions {
  int users = 200;
  std::uint64_t seed = 1;          // user u's week is MealSim::reset(seed + u)
  std::string score = "myopic";    // myopic | popularity
  double temperature = 0.5;
  double epsilon = 0.1;
  bool candidate_features = false; // also log MealSim's per-candidate dynamic features
  std::vector<double> popularity;  // per catalog meal; required when score == "popularity"
};

// Runs the logging policy on `users` weeks; each step is one decision with its reward.
std::vector<LoggedDecision> generate_synthetic_log(const env::Catalog& catalog, const env::Population& population,
                                                   const config::MealSimConfig& config,
                                                   const SyntheticLogOptions& options);

struct TrueValue {
  double value = 0;
  double standard_error = 0;  // Monte Carlo error of `value`
  std::int64_t decisions = 0;
};

// The estimand V(pi) by simulation: runs the same logging policy on `users` weeks (seeds
// seed, seed + 1, ...), and at every decision draws a ~ pi from the target's pmf and one
// reward of a copy of the simulator stepped with a (its own coins), so each draw is an
// unbiased sample of sum_a pi(a|x) E[r|x,a]; returns the mean over all decisions.
TrueValue simulate_target_value(const env::Catalog& catalog, const env::Population& population,
                                const config::MealSimConfig& config, const SyntheticLogOptions& logging,
                                OpeTarget& target, int users, std::uint64_t seed);

}  // namespace forkcast::evaluation
