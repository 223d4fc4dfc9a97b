// FrozenLake-v1 against Gymnasium's rules: moves and borders, holes and goal, slip
// frequencies, maps and their validation, time limits, seeding, misuse.
#include "forkcast/env/frozen_lake.hpp"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <string>
#include <vector>

namespace forkcast::env {
namespace {

FrozenLakeEnv non_slippery(std::string map_name = "4x4") {
  FrozenLakeConfig config;
  config.map_name = std::move(map_name);
  config.is_slippery = false;
  return FrozenLakeEnv(config);
}

TEST(FrozenLakeEnv, NonSlipperyMovesAreDeterministicAndStopAtTheBorder) {
  FrozenLakeEnv env = non_slippery();
  struct Move {
    std::int32_t from;
    Action action;
    std::int32_t to;
  };
  const std::vector<Move> moves = {
      {0, FrozenLakeEnv::kLeft, 0},    // off the grid: stays
      {0, FrozenLakeEnv::kUp, 0},      // off the grid: stays
      {0, FrozenLakeEnv::kRight, 1},
      {0, FrozenLakeEnv::kDown, 4},
      {3, FrozenLakeEnv::kRight, 3},   // right border
      {3, FrozenLakeEnv::kUp, 3},
      {2, FrozenLakeEnv::kLeft, 1},
      {14, FrozenLakeEnv::kDown, 14},  // bottom border
      {10, FrozenLakeEnv::kUp, 6},
  };
  for (const Move& m : moves) {
    env.set_state_for_testing(m.from);
    const DiscreteStep step = env.step(m.action);
    EXPECT_EQ(step.observation, m.to) << env.state_name(m.from) << " "
                                      << FrozenLakeEnv::action_name(m.action);
    EXPECT_EQ(step.reward, 0.0);
    EXPECT_FALSE(step.terminated);
  }
}

TEST(FrozenLakeEnv, HoleEndsWithZeroGoalEndsWithOne) {
  FrozenLakeEnv env = non_slippery();
  EXPECT_EQ(env.reset(0), 0);
  // S(0,0) -> (1,0) -> (2,0) -> (2,1) -> (2,2) -> (3,2) -> G(3,3)
  const std::vector<Action> path = {FrozenLakeEnv::kDown,  FrozenLakeEnv::kDown,
                                    FrozenLakeEnv::kRight, FrozenLakeEnv::kRight,
                                    FrozenLakeEnv::kDown,  FrozenLakeEnv::kRight};
  const std::vector<std::int32_t> states = {4, 8, 9, 10, 14, 15};
  for (std::size_t i = 0; i < path.size(); ++i) {
    const DiscreteStep step = env.step(path[i]);
    EXPECT_EQ(step.observation, states[i]);
    const bool last = i + 1 == path.size();
    EXPECT_EQ(step.reward, last ? 1.0 : 0.0);
    EXPECT_EQ(step.terminated, last);
  }
  EXPECT_TRUE(env.needs_reset());

  env.reset();
  env.step(FrozenLakeEnv::kRight);                        // (0,1)
  const DiscreteStep hole = env.step(FrozenLakeEnv::kDown);  // (1,1) is H
  EXPECT_EQ(hole.observation, 5);
  EXPECT_EQ(env.tile(5), 'H');
  EXPECT_TRUE(hole.terminated);
  EXPECT_EQ(hole.reward, 0.0);
}

TEST(FrozenLakeEnv, SlipperyOutcomesAreIntendedOrPerpendicularEachAThird) {
  FrozenLakeEnv env;  // 4x4, slippery
  // (1,2) = state 6: left is H(5), down F(10), right H(7), up F(2): four distinct targets.
  const std::int32_t from = 6;
  const auto outcomes = env.outcomes(from, FrozenLakeEnv::kDown);
  ASSERT_EQ(outcomes.size(), 3U);
  EXPECT_EQ(outcomes[0].next_state, 5);   // (down - 1) mod 4 = left
  EXPECT_EQ(outcomes[1].next_state, 10);  // down
  EXPECT_EQ(outcomes[2].next_state, 7);   // (down + 1) mod 4 = right
  for (const auto& o : outcomes) {
    EXPECT_DOUBLE_EQ(o.probability, 1.0 / 3.0);
  }

  env.reset(2024);
  for (Action action : {FrozenLakeEnv::kDown, FrozenLakeEnv::kUp}) {
    std::map<std::int32_t, int> counts;
    constexpr int kSamples = 30'000;
    for (int i = 0; i < kSamples; ++i) {
      env.set_state_for_testing(from);
      ++counts[env.step(action).observation];
    }
    const std::map<std::int32_t, int> expected_targets =
        action == FrozenLakeEnv::kDown ? std::map<std::int32_t, int>{{5, 0}, {10, 0}, {7, 0}}
                                       : std::map<std::int32_t, int>{{7, 0}, {2, 0}, {5, 0}};
    ASSERT_EQ(counts.size(), 3U);
    for (const auto& [state, count] : counts) {
      EXPECT_TRUE(expected_targets.count(state)) << "unexpected target " << state;
      EXPECT_NEAR(static_cast<double>(count) / kSamples, 1.0 / 3.0, 0.02) << "target " << state;
    }
  }
}

TEST(FrozenLakeEnv, TerminalTilesAbsorbInTheModel) {
  const FrozenLakeEnv env;
  for (std::int32_t s : {5, 15}) {
    const auto outcomes = env.outcomes(s, FrozenLakeEnv::kRight);
    ASSERT_EQ(outcomes.size(), 1U);
    EXPECT_EQ(outcomes[0].next_state, s);
    EXPECT_EQ(outcomes[0].reward, 0.0);
    EXPECT_TRUE(outcomes[0].terminated);
  }
}

TEST(FrozenLakeEnv, EightByEightMapLoads) {
  FrozenLakeConfig config;
  config.map_name = "8x8";
  FrozenLakeEnv env(config);
  EXPECT_EQ(env.num_states(), 64);
  EXPECT_EQ(env.num_rows(), 8);
  EXPECT_EQ(env.num_cols(), 8);
  EXPECT_EQ(env.max_episode_steps(), 200);
  EXPECT_EQ(env.tile(0), 'S');
  EXPECT_EQ(env.tile(63), 'G');
  EXPECT_EQ(env.tile(2 * 8 + 3), 'H');
  EXPECT_EQ(env.tile(5 * 8 + 1), 'H');
  int holes = 0;
  for (std::int32_t s = 0; s < env.num_states(); ++s) {
    holes += env.tile(s) == 'H' ? 1 : 0;
  }
  EXPECT_EQ(holes, 10);
  EXPECT_EQ(env.reset(1), 0);
  EXPECT_EQ(FrozenLakeEnv().num_states(), 16);
  EXPECT_EQ(FrozenLakeEnv().max_episode_steps(), 100);
}

TEST(FrozenLakeEnv, TimeLimitsByMapOrOverride) {
  FrozenLakeEnv env = non_slippery();
  env.reset(0);
  for (int i = 1; i <= 100; ++i) {
    const DiscreteStep step = env.step(FrozenLakeEnv::kLeft);  // stays on S
    ASSERT_FALSE(step.terminated);
    ASSERT_EQ(step.truncated, i == 100) << "at step " << i;
  }
  EXPECT_THROW(env.step(FrozenLakeEnv::kLeft), EnvUsageError);

  FrozenLakeConfig config;
  config.is_slippery = false;
  config.max_episode_steps = FrozenLakeConfig::kNoTimeLimit;
  FrozenLakeEnv unlimited(config);
  unlimited.reset(0);
  for (int i = 0; i < 500; ++i) {
    ASSERT_FALSE(unlimited.step(FrozenLakeEnv::kLeft).truncated);
  }
  config.max_episode_steps = 7;
  EXPECT_EQ(FrozenLakeEnv(config).max_episode_steps(), 7);
  config.max_episode_steps = -2;
  EXPECT_THROW(FrozenLakeEnv{config}, std::invalid_argument);
}

void expect_rejected(const std::vector<std::string>& map, const std::string& mention) {
  FrozenLakeConfig config;
  config.custom_map = map;
  try {
    FrozenLakeEnv env(config);
    FAIL() << "map should be rejected; expected a message mentioning " << mention;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
  }
}

TEST(FrozenLakeEnv, CustomMapIsValidated) {
  expect_rejected({"SFF", "FH", "FFG"}, "row 1");
  expect_rejected({"SFF", "FXF", "FFG"}, "'X'");
  expect_rejected({"SFF", "FXF", "FFG"}, "row 1 column 1");
  expect_rejected({"FFF", "FHF", "FFG"}, "0 'S'");
  expect_rejected({"SFS", "FHF", "FFG"}, "2 'S'");
  expect_rejected({"SFF", "FHF", "FFF"}, "no 'G'");
  expect_rejected({""}, "row 0");
  expect_rejected({"sFF", "FHF", "FFG"}, "'s'");

  FrozenLakeConfig unknown;
  unknown.map_name = "5x5";
  try {
    FrozenLakeEnv env(unknown);
    FAIL() << "unknown map name must be rejected";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("5x5"), std::string::npos) << e.what();
  }

  FrozenLakeConfig custom;
  custom.custom_map = {"FFS", "HGF"};
  custom.is_slippery = false;
  FrozenLakeEnv env(custom);
  EXPECT_EQ(env.num_states(), 6);
  EXPECT_EQ(env.start_state(), 2);
  EXPECT_EQ(env.max_episode_steps(), 100);
  EXPECT_EQ(env.reset(0), 2);
  EXPECT_EQ(env.step(FrozenLakeEnv::kLeft).observation, 1);
  const DiscreteStep goal = env.step(FrozenLakeEnv::kDown);
  EXPECT_EQ(goal.observation, 4);
  EXPECT_EQ(goal.reward, 1.0);
  EXPECT_TRUE(goal.terminated);
}

std::vector<std::int32_t> lake_rollout(std::uint64_t seed) {
  FrozenLakeEnv env;
  std::vector<std::int32_t> trajectory{env.reset(seed)};
  for (int i = 0; i < 1000; ++i) {
    const DiscreteStep step = env.step(static_cast<Action>(i % 4));
    trajectory.push_back(step.observation);
    if (step.terminated || step.truncated) {
      trajectory.push_back(env.reset());
    }
  }
  return trajectory;
}

TEST(FrozenLakeEnv, SameSeedSameTrajectoryDifferentSeedDifferent) {
  EXPECT_EQ(lake_rollout(5), lake_rollout(5));
  EXPECT_NE(lake_rollout(5), lake_rollout(6));
}

TEST(FrozenLakeEnv, NamesAndMisuse) {
  FrozenLakeEnv env;
  EXPECT_EQ(env.state_name(6), "cell(1,2)=F");
  EXPECT_EQ(env.state_name(0), "cell(0,0)=S");
  EXPECT_EQ(FrozenLakeEnv::action_name(0), "left");
  EXPECT_EQ(FrozenLakeEnv::action_name(1), "down");
  EXPECT_EQ(FrozenLakeEnv::action_name(2), "right");
  EXPECT_EQ(FrozenLakeEnv::action_name(3), "up");
  EXPECT_THROW(FrozenLakeEnv::action_name(4), std::invalid_argument);
  EXPECT_THROW(env.state_name(16), std::invalid_argument);

  EXPECT_THROW(env.step(0), EnvUsageError);
  env.reset(3);
  for (Action bad : {4, -1}) {
    try {
      env.step(bad);
      FAIL() << "action " << bad << " must throw";
    } catch (const EnvUsageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("action " + std::to_string(bad)), std::string::npos) << what;
      EXPECT_NE(what.find("cell(0,0)"), std::string::npos) << what;
    }
  }
  FrozenLakeEnv plain = non_slippery();
  plain.set_state_for_testing(1);
  ASSERT_TRUE(plain.step(FrozenLakeEnv::kDown).terminated);
  EXPECT_THROW(plain.step(FrozenLakeEnv::kDown), EnvUsageError);
}

}  // namespace
}  // namespace forkcast::env
