// Simulator evaluation of MealSim policies, the engine of `forkcast evaluate`.
//
// Common random numbers: every policy runs on the same users and the same seeds. User u
// (0 <= u < users) has seed base_seed + u; its first week is MealSim::reset(base_seed + u)
// (the user is drawn from that seed, exactly as env::run_episode does), and its k-th
// extra week (1 <= k < seeds) reuses that user with MealSim::reset(episode_seed(base_seed
// + u, k), user). A policy's own generator is seeded per week with the same value for
// every policy. Since MealSim draws three coins per step whatever the action, two policies
// face the same user and the same coins, and differences between them are paired.
//
// Each action is checked against the mask before it is stepped: a suggestion outside the
// catalog, outside the slot, or unsafe for the user (diet, allergens) is a constraint
// violation. It is counted (it must be 0), and the week continues with the lowest-index
// allowed meal in its place so that every other number can still be computed; a report with
// a violation says so first.
//
// Metrics (docs/evaluation.md §2) are ratio estimators over users: sum over users of a
// numerator / sum of a denominator (weekly return = sum of returns / weeks, acceptance =
// accepted / suggestions, ...). Intervals are percentile bootstraps that resample users
// (the unit of independence; their weeks stay together), with the same resampled users for
// every policy, so the interval of a difference to the first policy is paired.
//
// Deterministic: the same inputs and options give the same numbers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/baselines.hpp"

namespace forkcast::evaluation {

struct EvaluationOptions {
  int users = 1000;
  int seeds = 1;                         // weeks per user
  std::uint64_t base_seed = 5'000'000;   // user u's seed is base_seed + u
  int bootstrap_resamples = 2000;
  std::uint64_t bootstrap_seed = 20'240'601;
  double confidence = 0.95;
  int histogram_bins = 24;
  bool show_progress = false;            // a progress bar on stderr (policy/progress.hpp)
};

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A number measured over the evaluated users, with its bootstrap interval, and its paired
// difference to the first policy (NaN for the first policy itself).
struct Estimate {
  double value = kNaN;
  double lo = kNaN, hi = kNaN;
  double diff = kNaN;
  double diff_lo = kNaN, diff_hi = kNaN;
};

// The scalar metrics of a policy, in report order (docs/evaluation.md §2).
struct MetricInfo {
  std::string_view key;    // JSON key
  std::string_view label;  // column title
  std::string_view unit;   // "" for a pure number
  // "higher", "lower", or "none" where more is not simply better (variety: random
  // suggests the most distinct meals, which does not make it the best policy).
  std::string_view better;
  bool percent;            // shown as a percentage
  int decimals;            // shown with this many decimals (after scaling to percent)
};
std::span<const MetricInfo> metric_catalog();

struct Violations {
  std::int64_t out_of_range = 0;  // action outside 0..catalog size - 1
  std::int64_t off_slot = 0;      // a meal of another slot, safe for the user
  std::int64_t unsafe = 0;        // a meal the user's diet or allergens exclude
  std::int64_t total() const { return out_of_range + off_slot + unsafe; }
};

struct ArchetypeBreakdown {
  std::string name;
  int users = 0;
  std::map<std::string, Estimate, std::less<>> metrics;  // the keys of kArchetypeMetrics
};
// Metrics repeated per archetype.
inline constexpr std::array<std::string_view, 5> kArchetypeMetrics = {
    "weekly_return", "acceptance_rate", "churn_rate", "mean_adherence", "kcal_abs_error_pct"};

struct ReturnDistribution {
  double mean = kNaN, sd = kNaN, min = kNaN, max = kNaN;
  std::array<double, 5> quantiles{};  // p5, p25, p50, p75, p95 of weekly returns
  std::vector<std::int64_t> histogram;  // counts in EvaluationResult::histogram_edges bins
};

struct PolicyEvaluation {
  std::string name;
  std::map<std::string, Estimate, std::less<>> metrics;  // keyed by MetricInfo::key
  std::array<Estimate, env::kNumSlots> acceptance_by_slot;
  std::array<Estimate, env::kDaysPerWeek> adherence_by_day;      // over weeks that completed the day
  std::array<Estimate, env::kDaysPerWeek> kcal_error_by_day;     // |kcal - target| / target
  ReturnDistribution returns;
  Violations violations;
  std::vector<ArchetypeBreakdown> archetypes;  // archetypes with at least one user, file order
  std::int64_t weeks = 0;
  std::int64_t steps = 0;
  double wall_s = 0;

  // metrics[key]; throws std::out_of_range naming an unknown key.
  const Estimate& metric(std::string_view key) const;
};

struct EvaluationResult {
  EvaluationOptions options;
  std::vector<PolicyEvaluation> policies;       // in the order given; the first is the reference
  std::vector<double> histogram_edges;          // histogram_bins + 1 edges shared by all policies
  std::vector<int> users_per_archetype;         // by archetype index of the population
  double wall_s = 0;
};

// One week of one policy, everything the metrics need.
struct WeekRecord {
  int user = 0;
  int archetype = 0;
  double weekly_return = 0;
  env::EpisodeStats stats;
  double kcal_target = 0;
  double protein_target_g = 0;
  Violations violations;
};

// Runs one week of `policy` from the simulator state reset() left, checking every action
// against the mask (see the top of this file). Returns the summed reward.
double run_checked_week(env::MealSim& sim, env::MealPolicy& policy, std::mt19937_64& policy_rng,
                        Violations& violations);

// Evaluates `policies` (labels in `names`, same length, at least one) on MealSim built from
// catalog, population and config. Throws std::invalid_argument on bad options (users < 1,
// seeds < 1, resamples < 1, confidence outside (0, 1), names of another length).
EvaluationResult evaluate_policies(std::span<env::MealPolicy* const> policies, std::span<const std::string> names,
                                   const env::Catalog& catalog, const env::Population& population,
                                   const config::MealSimConfig& config, const EvaluationOptions& options);

// ---- statistics, exposed for tests -----------------------------------------------------

// Ratio of sums over clusters with a percentile bootstrap interval: value = sum(num) /
// sum(den); each resample draws clusters with replacement using `resamples` (one row per
// resample, cluster indices). A resample whose denominator is 0 is skipped. NaN when sum(den) == 0.
Estimate ratio_estimate(std::span<const double> num, std::span<const double> den,
                        const std::vector<std::vector<std::uint32_t>>& resamples, double confidence);

// The same for a difference of two paired ratios, (num_a / den_a) - (num_b / den_b), written
// into the diff fields of `into`.
void paired_difference(std::span<const double> num_a, std::span<const double> den_a, std::span<const double> num_b,
                       std::span<const double> den_b, const std::vector<std::vector<std::uint32_t>>& resamples,
                       double confidence, Estimate& into);

// `count` resamples of `clusters` indices drawn uniformly with replacement from `rng`.
std::vector<std::vector<std::uint32_t>> bootstrap_resamples(std::size_t clusters, int count, std::mt19937_64& rng);

// Linear-interpolated quantile (type 7, as numpy's default) of sorted values.
double quantile_sorted(std::span<const double> sorted, double q);

}  // namespace forkcast::evaluation
