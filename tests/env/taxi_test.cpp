// Taxi-v3 against Gymnasium's rules: walls, pickup/dropoff, initial states, time limit,
// seeding, misuse, and solvability (value iteration reaches the known optimal return).
#include "forkcast/env/taxi.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace forkcast::env {
namespace {

constexpr int R = 0;
constexpr int G = 1;
constexpr int Y = 2;
constexpr int B = 3;

struct Expected {
  TaxiState from;
  Action action;
  TaxiState to;
  int reward;
  bool terminated;
};

void expect_transition(const Expected& e) {
  const std::int32_t from = TaxiEnv::encode(e.from.taxi_row, e.from.taxi_col, e.from.passenger,
                                            e.from.destination);
  SCOPED_TRACE(TaxiEnv::state_name(from) + " " + std::string(TaxiEnv::action_name(e.action)));
  TaxiEnv env;
  env.set_state_for_testing(from);
  const DiscreteStep step = env.step(e.action);
  EXPECT_EQ(TaxiEnv::decode(step.observation), e.to);
  EXPECT_EQ(step.reward, static_cast<double>(e.reward));
  EXPECT_EQ(step.terminated, e.terminated);
  EXPECT_FALSE(step.truncated);
  const TaxiTransition& t = TaxiEnv::transition(from, e.action);
  EXPECT_EQ(t.next_state, step.observation);
  EXPECT_EQ(t.reward, e.reward);
  EXPECT_EQ(t.terminated, e.terminated);
}

TEST(TaxiEnv, WallsFromTheMap) {
  // Each (from, action, to) follows one character of Gymnasium's MAP.
  const std::vector<Expected> moves = {
      {{0, 1, R, G}, TaxiEnv::kEast, {0, 1, R, G}, -1, false},   // "R: |": wall east of (0,1)
      {{0, 2, R, G}, TaxiEnv::kWest, {0, 2, R, G}, -1, false},   // same wall from the east
      {{0, 1, R, G}, TaxiEnv::kWest, {0, 0, R, G}, -1, false},
      {{0, 0, R, G}, TaxiEnv::kEast, {0, 1, R, G}, -1, false},
      {{1, 1, R, G}, TaxiEnv::kEast, {1, 1, R, G}, -1, false},   // row 1 keeps the wall
      {{2, 1, R, G}, TaxiEnv::kEast, {2, 2, R, G}, -1, false},   // row 2 is open
      {{3, 0, R, G}, TaxiEnv::kEast, {3, 0, R, G}, -1, false},   // "| | :": wall east of (3,0)
      {{3, 1, R, G}, TaxiEnv::kWest, {3, 1, R, G}, -1, false},
      {{3, 1, R, G}, TaxiEnv::kEast, {3, 2, R, G}, -1, false},
      {{3, 2, R, G}, TaxiEnv::kEast, {3, 2, R, G}, -1, false},   // ": |": wall east of (3,2)
      {{4, 0, R, G}, TaxiEnv::kEast, {4, 0, R, G}, -1, false},   // "|Y|"
      {{4, 2, R, G}, TaxiEnv::kEast, {4, 2, R, G}, -1, false},   // ": |B"
      {{4, 3, R, G}, TaxiEnv::kWest, {4, 3, R, G}, -1, false},
      {{4, 3, R, G}, TaxiEnv::kEast, {4, 4, R, G}, -1, false},
      {{0, 4, R, G}, TaxiEnv::kEast, {0, 4, R, G}, -1, false},   // border
      {{2, 0, R, G}, TaxiEnv::kWest, {2, 0, R, G}, -1, false},   // border
      {{0, 3, R, G}, TaxiEnv::kNorth, {0, 3, R, G}, -1, false},  // border
      {{4, 3, R, G}, TaxiEnv::kSouth, {4, 3, R, G}, -1, false},  // border
      {{1, 1, R, G}, TaxiEnv::kSouth, {2, 1, R, G}, -1, false},  // no walls north-south
      {{1, 1, R, G}, TaxiEnv::kNorth, {0, 1, R, G}, -1, false},
  };
  for (const Expected& e : moves) {
    expect_transition(e);
  }
}

TEST(TaxiEnv, PickupAndDropoffRules) {
  const std::vector<Expected> cases = {
      // Pickup where the passenger waits.
      {{0, 0, R, G}, TaxiEnv::kPickup, {0, 0, TaxiEnv::kInTaxi, G}, -1, false},
      {{4, 3, B, Y}, TaxiEnv::kPickup, {4, 3, TaxiEnv::kInTaxi, Y}, -1, false},
      // Illegal pickups: elsewhere, at another depot, or with the passenger aboard.
      {{1, 1, R, G}, TaxiEnv::kPickup, {1, 1, R, G}, -10, false},
      {{0, 4, R, G}, TaxiEnv::kPickup, {0, 4, R, G}, -10, false},
      {{0, 0, TaxiEnv::kInTaxi, G}, TaxiEnv::kPickup, {0, 0, TaxiEnv::kInTaxi, G}, -10, false},
      // Successful dropoff: +20 and the episode ends with the passenger at the destination.
      {{0, 4, TaxiEnv::kInTaxi, G}, TaxiEnv::kDropoff, {0, 4, G, G}, 20, true},
      {{4, 0, TaxiEnv::kInTaxi, Y}, TaxiEnv::kDropoff, {4, 0, Y, Y}, 20, true},
      // Dropoff at another depot: the passenger waits there (Gymnasium 1.x), no penalty.
      {{4, 0, TaxiEnv::kInTaxi, G}, TaxiEnv::kDropoff, {4, 0, Y, G}, -1, false},
      {{4, 3, TaxiEnv::kInTaxi, R}, TaxiEnv::kDropoff, {4, 3, B, R}, -1, false},
      // Illegal dropoffs: away from the depots, or without the passenger.
      {{2, 2, TaxiEnv::kInTaxi, R}, TaxiEnv::kDropoff, {2, 2, TaxiEnv::kInTaxi, R}, -10, false},
      {{0, 0, G, Y}, TaxiEnv::kDropoff, {0, 0, G, Y}, -10, false},
  };
  for (const Expected& e : cases) {
    expect_transition(e);
  }
}

TEST(TaxiEnv, EncodeDecodeRoundTripsAllStates) {
  std::set<std::int32_t> seen;
  for (int row = 0; row < 5; ++row) {
    for (int col = 0; col < 5; ++col) {
      for (int passenger = 0; passenger < 5; ++passenger) {
        for (int destination = 0; destination < 4; ++destination) {
          const std::int32_t s = TaxiEnv::encode(row, col, passenger, destination);
          EXPECT_EQ(s, ((row * 5 + col) * 5 + passenger) * 4 + destination);
          const TaxiState d = TaxiEnv::decode(s);
          EXPECT_EQ(d, (TaxiState{row, col, passenger, destination}));
          seen.insert(s);
        }
      }
    }
  }
  EXPECT_EQ(seen.size(), 500U);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 499);
  EXPECT_THROW(TaxiEnv::encode(5, 0, 0, 0), std::invalid_argument);
  EXPECT_THROW(TaxiEnv::encode(0, 0, 0, 4), std::invalid_argument);
  EXPECT_THROW(TaxiEnv::decode(500), std::invalid_argument);
  EXPECT_THROW(TaxiEnv::decode(-1), std::invalid_argument);
}

TEST(TaxiEnv, NamesForQTableExport) {
  EXPECT_EQ(TaxiEnv::state_name(TaxiEnv::encode(2, 3, Y, G)), "taxi(2,3) passenger=Y dest=G");
  EXPECT_EQ(TaxiEnv::state_name(TaxiEnv::encode(0, 0, TaxiEnv::kInTaxi, B)),
            "taxi(0,0) passenger=taxi dest=B");
  const std::array<std::string_view, 6> names = {"south", "north", "east",
                                                 "west",  "pickup", "dropoff"};
  for (Action a = 0; a < TaxiEnv::kNumActions; ++a) {
    EXPECT_EQ(TaxiEnv::action_name(a), names[static_cast<std::size_t>(a)]);
  }
  EXPECT_THROW(TaxiEnv::action_name(6), std::invalid_argument);
  EXPECT_THROW(TaxiEnv::state_name(500), std::invalid_argument);
}

TEST(TaxiEnv, ActionMaskMarksExactlyTheActionsThatChangeTheState) {
  for (std::int32_t s = 0; s < TaxiEnv::kNumStates; ++s) {
    const auto mask = TaxiEnv::action_mask(s);
    for (Action a = 0; a < TaxiEnv::kNumActions; ++a) {
      EXPECT_EQ(mask[static_cast<std::size_t>(a)], TaxiEnv::transition(s, a).next_state != s)
          << TaxiEnv::state_name(s) << " " << TaxiEnv::action_name(a);
    }
  }
  // At R with the passenger there: south, east and pickup.
  const auto mask = TaxiEnv::action_mask(TaxiEnv::encode(0, 0, R, G));
  EXPECT_EQ(mask, (std::array<bool, 6>{true, false, true, false, true, false}));
}

TEST(TaxiEnv, InitialStatesAreTheThreeHundredValidOnesAllReachable) {
  const auto initial = TaxiEnv::initial_states();
  const std::set<std::int32_t> valid(initial.begin(), initial.end());
  ASSERT_EQ(valid.size(), 300U);
  for (std::int32_t s : valid) {
    const TaxiState d = TaxiEnv::decode(s);
    EXPECT_LT(d.passenger, TaxiEnv::kInTaxi);
    EXPECT_NE(d.passenger, d.destination);
  }
  TaxiEnv env;
  std::set<std::int32_t> hit;
  for (std::uint64_t seed = 0; seed < 3000; ++seed) {
    const std::int32_t s = env.reset(seed);
    ASSERT_TRUE(valid.count(s)) << TaxiEnv::state_name(s);
    hit.insert(s);
    for (int k = 0; k < 5; ++k) {  // continuing the generator stays in the same set
      const std::int32_t t = env.reset();
      ASSERT_TRUE(valid.count(t)) << TaxiEnv::state_name(t);
      hit.insert(t);
    }
  }
  EXPECT_EQ(hit.size(), 300U);
}

TEST(TaxiEnv, TruncatesAtTwoHundredSteps) {
  TaxiEnv env;
  env.reset(9);
  for (int i = 1; i <= 200; ++i) {
    const DiscreteStep step = env.step(TaxiEnv::kNorth);  // never ends an episode
    ASSERT_FALSE(step.terminated);
    ASSERT_EQ(step.truncated, i == 200) << "at step " << i;
  }
  EXPECT_TRUE(env.needs_reset());
  EXPECT_THROW(env.step(TaxiEnv::kNorth), EnvUsageError);

  TaxiEnv unlimited(TaxiConfig{.max_episode_steps = 0});
  unlimited.reset(9);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_FALSE(unlimited.step(TaxiEnv::kNorth).truncated);
  }
  EXPECT_THROW(TaxiEnv(TaxiConfig{.max_episode_steps = -1}), std::invalid_argument);
}

std::vector<std::int32_t> taxi_rollout(std::uint64_t seed) {
  TaxiEnv env;
  std::mt19937_64 policy(77);
  std::uniform_int_distribution<Action> pick(0, TaxiEnv::kNumActions - 1);
  std::vector<std::int32_t> trajectory{env.reset(seed)};
  for (int i = 0; i < 1000; ++i) {
    const DiscreteStep step = env.step(pick(policy));
    trajectory.push_back(step.observation);
    if (step.terminated || step.truncated) {
      trajectory.push_back(env.reset());
    }
  }
  return trajectory;
}

TEST(TaxiEnv, SameSeedSameTrajectoryDifferentSeedDifferent) {
  EXPECT_EQ(taxi_rollout(123), taxi_rollout(123));
  EXPECT_NE(taxi_rollout(123), taxi_rollout(124));
}

TEST(TaxiEnv, MisuseThrowsEnvUsageError) {
  TaxiEnv env;
  EXPECT_THROW(env.step(0), EnvUsageError);
  env.reset(1);
  for (Action bad : {6, -1}) {
    try {
      env.step(bad);
      FAIL() << "action " << bad << " must throw";
    } catch (const EnvUsageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("action " + std::to_string(bad)), std::string::npos) << what;
      EXPECT_NE(what.find("taxi("), std::string::npos) << what;
    }
  }
  env.set_state_for_testing(TaxiEnv::encode(0, 4, TaxiEnv::kInTaxi, G));
  ASSERT_TRUE(env.step(TaxiEnv::kDropoff).terminated);
  try {
    env.step(TaxiEnv::kSouth);
    FAIL() << "step after termination must throw";
  } catch (const EnvUsageError& e) {
    EXPECT_NE(std::string(e.what()).find("already ended"), std::string::npos) << e.what();
  }
}

// Value iteration on the known model, then the greedy policy on the real environment.
// Gymnasium's Taxi-v3 is solved at a mean return of about 7.9; the Hugging Face Deep RL
// course's reference Q-learning agent reaches 7.56.
TEST(TaxiEnv, ValueIterationPolicySolvesTheTask) {
  constexpr double kGamma = 0.99;
  std::array<double, TaxiEnv::kNumStates> value{};
  for (int sweep = 0; sweep < 1000; ++sweep) {
    double change = 0.0;
    for (std::int32_t s = 0; s < TaxiEnv::kNumStates; ++s) {
      double best = -1e9;
      for (Action a = 0; a < TaxiEnv::kNumActions; ++a) {
        const TaxiTransition& t = TaxiEnv::transition(s, a);
        const double next = t.terminated ? 0.0 : value[static_cast<std::size_t>(t.next_state)];
        best = std::max(best, t.reward + kGamma * next);
      }
      change = std::max(change, std::abs(best - value[static_cast<std::size_t>(s)]));
      value[static_cast<std::size_t>(s)] = best;
    }
    if (change < 1e-10) {
      break;
    }
  }
  const auto greedy = [&](std::int32_t s) {
    Action best_action = 0;
    double best = -1e18;
    for (Action a = 0; a < TaxiEnv::kNumActions; ++a) {
      const TaxiTransition& t = TaxiEnv::transition(s, a);
      const double q =
          t.reward + (t.terminated ? 0.0 : kGamma * value[static_cast<std::size_t>(t.next_state)]);
      if (q > best) {
        best = q;
        best_action = a;
      }
    }
    return best_action;
  };

  TaxiEnv env;
  double total = 0.0;
  constexpr int kEpisodes = 100;
  for (int episode = 0; episode < kEpisodes; ++episode) {
    std::int32_t s = env.reset(static_cast<std::uint64_t>(1000 + episode));
    for (;;) {
      const DiscreteStep step = env.step(greedy(s));
      total += step.reward;
      s = step.observation;
      ASSERT_FALSE(step.truncated) << "episode " << episode << " did not deliver in 200 steps";
      if (step.terminated) {
        break;
      }
    }
  }
  EXPECT_GE(total / kEpisodes, 7.5);
}

}  // namespace
}  // namespace forkcast::env
