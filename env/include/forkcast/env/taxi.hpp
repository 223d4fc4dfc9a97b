// Taxi-v3, exact to Gymnasium 1.x (gymnasium/envs/toy_text/taxi.py with its defaults
// is_rainy=False, fickle_passenger=False, wrapped in TimeLimit(200)): the taxi domain of
// Dietterich, "Hierarchical Reinforcement Learning with the MAXQ Value Function
// Decomposition", JAIR 13, 2000.
//
//   +---------+      R(0,0)  G(0,4)  Y(4,0)  B(4,3) are the depots.
//   |R: | : :G|      A `|` between two cells is a wall for east/west moves;
//   | : | : : |      moving into a wall or off the grid leaves the taxi where it is
//   | : : : : |      (and still costs the -1 step reward).
//   | | : | : |
//   |Y| : |B: |
//   +---------+
//
// State: ((taxi_row * 5 + taxi_col) * 5 + passenger) * 4 + destination, passenger in
// 0..3 (a depot) or 4 (in the taxi), destination in 0..3. Actions: 0 south, 1 north,
// 2 east, 3 west, 4 pickup, 5 dropoff. Rewards: -1 per step; -10 for a pickup where the
// passenger is not, or a dropoff without the passenger or away from every depot; +20 and
// terminated for a dropoff at the destination. A dropoff with the passenger at another
// depot leaves the passenger there (-1, not terminated), as Gymnasium 1.x does.
// Initial state: uniform over the 300 states with the passenger at a depot other than
// the destination.
//
// The dynamics are deterministic, so they are one immutable table of 500 x 6 transitions
// computed at compile time; step() is a lookup. Differences from Gymnasium, on purpose:
// the initial-state stream comes from std::mt19937_64 (same distribution, not numpy's
// stream); misuse throws EnvUsageError (see env.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>

#include "forkcast/env/env.hpp"

namespace forkcast::env {

struct TaxiConfig {
  int max_episode_steps = 200;  // TimeLimit of Taxi-v3; 0 = no time limit
};

// A decoded Taxi state.
struct TaxiState {
  int taxi_row = 0;
  int taxi_col = 0;
  int passenger = 0;    // 0..3: at depot R, G, Y, B; 4: in the taxi
  int destination = 0;  // 0..3: depot R, G, Y, B
  friend bool operator==(const TaxiState&, const TaxiState&) = default;
};

// One deterministic transition (Gymnasium's P[s][a] has exactly one, with probability 1).
struct TaxiTransition {
  std::int32_t next_state = 0;
  std::int32_t reward = 0;
  bool terminated = false;
};

class TaxiEnv {
 public:
  static constexpr int kNumRows = 5;
  static constexpr int kNumCols = 5;
  static constexpr int kNumDepots = 4;
  static constexpr int kInTaxi = 4;  // passenger value meaning "in the taxi"
  static constexpr int kNumStates = 500;
  static constexpr int kNumActions = 6;
  static constexpr int kNumInitialStates = 300;
  static constexpr std::uint64_t kDefaultSeed = 0;

  static constexpr Action kSouth = 0;
  static constexpr Action kNorth = 1;
  static constexpr Action kEast = 2;
  static constexpr Action kWest = 3;
  static constexpr Action kPickup = 4;
  static constexpr Action kDropoff = 5;

  // Depot coordinates (row, col), indexed like `passenger` and `destination`.
  static constexpr std::array<std::array<int, 2>, kNumDepots> kDepots = {
      {{0, 0}, {0, 4}, {4, 0}, {4, 3}}};

  // Throws std::invalid_argument for a negative max_episode_steps.
  explicit TaxiEnv(TaxiConfig config = {});

  // Re-seeds the generator, then draws an initial state.
  std::int32_t reset(std::uint64_t seed);
  // Draws an initial state, continuing the generator (kDefaultSeed if never seeded).
  std::int32_t reset();
  // The environment's random stream, so a training checkpoint can save and restore it
  // (resume continues bit-exactly without re-seeding every episode, which would cost more
  // than the episode itself).
  std::mt19937_64& generator() noexcept { return rng_; }
  // Throws EnvUsageError for an action outside 0..5, before the first reset, or after
  // the episode ended. `truncated` is TimeLimit's and may be true with `terminated`.
  DiscreteStep step(Action action);

  [[nodiscard]] std::int32_t state() const noexcept { return state_; }
  [[nodiscard]] int elapsed_steps() const noexcept { return elapsed_steps_; }
  [[nodiscard]] bool needs_reset() const noexcept { return !running_; }
  [[nodiscard]] const TaxiConfig& config() const noexcept { return config_; }

  // Test hook: starts an episode in `state` (any of the 500) with `elapsed_steps` taken.
  void set_state_for_testing(std::int32_t state, int elapsed_steps = 0);

  // Pure helpers on the state space (no environment needed). encode/decode throw
  // std::invalid_argument for out-of-range inputs.
  static std::int32_t encode(int taxi_row, int taxi_col, int passenger, int destination);
  static TaxiState decode(std::int32_t state);
  // e.g. "taxi(2,3) passenger=Y dest=G"; passenger in the taxi reads "passenger=taxi".
  static std::string state_name(std::int32_t state);
  // "south", "north", "east", "west", "pickup", "dropoff".
  static std::string_view action_name(Action action);
  // Gymnasium's info["action_mask"]: which actions change the state (moves not blocked
  // by a wall or the border, a legal pickup, a dropoff with the passenger at a depot).
  static std::array<bool, kNumActions> action_mask(std::int32_t state);
  // The model, for planning and tests: what step() does from `state` with `action`.
  static const TaxiTransition& transition(std::int32_t state, Action action);
  // The 300 states reset() draws from, in increasing order.
  static std::span<const std::int32_t, kNumInitialStates> initial_states() noexcept;

 private:
  [[noreturn]] void throw_step_error(Action action) const;

  TaxiConfig config_;
  std::int32_t state_ = 0;
  int elapsed_steps_ = 0;
  bool running_ = false;
  bool ever_reset_ = false;
  std::mt19937_64 rng_{kDefaultSeed};
};

}  // namespace forkcast::env
