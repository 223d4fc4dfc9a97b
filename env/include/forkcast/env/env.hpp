// Common vocabulary of forkcast environments (EnvPool style: each environment keeps its
// config, its spec and its dynamics apart, and is a concrete class with non-virtual
// reset/step so that agents templated on it pay no dispatch or allocation per step).
//
// Seeding (Gymnasium semantics): reset(seed) re-seeds the environment's own generator;
// reset() continues it. Same seed => identical trajectory for the same actions.
//
// Errors: misuse — an action outside the action space or outside the mask, a step before
// the first reset or after the episode ended — throws EnvUsageError naming the action
// and the state. Malformed data files throw std::invalid_argument naming file and line.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace forkcast::env {

using Action = std::int32_t;

class EnvUsageError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// One step of an environment with a discrete (integer) observation: Taxi, FrozenLake.
struct DiscreteStep {
  std::int32_t observation = 0;
  double reward = 0.0;
  bool terminated = false;  // reached a terminal state: bootstrap 0
  bool truncated = false;   // time limit: bootstrap from `observation`
};

// One step of an environment with a float32 box observation of N values: CartPole.
template <std::size_t N>
struct BoxStep {
  std::array<float, N> observation{};
  double reward = 0.0;
  bool terminated = false;
  bool truncated = false;
};

}  // namespace forkcast::env
