// Simulator evaluation: common random numbers, mask checks, statistics.
#include "forkcast/evaluation/evaluation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "forkcast/env/baselines.hpp"
#include "shipped_world.hpp"

namespace fe = forkcast::env;
namespace fev = forkcast::evaluation;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }
const fe::Population& population() { return forkcast::test::shipped_population(); }

fev::EvaluationOptions small(int users, int seeds = 1) {
  fev::EvaluationOptions o;
  o.users = users;
  o.seeds = seeds;
  o.bootstrap_resamples = 300;
  return o;
}

fev::EvaluationResult evaluate(std::vector<fe::MealPolicy*> policies, const fev::EvaluationOptions& o) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < policies.size(); ++i) names.push_back(std::string(policies[i]->name()) + std::to_string(i));
  return fev::evaluate_policies(policies, names, catalog(), population(), {}, o);
}

// Breaks the mask on purpose, in rotation: outside the catalog, another slot's safe meal,
// a meal of this slot the user must not eat (when one exists). Counts what it did.
class MaskBreakingPolicy final : public fe::MealPolicy {
 public:
  std::string_view name() const override { return "mask-breaker"; }
  fe::Action act(const fe::MealSim& sim, std::mt19937_64&) override {
    const auto& meals = sim.catalog().meals();
    const int kind = turn_++ % 4;
    if (kind == 0) {
      ++expected.out_of_range;
      return static_cast<fe::Action>(meals.size());
    }
    if (kind == 1) {
      for (std::size_t m = 0; m < meals.size(); ++m) {
        if (meals[m].slot != sim.slot() && sim.user().profile.allows(meals[m])) {
          ++expected.off_slot;
          return static_cast<fe::Action>(m);
        }
      }
    }
    if (kind == 2) {
      for (std::size_t m = 0; m < meals.size(); ++m) {
        if (meals[m].slot == sim.slot() && !sim.user().profile.allows(meals[m])) {
          ++expected.unsafe;
          return static_cast<fe::Action>(m);
        }
      }
    }
    const auto mask = sim.action_mask();
    for (std::size_t m = 0; m < mask.size(); ++m) {
      if (mask[m]) return static_cast<fe::Action>(m);
    }
    return -1;
  }
  fev::Violations expected;

 private:
  int turn_ = 0;
};

}  // namespace

TEST(Evaluation, OneSeedPerUserReproducesRunEpisode) {
  // User u's week is run_episode(sim, policy, base_seed + u): the numbers in docs/agents.md
  // and docs/mealsim.md are reproducible with forkcast evaluate.
  fe::MyopicOraclePolicy oracle;
  auto o = small(25);
  o.base_seed = 1234;
  const auto r = evaluate({&oracle}, o);
  fe::MealSim sim(catalog(), population());
  std::mt19937_64 rng(1);
  double sum = 0;
  for (int u = 0; u < o.users; ++u) sum += fe::run_episode(sim, oracle, 1234 + static_cast<std::uint64_t>(u), rng).total_reward;
  EXPECT_NEAR(r.policies[0].metrics.at("weekly_return").value, sum / o.users, 1e-9);
  EXPECT_EQ(r.policies[0].weeks, 25);
}

TEST(Evaluation, APolicyAgainstItselfDiffersByExactlyZero) {
  // Common random numbers: same users, same simulator coins and the same policy generator
  // per week, so two copies of the random policy make identical weeks.
  fe::RandomPolicy a, b;
  const auto r = evaluate({&a, &b}, small(40, 2));
  for (const auto& info : fev::metric_catalog()) {
    const auto& e = r.policies[1].metric(info.key);
    if (std::isnan(e.value)) continue;
    EXPECT_EQ(e.diff, 0.0) << info.key;
    EXPECT_EQ(e.diff_lo, 0.0) << info.key;
    EXPECT_EQ(e.diff_hi, 0.0) << info.key;
  }
  EXPECT_TRUE(std::isnan(r.policies[0].metrics.at("weekly_return").diff));
}

TEST(Evaluation, SameInputsSameNumbers) {
  fe::RandomPolicy a;
  fe::PlanningOraclePolicy b;
  const auto r1 = evaluate({&a, &b}, small(30));
  const auto r2 = evaluate({&a, &b}, small(30));
  for (std::size_t p = 0; p < 2; ++p) {
    for (const auto& info : fev::metric_catalog()) {
      const auto& e1 = r1.policies[p].metric(info.key);
      const auto& e2 = r2.policies[p].metric(info.key);
      EXPECT_EQ(e1.value, e2.value);
      EXPECT_EQ(e1.lo, e2.lo);
      EXPECT_EQ(e1.hi, e2.hi);
    }
  }
}

TEST(Evaluation, SeedsAddWeeksOfTheSameUsers) {
  fe::RandomPolicy a;
  const auto r = evaluate({&a}, small(10, 3));
  EXPECT_EQ(r.policies[0].weeks, 30);
  int users = 0;
  for (const int n : r.users_per_archetype) users += n;
  EXPECT_EQ(users, 10);
  int in_breakdown = 0;
  for (const auto& a2 : r.policies[0].archetypes) in_breakdown += a2.users;
  EXPECT_EQ(in_breakdown, 10);
}

TEST(Evaluation, MaskViolationsAreCountedAndTheWeekGoesOn) {
  MaskBreakingPolicy bad;
  fe::RandomPolicy good;
  const auto r = evaluate({&good, &bad}, small(12));
  EXPECT_EQ(r.policies[0].violations.total(), 0);
  const auto& v = r.policies[1].violations;
  EXPECT_EQ(v.out_of_range, bad.expected.out_of_range);
  EXPECT_EQ(v.off_slot, bad.expected.off_slot);
  EXPECT_EQ(v.unsafe, bad.expected.unsafe);
  EXPECT_GT(v.out_of_range, 0);
  EXPECT_GT(v.off_slot, 0);
  EXPECT_EQ(r.policies[1].weeks, 12);  // every week ran to its end
}

TEST(Evaluation, MetricsAreConsistentWithTheirDefinitions) {
  fe::PopularityPolicy popularity(fe::estimate_popularity(catalog(), population(), {}, 300, 77));
  fe::RandomPolicy random;
  const auto r = evaluate({&random, &popularity}, small(60));
  for (const auto& p : r.policies) {
    for (const auto& info : fev::metric_catalog()) {
      const auto& e = p.metric(info.key);
      ASSERT_FALSE(std::isnan(e.value)) << info.key;
      EXPECT_LE(e.lo, e.value + 1e-12) << p.name << " " << info.key;
      EXPECT_GE(e.hi, e.value - 1e-12) << p.name << " " << info.key;
    }
    EXPECT_GE(p.metrics.at("acceptance_rate").value, 0.0);
    EXPECT_LE(p.metrics.at("acceptance_rate").value, 1.0);
    std::int64_t histogram = 0;
    for (const auto c : p.returns.histogram) histogram += c;
    EXPECT_EQ(histogram, p.weeks);
    EXPECT_LE(p.returns.quantiles[0], p.returns.quantiles[2]);
    EXPECT_LE(p.returns.quantiles[2], p.returns.quantiles[4]);
  }
  // Popularity suggests one meal per slot: four distinct meals a week (docs/mealsim.md §9).
  EXPECT_NEAR(r.policies[1].metrics.at("distinct_meals_per_week").value, 4.0, 1e-9);
  EXPECT_EQ(r.histogram_edges.size(), static_cast<std::size_t>(small(1).histogram_bins + 1));
}

TEST(Evaluation, BadOptionsAreRefusedByName) {
  fe::RandomPolicy a;
  auto o = small(0);
  try {
    evaluate({&a}, o);
    FAIL() << "users 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--users"), std::string::npos) << e.what();
  }
  o = small(5);
  o.confidence = 1.0;
  EXPECT_THROW(evaluate({&a}, o), std::invalid_argument);
  std::vector<fe::MealPolicy*> one = {&a};
  std::vector<std::string> two = {"a", "b"};
  EXPECT_THROW(fev::evaluate_policies(one, two, catalog(), population(), {}, small(5)), std::invalid_argument);
}

TEST(EvaluationStatistics, QuantileIsNumpyLinear) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(fev::quantile_sorted(v, 0.25), 1.75);
  EXPECT_DOUBLE_EQ(fev::quantile_sorted(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(fev::quantile_sorted(v, 1.0), 4.0);
  EXPECT_TRUE(std::isnan(fev::quantile_sorted({}, 0.5)));
}

TEST(EvaluationStatistics, RatioEstimateIsARatioOfSumsWithABracketingInterval) {
  const std::vector<double> num = {3, 1, 0, 4}, den = {4, 2, 1, 5};
  std::mt19937_64 rng(3);
  const auto resamples = fev::bootstrap_resamples(num.size(), 500, rng);
  const auto e = fev::ratio_estimate(num, den, resamples, 0.95);
  EXPECT_DOUBLE_EQ(e.value, 8.0 / 12.0);
  EXPECT_LT(e.lo, e.value);
  EXPECT_GT(e.hi, e.value);
  EXPECT_GE(e.lo, 0.0);
  EXPECT_LE(e.hi, 0.8);  // the largest per-cluster ratio
  const std::vector<double> zero = {0, 0, 0, 0};
  EXPECT_TRUE(std::isnan(fev::ratio_estimate(num, zero, resamples, 0.95).value));
}

TEST(EvaluationStatistics, PercentileBootstrapCoversAKnownMean) {
  // Calibration of the interval machinery itself: normal data with mean 0, 200 replications
  // of n = 100, a fixed seed. Nominal 95 %; 90 % or more is asserted.
  std::mt19937_64 rng(2024);
  std::normal_distribution<double> normal(0.0, 1.0);
  int covered = 0;
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<double> x(100), one(100, 1.0);
    for (auto& v : x) v = normal(rng);
    const auto resamples = fev::bootstrap_resamples(x.size(), 400, rng);
    const auto e = fev::ratio_estimate(x, one, resamples, 0.95);
    covered += e.lo <= 0.0 && 0.0 <= e.hi ? 1 : 0;
  }
  EXPECT_GE(covered, 180);
}
