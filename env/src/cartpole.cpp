#include "forkcast/env/cartpole.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace forkcast::env {

namespace detail {

namespace {
// Read through a volatile so the compiler cannot see the constant and fold pow(x, 2.0)
// into x * x, which is exactly the result this function exists to avoid.
const volatile double kOpaqueTwo = 2.0;
}  // namespace

double libm_pow2(double x) noexcept { return std::pow(x, kOpaqueTwo); }

}  // namespace detail

namespace {

std::string format_double(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

void require(bool ok, const char* field, double value, const char* allowed) {
  if (!ok) {
    throw std::invalid_argument(std::string("CartPoleConfig.") + field + ": " +
                                format_double(value) + " is invalid (" + allowed + ")");
  }
}

void validate(const CartPoleConfig& c) {
  const auto positive = [](double v) { return std::isfinite(v) && v > 0.0; };
  require(std::isfinite(c.gravity_mps2), "gravity_mps2", c.gravity_mps2, "must be finite");
  require(positive(c.masscart_kg), "masscart_kg", c.masscart_kg, "must be > 0");
  require(positive(c.masspole_kg), "masspole_kg", c.masspole_kg, "must be > 0");
  require(positive(c.half_pole_length_m), "half_pole_length_m", c.half_pole_length_m,
          "must be > 0");
  require(std::isfinite(c.force_mag_n), "force_mag_n", c.force_mag_n, "must be finite");
  require(positive(c.tau_s), "tau_s", c.tau_s, "must be > 0");
  require(positive(c.theta_threshold_rad), "theta_threshold_rad", c.theta_threshold_rad,
          "must be > 0");
  require(positive(c.x_threshold_m), "x_threshold_m", c.x_threshold_m, "must be > 0");
  require(c.max_episode_steps >= 0, "max_episode_steps", c.max_episode_steps,
          "must be >= 0; 0 = no limit");
  require(std::isfinite(c.reset_low), "reset_low", c.reset_low, "must be finite");
  require(std::isfinite(c.reset_high) && c.reset_high >= c.reset_low, "reset_high",
          c.reset_high, "must be finite and >= reset_low");
  if (c.integrator != CartPoleIntegrator::kEuler &&
      c.integrator != CartPoleIntegrator::kSemiImplicitEuler) {
    throw std::invalid_argument("CartPoleConfig.integrator: " +
                                std::to_string(static_cast<int>(c.integrator)) +
                                " is not kEuler or kSemiImplicitEuler");
  }
}

}  // namespace

CartPoleEnv::CartPoleEnv(CartPoleConfig config) : config_(config) {
  validate(config_);
  // Same expressions as Gymnasium's __init__, so the hoisted doubles round the same way.
  total_mass_kg_ = config_.masspole_kg + config_.masscart_kg;
  polemass_length_kgm_ = config_.masspole_kg * config_.half_pole_length_m;

  constexpr float kUnbounded = std::numeric_limits<float>::max();
  const float x_bound = static_cast<float>(config_.x_threshold_m * 2);
  const float theta_bound = static_cast<float>(config_.theta_threshold_rad * 2);
  spec_.observation_high = {x_bound, kUnbounded, theta_bound, kUnbounded};
  spec_.observation_low = {-x_bound, -kUnbounded, -theta_bound, -kUnbounded};
  spec_.max_episode_steps = config_.max_episode_steps;
}

CartPoleEnv::Observation CartPoleEnv::reset(std::uint64_t seed) {
  rng_.seed(seed);
  return start_episode();
}

CartPoleEnv::Observation CartPoleEnv::reset() { return start_episode(); }

CartPoleEnv::Observation CartPoleEnv::start_episode() {
  std::uniform_real_distribution<double> initial(config_.reset_low, config_.reset_high);
  // Drawn in component order, one call each, so the order is fixed by the standard.
  for (double& component : state_) {
    component = initial(rng_);
  }
  elapsed_steps_ = 0;
  running_ = true;
  return to_observation(state_);
}

void CartPoleEnv::set_state_for_testing(const State& state, int elapsed_steps) {
  if (elapsed_steps < 0 ||
      (config_.max_episode_steps > 0 && elapsed_steps >= config_.max_episode_steps)) {
    throw std::invalid_argument("CartPoleEnv::set_state_for_testing: elapsed_steps " +
                                std::to_string(elapsed_steps) + " is outside [0, " +
                                std::to_string(config_.max_episode_steps) + ")");
  }
  state_ = state;
  elapsed_steps_ = elapsed_steps;
  running_ = true;
}

void CartPoleEnv::throw_step_error(Action action) const {
  std::ostringstream out;
  out.precision(9);
  out << "CartPoleEnv::step(action=" << action << "): ";
  if (!running_) {
    if (elapsed_steps_ == 0) {
      out << "called before the first reset(); call reset(seed) first";
    } else {
      out << "the episode already ended after " << elapsed_steps_
          << " steps (terminated or truncated); call reset() first";
    }
  } else {
    out << "action " << action << " is outside the action space {0, 1}";
  }
  out << " [state x=" << state_[0] << " x_dot=" << state_[1] << " theta=" << state_[2]
      << " theta_dot=" << state_[3] << " elapsed_steps=" << elapsed_steps_ << "]";
  throw EnvUsageError(out.str());
}

}  // namespace forkcast::env
