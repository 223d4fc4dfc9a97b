// CartPole-v1 against Gymnasium's semantics: a golden file from an independent Python
// implementation (tests/env/golden/gen_cartpole_golden.py), the episode rules, seeding
// and misuse.
#include "forkcast/env/cartpole.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace forkcast::env {
namespace {

// A policy that keeps the pole up well past 500 steps from any reset state.
Action balancing_action(const CartPoleEnv::State& s) {
  return s[2] + 0.5 * s[3] + 0.01 * s[0] + 0.05 * s[1] > 0.0 ? 1 : 0;
}

struct GoldenRow {
  std::string case_name;
  std::string integrator;
  int step = 0;
  CartPoleEnv::State state{};
  Action action = 0;
  CartPoleEnv::State next{};
  double reward = 0.0;
  bool terminated = false;
};

std::vector<GoldenRow> load_golden() {
  const std::string path = std::string(FORKCAST_SOURCE_DIR) + "/tests/env/golden/cartpole_golden.csv";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<GoldenRow> rows;
  std::string line;
  bool header_seen = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    if (!header_seen) {
      header_seen = true;
      continue;
    }
    std::vector<std::string> f;
    std::stringstream fields(line);
    std::string field;
    while (std::getline(fields, field, ',')) {
      f.push_back(field);
    }
    EXPECT_EQ(f.size(), 14U) << line;
    if (f.size() != 14U) {
      continue;
    }
    GoldenRow r;
    r.case_name = f[0];
    r.integrator = f[1];
    r.step = std::stoi(f[2]);
    // strtod reads the %.17g text back to the very same double.
    for (std::size_t i = 0; i < 4; ++i) {
      r.state[i] = std::strtod(f[3 + i].c_str(), nullptr);
      r.next[i] = std::strtod(f[8 + i].c_str(), nullptr);
    }
    r.action = std::stoi(f[7]);
    r.reward = std::strtod(f[12].c_str(), nullptr);
    r.terminated = f[13] == "1";
    rows.push_back(r);
  }
  return rows;
}

CartPoleConfig config_for(const std::string& integrator) {
  CartPoleConfig config;
  config.integrator = integrator == "euler" ? CartPoleIntegrator::kEuler
                                            : CartPoleIntegrator::kSemiImplicitEuler;
  return config;
}

TEST(CartPoleGolden, EveryStepMatchesTheIndependentImplementation) {
  const std::vector<GoldenRow> rows = load_golden();
  ASSERT_GT(rows.size(), 500U);
  std::map<std::string, int> cases;
  int inexact = 0;
  CartPoleEnv env;
  for (const GoldenRow& r : rows) {
    SCOPED_TRACE(r.case_name + " step " + std::to_string(r.step));
    if (r.step == 0) {
      env = CartPoleEnv(config_for(r.integrator));
      env.set_state_for_testing(r.state);
    }
    ++cases[r.case_name];
    // The replay only starts from the file's initial state: every later state is ours.
    for (std::size_t i = 0; i < 4; ++i) {
      ASSERT_NEAR(env.state()[i], r.state[i], 1e-12);
    }
    const CartPoleEnv::Step step = env.step(r.action);
    for (std::size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(env.state()[i], r.next[i], 1e-12) << "component " << i;
      if (std::bit_cast<std::uint64_t>(env.state()[i]) != std::bit_cast<std::uint64_t>(r.next[i])) {
        ++inexact;
      }
      EXPECT_EQ(step.observation[i], static_cast<float>(env.state()[i]));
    }
    EXPECT_EQ(step.reward, r.reward);
    EXPECT_EQ(step.terminated, r.terminated);
    EXPECT_FALSE(step.truncated);
  }
  EXPECT_GE(cases.size(), 10U);
  // Same libm (glibc) on both sides, same operation order: the doubles are identical.
  EXPECT_EQ(inexact, 0) << "components that differ in the last bits from the golden file";
}

TEST(CartPoleGolden, PythonSquareIsWhatLibmPowReturns) {
  // CPython and numpy compute v ** 2 with pow(); python_square must give the same bits,
  // including for the ~0.1% of arguments where pow and v * v differ.
  const volatile double two = 2.0;
  std::mt19937_64 rng(20240601);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-40, 40);
  int pow_differs_from_product = 0;
  for (int i = 0; i < 2'000'000; ++i) {
    const double x = std::ldexp(mantissa(rng), exponent(rng)) * (i % 2 == 0 ? 1.0 : -1.0);
    const double expected = std::pow(x, two);
    pow_differs_from_product += expected != x * x ? 1 : 0;
    ASSERT_EQ(std::bit_cast<std::uint64_t>(detail::python_square(x)),
              std::bit_cast<std::uint64_t>(expected))
        << "x=" << x;
  }
  EXPECT_GT(pow_differs_from_product, 0) << "the slow path was never needed";
  for (double x : {0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 1e-200, 1e200, 1e-310, 1e300,
                   std::numeric_limits<double>::min(), std::numeric_limits<double>::max(),
                   std::numeric_limits<double>::denorm_min(),
                   std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(detail::python_square(x)),
              std::bit_cast<std::uint64_t>(std::pow(x, two)))
        << "x=" << x;
  }
}

TEST(CartPoleEnv, SpecMatchesGymnasium) {
  const CartPoleEnv env;
  const CartPoleSpec& spec = env.spec();
  EXPECT_EQ(CartPoleEnv::kNumActions, 2);
  EXPECT_EQ(CartPoleSpec::kObservationSize, 4U);
  EXPECT_EQ(spec.max_episode_steps, 500);
  EXPECT_EQ(spec.observation_high[0], 4.8F);
  EXPECT_EQ(spec.observation_high[1], std::numeric_limits<float>::max());
  EXPECT_EQ(spec.observation_high[2], static_cast<float>(0.41887902047863906));
  EXPECT_EQ(spec.observation_high[3], std::numeric_limits<float>::max());
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(spec.observation_low[i], -spec.observation_high[i]);
  }
  EXPECT_DOUBLE_EQ(env.config().theta_threshold_rad, 0.20943951023931953);
}

TEST(CartPoleEnv, TerminatesExactlyOutsideTheThresholds) {
  const CartPoleConfig c;
  struct Probe {
    CartPoleEnv::State state;
    bool terminated;
  };
  // Zero velocities keep x and theta where they are for one Euler step.
  const std::vector<Probe> probes = {
      {{2.4, 0.0, 0.0, 0.0}, false},
      {{-2.4, 0.0, 0.0, 0.0}, false},
      {{2.4, 1e-3, 0.0, 0.0}, true},
      {{-2.4, -1e-3, 0.0, 0.0}, true},
      {{0.0, 0.0, c.theta_threshold_rad, 0.0}, false},
      {{0.0, 0.0, -c.theta_threshold_rad, 0.0}, false},
      {{0.0, 0.0, c.theta_threshold_rad, 1e-3}, true},
      {{0.0, 0.0, -c.theta_threshold_rad, -1e-3}, true},
  };
  for (const Probe& p : probes) {
    CartPoleEnv env;
    env.set_state_for_testing(p.state);
    const auto step = env.step(1);
    EXPECT_EQ(step.terminated, p.terminated) << "x=" << p.state[0] << " theta=" << p.state[2];
    EXPECT_EQ(step.reward, 1.0) << "the terminating step is rewarded too";
    EXPECT_FALSE(step.truncated);
    EXPECT_EQ(env.needs_reset(), p.terminated);
  }
}

TEST(CartPoleEnv, TruncatesAtFiveHundredSteps) {
  CartPoleEnv env;
  env.reset(7);
  int steps = 0;
  CartPoleEnv::Step step;
  do {
    step = env.step(balancing_action(env.state()));
    ++steps;
    ASSERT_FALSE(step.terminated) << "the balancing controller dropped the pole at " << steps;
    ASSERT_EQ(step.truncated, steps == 500) << "at step " << steps;
  } while (!step.truncated);
  EXPECT_EQ(env.elapsed_steps(), 500);
  EXPECT_TRUE(env.needs_reset());
  EXPECT_THROW(env.step(0), EnvUsageError);
}

TEST(CartPoleEnv, TerminatedAndTruncatedCanCoincide) {
  // TimeLimit sets truncated from the step count alone, as Gymnasium's wrapper does.
  CartPoleEnv env;
  env.set_state_for_testing({2.4, 1.0, 0.0, 0.0}, 499);
  const auto step = env.step(1);
  EXPECT_TRUE(step.terminated);
  EXPECT_TRUE(step.truncated);
}

TEST(CartPoleEnv, NoTimeLimitWhenMaxEpisodeStepsIsZero) {
  CartPoleConfig config;
  config.max_episode_steps = 0;
  CartPoleEnv env(config);
  env.reset(11);
  for (int i = 0; i < 1200; ++i) {
    const auto step = env.step(balancing_action(env.state()));
    ASSERT_FALSE(step.truncated);
    ASSERT_FALSE(step.terminated) << "at step " << i;
  }
}

TEST(CartPoleEnv, ResetStateIsUniformWithinFiveHundredths) {
  CartPoleEnv env;
  std::array<double, 4> low{1, 1, 1, 1};
  std::array<double, 4> high{-1, -1, -1, -1};
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    const auto obs = env.reset(seed);
    for (std::size_t i = 0; i < 4; ++i) {
      const double v = env.state()[i];
      ASSERT_GE(v, -0.05);
      ASSERT_LT(v, 0.05);
      ASSERT_EQ(obs[i], static_cast<float>(v));
      low[i] = std::min(low[i], v);
      high[i] = std::max(high[i], v);
    }
    EXPECT_EQ(env.elapsed_steps(), 0);
  }
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_LT(low[i], -0.045) << "component " << i << " does not cover the range";
    EXPECT_GT(high[i], 0.045) << "component " << i << " does not cover the range";
  }
}

std::vector<CartPoleEnv::Observation> rollout(std::uint64_t seed, int steps) {
  CartPoleEnv env;
  std::vector<CartPoleEnv::Observation> trajectory;
  trajectory.push_back(env.reset(seed));
  for (int i = 0; i < steps; ++i) {
    const auto& obs = trajectory.back();
    const auto step = env.step(obs[2] + obs[3] > 0.0F ? 1 : 0);
    trajectory.push_back(step.observation);
    if (step.terminated || step.truncated) {
      trajectory.push_back(env.reset());  // continues the seeded generator
    }
  }
  return trajectory;
}

TEST(CartPoleEnv, SameSeedSameTrajectoryDifferentSeedDifferent) {
  const auto a = rollout(42, 1000);
  const auto b = rollout(42, 1000);
  const auto c = rollout(43, 1000);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a.front(), c.front());
}

TEST(CartPoleEnv, ObservationsStayInsideTheSpecWhileRunning) {
  CartPoleEnv env;
  const CartPoleSpec& spec = env.spec();
  std::mt19937_64 policy_rng(5);
  std::bernoulli_distribution coin(0.5);
  env.reset(3);
  int checked = 0;
  for (int i = 0; i < 20'000; ++i) {
    const auto step = env.step(coin(policy_rng) ? 1 : 0);
    if (!step.terminated) {
      for (std::size_t k = 0; k < 4; ++k) {
        ASSERT_GE(step.observation[k], spec.observation_low[k]) << "component " << k;
        ASSERT_LE(step.observation[k], spec.observation_high[k]) << "component " << k;
      }
      ++checked;
    }
    if (step.terminated || step.truncated) {
      env.reset();
    }
  }
  EXPECT_GT(checked, 15'000);
}

TEST(CartPoleEnv, MisuseThrowsEnvUsageErrorNamingActionAndState) {
  CartPoleEnv env;
  try {
    env.step(0);
    FAIL() << "step before reset must throw";
  } catch (const EnvUsageError& e) {
    EXPECT_NE(std::string(e.what()).find("before the first reset"), std::string::npos) << e.what();
  }

  env.reset(1);
  for (Action bad : {2, -1}) {
    try {
      env.step(bad);
      FAIL() << "action " << bad << " must throw";
    } catch (const EnvUsageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("action " + std::to_string(bad)), std::string::npos) << what;
      EXPECT_NE(what.find("theta="), std::string::npos) << what;
    }
  }
  EXPECT_EQ(env.elapsed_steps(), 0) << "a refused action must not advance the episode";

  env.set_state_for_testing({0.0, 0.0, 0.2, 5.0});
  ASSERT_TRUE(env.step(1).terminated);
  try {
    env.step(1);
    FAIL() << "step after termination must throw";
  } catch (const EnvUsageError& e) {
    EXPECT_NE(std::string(e.what()).find("already ended"), std::string::npos) << e.what();
  }
  env.reset();
  EXPECT_NO_THROW(env.step(1));
}

TEST(CartPoleEnv, SuttonBartoRewardIsZeroThenMinusOne) {
  CartPoleConfig config;
  config.sutton_barto_reward = true;
  CartPoleEnv env(config);
  env.set_state_for_testing({0.0, 0.0, 0.0, 0.0});
  EXPECT_EQ(env.step(1).reward, 0.0);
  env.set_state_for_testing({0.0, 0.0, 0.2, 5.0});
  const auto last = env.step(1);
  EXPECT_TRUE(last.terminated);
  EXPECT_EQ(last.reward, -1.0);
}

TEST(CartPoleEnv, RejectsUnphysicalConfigNamingTheField) {
  CartPoleConfig config;
  config.masspole_kg = 0.0;
  try {
    CartPoleEnv env(config);
    FAIL() << "masspole_kg = 0 must be rejected";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("masspole_kg"), std::string::npos) << e.what();
  }
  config = {};
  config.reset_low = 0.1;
  EXPECT_THROW(CartPoleEnv{config}, std::invalid_argument);
  config = {};
  config.max_episode_steps = -1;
  EXPECT_THROW(CartPoleEnv{config}, std::invalid_argument);
  CartPoleEnv env;
  EXPECT_THROW(env.set_state_for_testing({0, 0, 0, 0}, 500), std::invalid_argument);
}

}  // namespace
}  // namespace forkcast::env
