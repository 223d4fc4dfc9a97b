#include "forkcast/evaluation/evaluation.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <tuple>

#include "forkcast/policy/progress.hpp"
#include "forkcast/policy/episode_seed.hpp"

namespace forkcast::evaluation {

using policy::ProgressReporter;
using policy::episode_seed;

namespace {

// Keeps the policies' generators apart from the users' seeds while staying a pure function
// of the user seed and the week, so every policy gets the same generator for a week.
constexpr std::uint64_t kPolicyRngSalt = 0x0e7a'1f00'd5ee'd000ULL;

constexpr std::array<MetricInfo, 13> kMetrics = {{
    {"weekly_return", "Weekly return", "", "higher", false, 2},
    {"acceptance_rate", "Acceptance", "%", "higher", true, 1},
    {"mean_adherence", "Daily adherence", "0..1", "higher", false, 3},
    {"kcal_abs_error_pct", "|kcal error|", "% of target", "lower", true, 1},
    {"kcal_abs_error_kcal", "|kcal error|", "kcal/day", "lower", false, 0},
    {"protein_abs_error_pct", "|protein error|", "% of target", "lower", true, 1},
    {"protein_abs_error_g", "|protein error|", "g/day", "lower", false, 1},
    {"sodium_over_days_pct", "Sodium over limit", "% of days", "lower", true, 1},
    {"distinct_meals_per_week", "Distinct meals", "per week", "none", false, 1},
    {"distinct_cuisines_per_week", "Distinct cuisines", "per week", "none", false, 1},
    {"repeat_rate", "Repeat rate", "% of suggestions", "lower", true, 1},
    {"churn_rate", "Churn", "% of weeks", "lower", true, 1},
    {"final_satisfaction", "Final satisfaction", "0..1", "higher", false, 3},
}};

// A metric as a ratio of per-week numerator and denominator sums.
struct Series {
  std::string_view key;
  std::function<double(const WeekRecord&)> num;
  std::function<double(const WeekRecord&)> den;
};

double days_sum(const WeekRecord& w, const std::array<double, env::kDaysPerWeek>& values, double scale) {
  double s = 0;
  for (int d = 0; d < w.stats.days_completed && d < env::kDaysPerWeek; ++d) s += values[static_cast<std::size_t>(d)] * scale;
  return s;
}

std::vector<Series> scalar_series() {
  auto weeks = [](const WeekRecord&) { return 1.0; };
  auto steps = [](const WeekRecord& w) { return static_cast<double>(w.stats.steps); };
  auto days = [](const WeekRecord& w) { return static_cast<double>(w.stats.days_completed); };
  return {
      {"weekly_return", [](const WeekRecord& w) { return w.weekly_return; }, weeks},
      {"acceptance_rate", [](const WeekRecord& w) { return static_cast<double>(w.stats.accepted); }, steps},
      {"mean_adherence", [](const WeekRecord& w) { return days_sum(w, w.stats.adherence, 1.0); }, days},
      {"kcal_abs_error_pct", [](const WeekRecord& w) { return days_sum(w, w.stats.kcal_error, 1.0); }, days},
      {"kcal_abs_error_kcal", [](const WeekRecord& w) { return days_sum(w, w.stats.kcal_error, w.kcal_target); }, days},
      {"protein_abs_error_pct", [](const WeekRecord& w) { return days_sum(w, w.stats.protein_error, 1.0); }, days},
      {"protein_abs_error_g", [](const WeekRecord& w) { return days_sum(w, w.stats.protein_error, w.protein_target_g); }, days},
      {"sodium_over_days_pct", [](const WeekRecord& w) { return static_cast<double>(w.stats.sodium_over_days); }, days},
      {"distinct_meals_per_week", [](const WeekRecord& w) { return static_cast<double>(w.stats.distinct_meals); }, weeks},
      {"distinct_cuisines_per_week", [](const WeekRecord& w) { return static_cast<double>(w.stats.distinct_cuisines); }, weeks},
      {"repeat_rate", [](const WeekRecord& w) { return static_cast<double>(w.stats.repeats); }, steps},
      {"churn_rate", [](const WeekRecord& w) { return w.stats.churned ? 1.0 : 0.0; }, weeks},
      {"final_satisfaction", [](const WeekRecord& w) { return w.stats.final_satisfaction; }, weeks},
  };
}

// Per-user sums of a series over the user's weeks, for the users in `subset` (all when empty).
struct UserSums {
  std::vector<double> num, den;
};

UserSums user_sums(const std::vector<WeekRecord>& weeks, int seeds, const Series& s, std::span<const int> subset) {
  UserSums out;
  out.num.resize(subset.size());
  out.den.resize(subset.size());
  for (std::size_t i = 0; i < subset.size(); ++i) {
    const auto first = static_cast<std::size_t>(subset[i]) * static_cast<std::size_t>(seeds);
    for (std::size_t k = 0; k < static_cast<std::size_t>(seeds); ++k) {
      out.num[i] += s.num(weeks[first + k]);
      out.den[i] += s.den(weeks[first + k]);
    }
  }
  return out;
}

double ratio(std::span<const double> num, std::span<const double> den, std::span<const std::uint32_t> idx) {
  double n = 0, d = 0;
  for (const auto i : idx) {
    n += num[i];
    d += den[i];
  }
  return d > 0 ? n / d : kNaN;
}

std::pair<double, double> percentile_interval(std::vector<double>& values, double confidence) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  if (values.empty()) return {kNaN, kNaN};
  std::sort(values.begin(), values.end());
  const double tail = (1.0 - confidence) / 2.0;
  return {quantile_sorted(values, tail), quantile_sorted(values, 1.0 - tail)};
}

// Computes the metrics of every policy over `subset` users with `resamples`, diffs vs policy 0.
template <class Put>
void estimate_all(const std::vector<std::vector<WeekRecord>>& weeks, int seeds, const Series& s,
                  std::span<const int> subset, const std::vector<std::vector<std::uint32_t>>& resamples, double confidence,
                  Put&& put) {
  const auto ref = user_sums(weeks[0], seeds, s, subset);
  for (std::size_t p = 0; p < weeks.size(); ++p) {
    const auto sums = p == 0 ? ref : user_sums(weeks[p], seeds, s, subset);
    Estimate e = ratio_estimate(sums.num, sums.den, resamples, confidence);
    if (p > 0) paired_difference(sums.num, sums.den, ref.num, ref.den, resamples, confidence, e);
    put(p, e);
  }
}

void validate(const EvaluationOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (o.users < 1) bad("--users: " + std::to_string(o.users) + " must be >= 1");
  if (o.seeds < 1) bad("--seeds: " + std::to_string(o.seeds) + " must be >= 1");
  if (o.bootstrap_resamples < 1) bad("--bootstrap: " + std::to_string(o.bootstrap_resamples) + " must be >= 1");
  if (!(o.confidence > 0 && o.confidence < 1)) bad("confidence: " + std::to_string(o.confidence) + " is not in (0, 1)");
  if (o.histogram_bins < 1) bad("histogram_bins: " + std::to_string(o.histogram_bins) + " must be >= 1");
}

env::Action first_allowed(std::span<const std::uint8_t> mask) {
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) return static_cast<env::Action>(m);
  }
  return -1;  // MealSim refuses users with an empty slot, so this is unreachable
}

}  // namespace

std::span<const MetricInfo> metric_catalog() { return kMetrics; }

const Estimate& PolicyEvaluation::metric(std::string_view key) const {
  const auto it = metrics.find(key);
  if (it == metrics.end()) throw std::out_of_range("policy " + name + " has no metric \"" + std::string(key) + "\"");
  return it->second;
}

double quantile_sorted(std::span<const double> sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double h = (static_cast<double>(sorted.size()) - 1.0) * std::clamp(q, 0.0, 1.0);
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

std::vector<std::vector<std::uint32_t>> bootstrap_resamples(std::size_t clusters, int count, std::mt19937_64& rng) {
  std::vector<std::vector<std::uint32_t>> out(static_cast<std::size_t>(std::max(count, 0)));
  if (clusters == 0) return out;
  for (auto& r : out) {
    r.resize(clusters);
    // Rejection-free modulo is fine here: clusters << 2^64, the bias is below 2^-40.
    for (auto& i : r) i = static_cast<std::uint32_t>(rng() % clusters);
  }
  return out;
}

Estimate ratio_estimate(std::span<const double> num, std::span<const double> den,
                        const std::vector<std::vector<std::uint32_t>>& resamples, double confidence) {
  Estimate e;
  double n = 0, d = 0;
  for (std::size_t i = 0; i < num.size(); ++i) {
    n += num[i];
    d += den[i];
  }
  if (!(d > 0)) return e;
  e.value = n / d;
  std::vector<double> values;
  values.reserve(resamples.size());
  for (const auto& r : resamples) values.push_back(ratio(num, den, r));
  std::tie(e.lo, e.hi) = percentile_interval(values, confidence);
  return e;
}

void paired_difference(std::span<const double> num_a, std::span<const double> den_a, std::span<const double> num_b,
                       std::span<const double> den_b, const std::vector<std::vector<std::uint32_t>>& resamples,
                       double confidence, Estimate& into) {
  std::vector<std::uint32_t> all(num_a.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint32_t>(i);
  into.diff = ratio(num_a, den_a, all) - ratio(num_b, den_b, all);
  std::vector<double> values;
  values.reserve(resamples.size());
  for (const auto& r : resamples) values.push_back(ratio(num_a, den_a, r) - ratio(num_b, den_b, r));
  std::tie(into.diff_lo, into.diff_hi) = percentile_interval(values, confidence);
}

double run_checked_week(env::MealSim& sim, env::MealPolicy& policy, std::mt19937_64& policy_rng, Violations& violations) {
  const auto& meals = sim.catalog().meals();
  double total = 0;
  while (!sim.done()) {
    env::Action a = policy.act(sim, policy_rng);
    const auto mask = sim.action_mask();
    if (a < 0 || a >= sim.num_actions()) {
      ++violations.out_of_range;
      a = first_allowed(mask);
    } else if (!mask[static_cast<std::size_t>(a)]) {
      // Unsafe outranks off-slot: a wrong-slot meal with the user's allergen is unsafe.
      if (!sim.user().profile.allows(meals[static_cast<std::size_t>(a)])) {
        ++violations.unsafe;
      } else {
        ++violations.off_slot;
      }
      a = first_allowed(mask);
    }
    total += sim.step(a).reward;
  }
  return total;
}

EvaluationResult evaluate_policies(std::span<env::MealPolicy* const> policies, std::span<const std::string> names,
                                   const env::Catalog& catalog, const env::Population& population,
                                   const config::MealSimConfig& config, const EvaluationOptions& options) {
  validate(options);
  if (policies.empty()) throw std::invalid_argument("evaluate_policies: no policy");
  if (names.size() != policies.size()) {
    throw std::invalid_argument("evaluate_policies: " + std::to_string(names.size()) + " names for " +
                                std::to_string(policies.size()) + " policies");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto users = static_cast<std::size_t>(options.users);
  const auto seeds = static_cast<std::size_t>(options.seeds);
  EvaluationResult result;
  result.options = options;
  result.users_per_archetype.assign(population.archetypes().size(), 0);

  // --- Simulation: the same users and seeds for every policy. ---
  std::vector<std::vector<WeekRecord>> weeks(policies.size());
  env::MealSim sim(catalog, population, config);
  std::vector<env::User> user_of(users);
  std::vector<int> archetype_of(users, 0);
  ProgressReporter progress(stderr, "weeks");
  const auto total_weeks = static_cast<std::int64_t>(policies.size() * users * seeds);
  std::int64_t done_weeks = 0, done_steps = 0;
  double all_returns = 0;
  for (std::size_t p = 0; p < policies.size(); ++p) {
    const auto tp = std::chrono::steady_clock::now();
    auto& out = weeks[p];
    out.reserve(users * seeds);
    PolicyEvaluation pe;
    pe.name = names[p];
    double sum_return = 0;
    for (std::size_t u = 0; u < users; ++u) {
      const std::uint64_t user_seed = options.base_seed + u;
      for (std::size_t k = 0; k < seeds; ++k) {
        if (k == 0) {
          sim.reset(user_seed);
          if (p == 0) {
            user_of[u] = sim.user();
            archetype_of[u] = sim.user().archetype;
          }
        } else {
          sim.reset(episode_seed(user_seed, k), user_of[u]);
        }
        std::mt19937_64 policy_rng(episode_seed(user_seed ^ kPolicyRngSalt, k));
        WeekRecord w;
        w.user = static_cast<int>(u);
        w.archetype = archetype_of[u];
        w.weekly_return = run_checked_week(sim, *policies[p], policy_rng, w.violations);
        w.stats = sim.stats();
        w.kcal_target = sim.kcal_target();
        w.protein_target_g = sim.protein_target_g();
        pe.violations.out_of_range += w.violations.out_of_range;
        pe.violations.off_slot += w.violations.off_slot;
        pe.violations.unsafe += w.violations.unsafe;
        pe.steps += w.stats.steps;
        done_steps += w.stats.steps;
        sum_return += w.weekly_return;
        all_returns += w.weekly_return;
        out.push_back(w);
        ++done_weeks;
        if (options.show_progress) {
          const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          progress.update({done_weeks, total_weeks, wall > 0 ? static_cast<double>(done_steps) / wall : 0.0,
                           sum_return / static_cast<double>(out.size()), 0.0});
        }
      }
    }
    pe.weeks = static_cast<std::int64_t>(out.size());
    pe.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
    result.policies.push_back(std::move(pe));
  }
  if (options.show_progress) {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress.finish({done_weeks, total_weeks, wall > 0 ? static_cast<double>(done_steps) / wall : 0.0,
                     all_returns / static_cast<double>(std::max<std::int64_t>(1, done_weeks)), 0.0});
  }
  for (const int a : archetype_of) ++result.users_per_archetype[static_cast<std::size_t>(a)];

  // --- Statistics: the same resampled users for every policy (paired). ---
  std::mt19937_64 boot_rng(options.bootstrap_seed);
  const auto resamples = bootstrap_resamples(users, options.bootstrap_resamples, boot_rng);
  std::vector<int> everyone(users);
  for (std::size_t u = 0; u < users; ++u) everyone[u] = static_cast<int>(u);
  const double c = options.confidence;
  const auto series = scalar_series();
  for (const auto& s : series) {
    estimate_all(weeks, options.seeds, s, everyone, resamples, c,
                 [&](std::size_t p, const Estimate& e) { result.policies[p].metrics.emplace(std::string(s.key), e); });
  }
  for (std::size_t slot = 0; slot < env::kNumSlots; ++slot) {
    const Series s{"acceptance_by_slot",
                   [slot](const WeekRecord& w) { return static_cast<double>(w.stats.accepted_by_slot[slot]); },
                   [slot](const WeekRecord& w) { return static_cast<double>(w.stats.offered_by_slot[slot]); }};
    estimate_all(weeks, options.seeds, s, everyone, resamples, c,
                 [&](std::size_t p, const Estimate& e) { result.policies[p].acceptance_by_slot[slot] = e; });
  }
  for (std::size_t day = 0; day < env::kDaysPerWeek; ++day) {
    auto reached = [day](const WeekRecord& w) { return w.stats.days_completed > static_cast<int>(day) ? 1.0 : 0.0; };
    const Series adherence{"adherence_by_day",
                           [day, reached](const WeekRecord& w) { return reached(w) * w.stats.adherence[day]; }, reached};
    estimate_all(weeks, options.seeds, adherence, everyone, resamples, c,
                 [&](std::size_t p, const Estimate& e) { result.policies[p].adherence_by_day[day] = e; });
    const Series kcal{"kcal_error_by_day",
                      [day, reached](const WeekRecord& w) { return reached(w) * w.stats.kcal_error[day]; }, reached};
    estimate_all(weeks, options.seeds, kcal, everyone, resamples, c,
                 [&](std::size_t p, const Estimate& e) { result.policies[p].kcal_error_by_day[day] = e; });
  }

  // Per archetype: resample within the archetype's users, again the same for every policy.
  for (std::size_t a = 0; a < population.archetypes().size(); ++a) {
    std::vector<int> members;
    for (std::size_t u = 0; u < users; ++u) {
      if (archetype_of[u] == static_cast<int>(a)) members.push_back(static_cast<int>(u));
    }
    if (members.empty()) continue;
    std::mt19937_64 rng(episode_seed(options.bootstrap_seed, a + 1));
    const auto group_resamples = bootstrap_resamples(members.size(), options.bootstrap_resamples, rng);
    for (auto& pe : result.policies) {
      pe.archetypes.push_back({population.archetypes()[a].name, static_cast<int>(members.size()), {}});
    }
    for (const auto& s : series) {
      if (std::find(kArchetypeMetrics.begin(), kArchetypeMetrics.end(), s.key) == kArchetypeMetrics.end()) continue;
      estimate_all(weeks, options.seeds, s, members, group_resamples, c, [&](std::size_t p, const Estimate& e) {
        result.policies[p].archetypes.back().metrics.emplace(std::string(s.key), e);
      });
    }
  }

  // Return distributions on shared bins.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& w : weeks) {
    for (const auto& r : w) {
      lo = std::min(lo, r.weekly_return);
      hi = std::max(hi, r.weekly_return);
    }
  }
  lo = std::floor(lo);
  hi = std::max(std::ceil(hi), lo + 1.0);
  const int bins = options.histogram_bins;
  for (int b = 0; b <= bins; ++b) result.histogram_edges.push_back(lo + (hi - lo) * b / bins);
  for (std::size_t p = 0; p < weeks.size(); ++p) {
    auto& d = result.policies[p].returns;
    std::vector<double> sorted;
    for (const auto& r : weeks[p]) sorted.push_back(r.weekly_return);
    std::sort(sorted.begin(), sorted.end());
    double sum = 0, sq = 0;
    for (const double v : sorted) sum += v;
    d.mean = sum / static_cast<double>(sorted.size());
    for (const double v : sorted) sq += (v - d.mean) * (v - d.mean);
    d.sd = sorted.size() > 1 ? std::sqrt(sq / static_cast<double>(sorted.size() - 1)) : 0.0;
    d.min = sorted.front();
    d.max = sorted.back();
    const std::array<double, 5> qs = {0.05, 0.25, 0.5, 0.75, 0.95};
    for (std::size_t i = 0; i < qs.size(); ++i) d.quantiles[i] = quantile_sorted(sorted, qs[i]);
    d.histogram.assign(static_cast<std::size_t>(bins), 0);
    for (const double v : sorted) {
      const auto b = std::clamp(static_cast<int>((v - lo) / (hi - lo) * bins), 0, bins - 1);
      ++d.histogram[static_cast<std::size_t>(b)];
    }
  }
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace forkcast::evaluation
