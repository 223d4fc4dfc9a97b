// CartPole-v1, exact to Gymnasium 1.x (gymnasium/envs/classic_control/cartpole.py wrapped
// in TimeLimit(500)): the cart-pole of Barto, Sutton & Anderson, "Neuronlike adaptive
// elements that can solve difficult learning control problems", IEEE SMC 13(5), 1983,
// with the equations of motion corrected by Florian, "Correct equations for the dynamics
// of the cart-pole system" (2007).
//
// Exactness: the state is float64 and step() performs Gymnasium's floating-point
// operations in Gymnasium's order, so from the same state and action the next state is
// bit-for-bit the one Gymnasium computes on the same libm (checked against a golden file
// written by an independent Python implementation: tests/env/golden/). Products that are
// then added go through detail::product, which keeps GCC from fusing them into fma (it
// does so by default in C++, -std=c++20 included, whenever -march offers FMA, e.g.
// FORKCAST_NATIVE) on x86-64 and AArch64. Do not build this header with -ffast-math.
//
// What differs from Gymnasium, on purpose:
// - reset() draws the initial state from std::mt19937_64 through
//   std::uniform_real_distribution<double>; the distribution is Gymnasium's (uniform in
//   [reset_low, reset_high) per component) but the stream is not numpy's PCG64, so a given
//   seed gives a different (equally valid) initial state than gymnasium.make(...).reset(seed).
// - misuse throws EnvUsageError where Gymnasium asserts or warns: an action outside {0, 1},
//   step() before the first reset(), step() after terminated or truncated.
// - reset() before any reset(seed) uses kDefaultSeed (deterministic) where Gymnasium would
//   draw OS entropy.
//
// Performance: step() is defined in this header, allocates nothing and calls nothing
// virtual, so an agent templated on CartPoleEnv gets it inlined (bench/env/cartpole_bench.cpp).
#pragma once

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>

#include "forkcast/env/env.hpp"

namespace forkcast::env {

// How positions follow velocities within one tau (Gymnasium's `kinematics_integrator`).
enum class CartPoleIntegrator {
  kEuler,              // Gymnasium's default: positions advance with the old velocities
  kSemiImplicitEuler,  // velocities first, then positions with the new velocities
};

// Physics and episode constants. Defaults are CartPole-v1's; names carry units.
struct CartPoleConfig {
  double gravity_mps2 = 9.8;
  double masscart_kg = 1.0;
  double masspole_kg = 0.1;
  double half_pole_length_m = 0.5;  // Gymnasium's `length`: half the pole's length
  double force_mag_n = 10.0;
  double tau_s = 0.02;  // seconds between state updates
  CartPoleIntegrator integrator = CartPoleIntegrator::kEuler;
  // 12 degrees, written as Gymnasium writes it so that the double is the same.
  double theta_threshold_rad = 12 * 2 * std::numbers::pi / 360;
  double x_threshold_m = 2.4;
  int max_episode_steps = 500;  // TimeLimit of CartPole-v1; 0 = no time limit
  double reset_low = -0.05;     // bounds of the uniform initial state (Gymnasium reset options)
  double reset_high = 0.05;
  // Gymnasium 1.x `sutton_barto_reward`: 0 per step and -1 on termination instead of +1.
  bool sutton_barto_reward = false;
};

// What an agent may assume about observations and actions (Gymnasium's spaces).
struct CartPoleSpec {
  static constexpr std::size_t kObservationSize = 4;
  static constexpr int kNumActions = 2;
  // Twice the termination thresholds, so that the observation that terminates an episode
  // is still inside the box. The velocities are bounded by float32 max, as in Gymnasium
  // (np.finfo(np.float32).max), which its documentation prints as "Inf".
  std::array<float, kObservationSize> observation_low{};
  std::array<float, kObservationSize> observation_high{};
  int max_episode_steps = 0;  // 0 = no time limit
};

namespace detail {

// a * b, rounded to double before it is used, as Python rounds it. The empty asm makes
// the product opaque, so the compiler cannot contract it with a following addition into
// one fma with a single rounding; it emits no instruction.
[[gnu::always_inline]] inline double product(double a, double b) noexcept {
  double p = a * b;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(p));
#endif
  return p;
}

// libm pow(x, 2.0), kept out of line and away from the constant folding that would turn
// it into x * x (cartpole.cpp).
[[gnu::cold]] double libm_pow2(double x) noexcept;

// What CPython and numpy return for `x ** 2`: they call libm pow(x, 2.0), which on glibc
// is not always the correctly rounded x * x: it misrounds about 0.1% of squares, those
// whose exact value lies within ~0.01 ULP of a rounding midpoint. Gymnasium squares
// theta_dot and cos(theta) with `**`, so matching it bit-for-bit needs pow's answer, but a
// pow call costs about as much as the rest of a step. glibc's pow states its error bound
// as 0.509 ULP from its exp stage plus 1.5 * 2^-68 relative from its log stage times
// |y * log(x)| (sysdeps/ieee754/dbl-64/e_pow.c); for squares between 2^-64 and 2^64
// that totals under 0.513 ULP. So when the exact square is closer than 0.48 ULP to
// x * x, pow must return x * x (every other double is more than 0.52 ULP away), and pow
// is only called for the ~4% of arguments near a midpoint (or outside that range).
// The exact rounding error comes from Dekker's split product (no FMA on baseline x86-64).
// tests/env/cartpole_test.cpp checks this against the platform's pow on 2M arguments.
inline double python_square(double x) noexcept {
  const double square = product(x, x);
  constexpr double kSplitter = 134217729.0;  // 2^27 + 1: splits a double in 26 + 27 bits
  const double scaled = product(kSplitter, x);
  const double hi = scaled - (scaled - x);
  const double lo = x - hi;
  const double error =
      ((product(hi, hi) - square) + product(2.0 * hi, lo)) + product(lo, lo);
  // Only squares in [2^-64, 2^64), where the bound above holds and the split is exact;
  // one unsigned comparison also sends zero, subnormals, inf and NaN to pow.
  constexpr std::uint64_t kLowBits = std::uint64_t{1023 - 64} << 52;   // 2^-64
  constexpr std::uint64_t kHighBits = std::uint64_t{1023 + 64} << 52;  // 2^64
  const auto bits = std::bit_cast<std::uint64_t>(square);
  const bool in_range = bits - kLowBits < kHighBits - kLowBits;
  // Distance to the next double below: the ULP, or half of it when the square is a power
  // of two, which makes the test conservative there.
  const double spacing = square - std::bit_cast<double>(bits - 1);
  if (in_range & (std::fabs(error) < 0.48 * spacing)) [[likely]] {
    return square;
  }
  return libm_pow2(x);
}

}  // namespace detail

class CartPoleEnv {
 public:
  static constexpr int kNumActions = CartPoleSpec::kNumActions;
  static constexpr std::size_t kObservationSize = CartPoleSpec::kObservationSize;
  static constexpr std::uint64_t kDefaultSeed = 0;

  using Observation = std::array<float, kObservationSize>;
  using State = std::array<double, kObservationSize>;  // x, x_dot, theta, theta_dot
  using Step = BoxStep<kObservationSize>;

  // Throws std::invalid_argument naming the field and value for a config that is not
  // physical (non-positive masses, length, tau or thresholds, reset_low > reset_high,
  // negative max_episode_steps, non-finite values).
  explicit CartPoleEnv(CartPoleConfig config = {});

  // Re-seeds the generator, then starts an episode.
  Observation reset(std::uint64_t seed);
  // Starts an episode, continuing the generator.
  Observation reset();
  // The environment's random stream, so a training checkpoint can save and restore it.
  std::mt19937_64& generator() noexcept { return rng_; }

  // Advances one tau. Reward +1 on every step including the terminating one (0 and -1 with
  // sutton_barto_reward). `truncated` is TimeLimit's: elapsed steps >= max_episode_steps,
  // independent of `terminated` (both can be true on the same step).
  // Throws EnvUsageError for an action outside {0, 1}, before the first reset, or after
  // the episode ended.
  Step step(Action action);

  [[nodiscard]] const CartPoleSpec& spec() const noexcept { return spec_; }
  [[nodiscard]] const CartPoleConfig& config() const noexcept { return config_; }
  // The float64 state the dynamics run on (the observation is this rounded to float32).
  [[nodiscard]] const State& state() const noexcept { return state_; }
  [[nodiscard]] int elapsed_steps() const noexcept { return elapsed_steps_; }
  // True before the first reset and after an episode ended: step() would throw.
  [[nodiscard]] bool needs_reset() const noexcept { return !running_; }

  // Test hook: starts an episode from `state` as if reset() had drawn it, with
  // `elapsed_steps` already taken (to reach the time limit without 500 steps). Leaves the
  // generator alone. Golden-file tests use it to replay states computed elsewhere.
  void set_state_for_testing(const State& state, int elapsed_steps = 0);

 private:
  [[noreturn]] void throw_step_error(Action action) const;
  Observation start_episode();
  [[nodiscard]] static Observation to_observation(const State& state) noexcept {
    return {static_cast<float>(state[0]), static_cast<float>(state[1]),
            static_cast<float>(state[2]), static_cast<float>(state[3])};
  }

  CartPoleConfig config_;
  CartPoleSpec spec_;
  // Hoisted as Gymnasium hoists them in __init__, so the doubles are the same.
  double total_mass_kg_ = 0.0;
  double polemass_length_kgm_ = 0.0;
  State state_{};
  int elapsed_steps_ = 0;
  bool running_ = false;
  std::mt19937_64 rng_{kDefaultSeed};
};

inline CartPoleEnv::Step CartPoleEnv::step(Action action) {
  // One test covers both misuses: a negative action wraps to a large unsigned value.
  if (!running_ || static_cast<std::uint32_t>(action) > 1U) [[unlikely]] {
    throw_step_error(action);
  }
  const double x = state_[0];
  const double x_dot = state_[1];
  const double theta = state_[2];
  const double theta_dot = state_[3];
  const double force = action == 1 ? config_.force_mag_n : -config_.force_mag_n;
  const double costheta = std::cos(theta);
  const double sintheta = std::sin(theta);

  // Every expression below keeps Gymnasium's operand order (Python evaluates a * b * c as
  // (a * b) * c and a * b / c as (a * b) / c); reordering would change the last bits.
  using detail::product;
  using detail::python_square;
  const double temp =
      (force + product(polemass_length_kgm_ * python_square(theta_dot), sintheta)) /
      total_mass_kg_;
  const double thetaacc =
      (product(config_.gravity_mps2, sintheta) - product(costheta, temp)) /
      (config_.half_pole_length_m *
       (4.0 / 3.0 - config_.masspole_kg * python_square(costheta) / total_mass_kg_));
  const double xacc = temp - polemass_length_kgm_ * thetaacc * costheta / total_mass_kg_;

  const double tau = config_.tau_s;
  State next;
  if (config_.integrator == CartPoleIntegrator::kEuler) {
    next[0] = x + product(tau, x_dot);
    next[1] = x_dot + product(tau, xacc);
    next[2] = theta + product(tau, theta_dot);
    next[3] = theta_dot + product(tau, thetaacc);
  } else {
    next[1] = x_dot + product(tau, xacc);
    next[0] = x + product(tau, next[1]);
    next[3] = theta_dot + product(tau, thetaacc);
    next[2] = theta + product(tau, next[3]);
  }
  state_ = next;

  Step result;
  result.observation = to_observation(next);
  result.terminated = next[0] < -config_.x_threshold_m || next[0] > config_.x_threshold_m ||
                      next[2] < -config_.theta_threshold_rad ||
                      next[2] > config_.theta_threshold_rad;
  if (config_.sutton_barto_reward) {
    result.reward = result.terminated ? -1.0 : 0.0;
  } else {
    result.reward = 1.0;
  }
  ++elapsed_steps_;
  result.truncated = config_.max_episode_steps > 0 && elapsed_steps_ >= config_.max_episode_steps;
  running_ = !(result.terminated || result.truncated);
  return result;
}

}  // namespace forkcast::env
