// FrozenLake-v1, exact to Gymnasium 1.x (gymnasium/envs/toy_text/frozen_lake.py with
// its default success rate and reward schedule, wrapped in TimeLimit(100), or 200 for
// FrozenLake8x8-v1).
//
// The lake is a grid of tiles: S start, F frozen, H hole, G goal. State: row * ncol + col.
// Actions: 0 left, 1 down, 2 right, 3 up; a move off the grid leaves the agent in place.
// Slippery ice: the agent moves in direction (a - 1) mod 4, a or (a + 1) mod 4, each with
// probability 1/3 (the intended one or either perpendicular). Reward 1.0 for entering G,
// 0 otherwise; entering H or G terminates. Episodes start on S.
//
// Differences from Gymnasium, on purpose: the slip draws come from std::mt19937_64 (same
// distribution, not numpy's stream); a custom map must have exactly one S (Gymnasium
// would start uniformly over several); misuse throws EnvUsageError (see env.hpp); random
// map generation is not provided (pass the map as `custom_map`).
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/env/env.hpp"

namespace forkcast::env {

struct FrozenLakeConfig {
  static constexpr int kByMap = 0;        // max_episode_steps: as gymnasium.make does
  static constexpr int kNoTimeLimit = -1;  // max_episode_steps: never truncate

  std::string map_name = "4x4";  // "4x4" or "8x8"; ignored when custom_map is given
  // Gymnasium's `desc`: rows of 'S', 'F', 'H', 'G', all of one length, exactly one 'S'
  // and at least one 'G'. Empty: use map_name.
  std::vector<std::string> custom_map;
  bool is_slippery = true;
  // kByMap: 100, or 200 for the "8x8" map (FrozenLake-v1 / FrozenLake8x8-v1; a custom
  // map gets FrozenLake-v1's 100). kNoTimeLimit: none. Otherwise the limit itself.
  int max_episode_steps = kByMap;
};

// One possible outcome of (state, action); Gymnasium's P[s][a] entries.
struct FrozenLakeOutcome {
  double probability = 0.0;
  std::int32_t next_state = 0;
  double reward = 0.0;
  bool terminated = false;
};

class FrozenLakeEnv {
 public:
  static constexpr int kNumActions = 4;
  static constexpr std::uint64_t kDefaultSeed = 0;

  static constexpr Action kLeft = 0;
  static constexpr Action kDown = 1;
  static constexpr Action kRight = 2;
  static constexpr Action kUp = 3;

  // The maps Gymnasium ships.
  static constexpr std::array<std::string_view, 4> kMap4x4 = {"SFFF", "FHFH", "FFFH", "HFFG"};
  static constexpr std::array<std::string_view, 8> kMap8x8 = {
      "SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF",
      "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG"};

  // Throws std::invalid_argument naming the field, row or character for an unknown
  // map_name, a malformed custom_map or max_episode_steps < -1.
  explicit FrozenLakeEnv(FrozenLakeConfig config = {});

  // Re-seeds the generator, then starts on S.
  std::int32_t reset(std::uint64_t seed);
  // Starts on S, continuing the generator (kDefaultSeed if never seeded).
  std::int32_t reset();
  // The environment's random stream, so a training checkpoint can save and restore it
  // (resume continues bit-exactly without re-seeding every episode, which would cost more
  // than the episode itself).
  std::mt19937_64& generator() noexcept { return rng_; }
  // Throws EnvUsageError for an action outside 0..3, before the first reset, or after
  // the episode ended. `truncated` is TimeLimit's and may be true with `terminated`.
  DiscreteStep step(Action action);

  [[nodiscard]] int num_states() const noexcept { return num_rows_ * num_cols_; }
  [[nodiscard]] int num_rows() const noexcept { return num_rows_; }
  [[nodiscard]] int num_cols() const noexcept { return num_cols_; }
  [[nodiscard]] std::int32_t start_state() const noexcept { return start_state_; }
  [[nodiscard]] std::int32_t state() const noexcept { return state_; }
  [[nodiscard]] int elapsed_steps() const noexcept { return elapsed_steps_; }
  [[nodiscard]] bool needs_reset() const noexcept { return !running_; }
  // The time limit in force after resolving kByMap; 0 when there is none.
  [[nodiscard]] int max_episode_steps() const noexcept { return max_episode_steps_; }
  [[nodiscard]] const std::vector<std::string>& map() const noexcept { return map_; }
  [[nodiscard]] bool is_slippery() const noexcept { return is_slippery_; }
  // 'S', 'F', 'H' or 'G'. Throws std::invalid_argument for a state outside the grid.
  [[nodiscard]] char tile(std::int32_t state) const;

  // The model, for planning and tests: every outcome of `action` in `state` (one when
  // not slippery or in H/G, where Gymnasium loops with reward 0; otherwise three, each
  // 1/3, in Gymnasium's order (a - 1) mod 4, a, (a + 1) mod 4).
  [[nodiscard]] std::span<const FrozenLakeOutcome> outcomes(std::int32_t state,
                                                            Action action) const;

  // e.g. "cell(1,2)=F".
  [[nodiscard]] std::string state_name(std::int32_t state) const;
  // "left", "down", "right", "up".
  static std::string_view action_name(Action action);

  // Test hook: starts an episode in `state` with `elapsed_steps` taken.
  void set_state_for_testing(std::int32_t state, int elapsed_steps = 0);

 private:
  [[noreturn]] void throw_step_error(Action action) const;
  void check_state(std::int32_t state, const char* where) const;

  std::vector<std::string> map_;
  int num_rows_ = 0;
  int num_cols_ = 0;
  bool is_slippery_ = true;
  int max_episode_steps_ = 0;
  std::int32_t start_state_ = 0;
  // outcomes_[(s * kNumActions + a) * 3 + k] for k < outcome_counts_[s * kNumActions + a].
  std::vector<FrozenLakeOutcome> outcomes_;
  std::vector<std::uint8_t> outcome_counts_;

  std::int32_t state_ = 0;
  int elapsed_steps_ = 0;
  bool running_ = false;
  bool ever_reset_ = false;
  std::mt19937_64 rng_{kDefaultSeed};
};

}  // namespace forkcast::env
