#include "forkcast/agent/tabular_q.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "forkcast/agent/mealsim_discretizer.hpp"
#include "forkcast/env/baselines.hpp"

namespace fa = forkcast::agent;
namespace fe = forkcast::env;

TEST(TabularQ, UpdateMatchesTheFormula) {
  fa::TabularQ q({3, 2, 0.5, 0.9, 0.0});
  // Q[1] = {2, 4} via two updates from a terminal transition.
  q.update({1, 0, 4.0, 0, true});  // 0 + 0.5 * (4 - 0) = 2
  q.update({1, 1, 8.0, 0, true});  // 4
  // Non-terminal: Q[0][1] += 0.5 * (1 + 0.9 * max(2, 4) - 0) = 0.5 * 4.6 = 2.3
  const double td = q.update({0, 1, 1.0, 1, false});
  EXPECT_DOUBLE_EQ(td, 4.6);
  EXPECT_DOUBLE_EQ(q.values(0)[1], 2.3);
  // Terminal: no bootstrap. Q[2][0] = 0.5 * 1 = 0.5
  q.update({2, 0, 1.0, 1, true});
  EXPECT_DOUBLE_EQ(q.values(2)[0], 0.5);
}

TEST(TabularQ, MaxIsTakenOverAllowedActionsOnly) {
  fa::TabularQ q({2, 3, 1.0, 1.0, 0.0});
  q.update({1, 0, 10.0, 0, true});
  q.update({1, 2, 1.0, 0, true});
  const std::uint8_t mask[] = {0, 1, 1};  // the 10 is not allowed in s'
  q.update({0, 0, 0.0, 1, false, mask});
  EXPECT_DOUBLE_EQ(q.values(0)[0], 1.0);
  const std::uint8_t none[] = {0, 0, 0};
  q.update({0, 1, 2.0, 1, false, none});  // no allowed action: no future
  EXPECT_DOUBLE_EQ(q.values(0)[1], 2.0);
}

TEST(TabularQ, TruncatedTransitionsBootstrap) {
  // The caller passes terminated=false for a time-limit truncation: the update bootstraps.
  fa::TabularQ q({2, 1, 1.0, 0.5, 0.0});
  q.update({1, 0, 6.0, 0, true});
  q.update({0, 0, 0.0, 1, /*terminated=*/false});
  EXPECT_DOUBLE_EQ(q.values(0)[0], 3.0);
}

TEST(TabularQ, GreedyBreaksTiesByLowestIndexAndHonoursMask) {
  fa::TabularQ q({1, 4, 1.0, 1.0, 0.0});
  EXPECT_EQ(q.greedy_action(0), 0);
  q.update({0, 2, 5.0, 0, true});
  q.update({0, 3, 5.0, 0, true});
  EXPECT_EQ(q.greedy_action(0), 2);
  const std::uint8_t mask[] = {1, 1, 0, 1};
  EXPECT_EQ(q.greedy_action(0, mask), 3);
  const std::uint8_t one[] = {0, 1, 0, 0};
  EXPECT_EQ(q.greedy_action(0, one), 1);
  const std::uint8_t none[] = {0, 0, 0, 0};
  EXPECT_THROW(q.greedy_action(0, none), std::invalid_argument);
}

TEST(TabularQ, BadArgumentsAreNamed) {
  EXPECT_THROW(fa::TabularQ({0, 2}), std::invalid_argument);
  try {
    fa::TabularQ({2, 2, 1.5, 0.9});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("learning_rate"), std::string::npos);
  }
  fa::TabularQ q({2, 2});
  EXPECT_THROW(q.validate({0, 2, 0, 1, false}), std::invalid_argument);
  EXPECT_THROW(q.validate({0, 0, 0, 5, false}), std::invalid_argument);
  EXPECT_NO_THROW(q.validate({0, 1, 0, 1, false}));
  const std::vector<double> wrong(3, 0.0);
  EXPECT_THROW(q.load_table(wrong), std::invalid_argument);
}

TEST(MealSimDiscretizer, MapsEveryObservationToAValidNamedState) {
  const auto catalog = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  const auto population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
  fe::MealSim sim(catalog, population);
  fe::RandomPolicy policy;
  std::mt19937_64 rng(1);
  std::set<std::int32_t> seen;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    sim.reset(seed);
    while (!sim.done()) {
      const auto s = fa::MealSimDiscretizer::state(sim.observation());
      ASSERT_GE(s, 0);
      ASSERT_LT(s, fa::MealSimDiscretizer::kNumStates);
      // The slot is recoverable from the state (it leads the encoding), and the name
      // reports the user's real diet (a regression test: the diet was once read from
      // the wrong observation indices).
      ASSERT_EQ(s / (fa::MealSimDiscretizer::kNumStates / 4), static_cast<int>(sim.slot()));
      const auto name = fa::MealSimDiscretizer::state_name(s, catalog.cuisines());
      ASSERT_NE(name.find(" diet=" + std::string(fe::diet_preference_name(sim.user().profile.diet)) + " "),
                std::string::npos)
          << name;
      seen.insert(s);
      sim.step(policy.act(sim, rng));
    }
  }
  EXPECT_GT(seen.size(), 100U);
  EXPECT_EQ(fa::MealSimDiscretizer::state_name(0, catalog.cuisines()).substr(0, 9), "breakfast");
  EXPECT_THROW(fa::MealSimDiscretizer::state_name(fa::MealSimDiscretizer::kNumStates), std::invalid_argument);
  const std::vector<float> short_obs(3);
  EXPECT_THROW(fa::MealSimDiscretizer::state(short_obs), std::invalid_argument);
}
