#include "forkcast/env/frozen_lake.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace forkcast::env {

namespace {

constexpr std::size_t kMaxOutcomes = 3;
constexpr std::array<std::string_view, FrozenLakeEnv::kNumActions> kActionNames = {
    "left", "down", "right", "up"};

std::vector<std::string> to_rows(std::span<const std::string_view> rows) {
  return {rows.begin(), rows.end()};
}

// Resolves map_name / custom_map to rows and checks them; names what is wrong.
std::vector<std::string> load_map(const FrozenLakeConfig& config) {
  if (config.custom_map.empty()) {
    if (config.map_name == "4x4") {
      return to_rows(FrozenLakeEnv::kMap4x4);
    }
    if (config.map_name == "8x8") {
      return to_rows(FrozenLakeEnv::kMap8x8);
    }
    throw std::invalid_argument("FrozenLakeConfig.map_name: '" + config.map_name +
                                "' is not a known map (\"4x4\" or \"8x8\"; or give custom_map)");
  }
  const auto& rows = config.custom_map;
  const std::size_t width = rows.front().size();
  if (width == 0) {
    throw std::invalid_argument("FrozenLakeConfig.custom_map: row 0 is empty");
  }
  int starts = 0;
  int goals = 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != width) {
      throw std::invalid_argument("FrozenLakeConfig.custom_map: row " + std::to_string(r) +
                                  " \"" + rows[r] + "\" has " + std::to_string(rows[r].size()) +
                                  " tiles, row 0 has " + std::to_string(width) +
                                  " (the map must be rectangular)");
    }
    for (std::size_t c = 0; c < width; ++c) {
      const char tile = rows[r][c];
      if (tile != 'S' && tile != 'F' && tile != 'H' && tile != 'G') {
        throw std::invalid_argument("FrozenLakeConfig.custom_map: row " + std::to_string(r) +
                                    " column " + std::to_string(c) + " has '" +
                                    std::string(1, tile) +
                                    "' (allowed tiles: S start, F frozen, H hole, G goal)");
      }
      starts += tile == 'S' ? 1 : 0;
      goals += tile == 'G' ? 1 : 0;
    }
  }
  if (starts != 1) {
    throw std::invalid_argument("FrozenLakeConfig.custom_map: has " + std::to_string(starts) +
                                " 'S' tiles (exactly one start is required)");
  }
  if (goals == 0) {
    throw std::invalid_argument(
        "FrozenLakeConfig.custom_map: has no 'G' tile (at least one goal is required)");
  }
  return rows;
}

}  // namespace

FrozenLakeEnv::FrozenLakeEnv(FrozenLakeConfig config)
    : map_(load_map(config)), is_slippery_(config.is_slippery) {
  num_rows_ = static_cast<int>(map_.size());
  num_cols_ = static_cast<int>(map_.front().size());

  if (config.max_episode_steps < FrozenLakeConfig::kNoTimeLimit) {
    throw std::invalid_argument(
        "FrozenLakeConfig.max_episode_steps: " + std::to_string(config.max_episode_steps) +
        " is invalid (> 0 a limit, 0 by map, -1 no limit)");
  }
  if (config.max_episode_steps == FrozenLakeConfig::kByMap) {
    const bool eight = config.custom_map.empty() && config.map_name == "8x8";
    max_episode_steps_ = eight ? 200 : 100;
  } else if (config.max_episode_steps == FrozenLakeConfig::kNoTimeLimit) {
    max_episode_steps_ = 0;
  } else {
    max_episode_steps_ = config.max_episode_steps;
  }

  const auto to_state = [this](int row, int col) { return row * num_cols_ + col; };
  // Gymnasium's `inc`: a move off the grid clamps to the border.
  const auto move = [this](int row, int col, Action a) {
    switch (a) {
      case kLeft:
        col = std::max(col - 1, 0);
        break;
      case kDown:
        row = std::min(row + 1, num_rows_ - 1);
        break;
      case kRight:
        col = std::min(col + 1, num_cols_ - 1);
        break;
      case kUp:
        row = std::max(row - 1, 0);
        break;
      default:
        break;
    }
    return std::array<int, 2>{row, col};
  };

  const auto n = static_cast<std::size_t>(num_states() * kNumActions);
  outcomes_.assign(n * kMaxOutcomes, FrozenLakeOutcome{});
  outcome_counts_.assign(n, 0);
  for (int row = 0; row < num_rows_; ++row) {
    for (int col = 0; col < num_cols_; ++col) {
      const std::int32_t s = to_state(row, col);
      const char here = map_[static_cast<std::size_t>(row)][static_cast<std::size_t>(col)];
      if (here == 'S') {
        start_state_ = s;
      }
      for (Action a = 0; a < kNumActions; ++a) {
        const auto slot = static_cast<std::size_t>(s * kNumActions + a);
        FrozenLakeOutcome* out = &outcomes_[slot * kMaxOutcomes];
        if (here == 'H' || here == 'G') {
          // Gymnasium keeps terminal tiles absorbing; step() refuses to go there anyway.
          out[0] = {1.0, s, 0.0, true};
          outcome_counts_[slot] = 1;
          continue;
        }
        std::array<Action, kMaxOutcomes> directions{a, a, a};
        std::size_t count = 1;
        if (is_slippery_) {
          directions = {(a + kNumActions - 1) % kNumActions, a, (a + 1) % kNumActions};
          count = kMaxOutcomes;
        }
        for (std::size_t k = 0; k < count; ++k) {
          const auto [new_row, new_col] = move(row, col, directions[k]);
          const char there =
              map_[static_cast<std::size_t>(new_row)][static_cast<std::size_t>(new_col)];
          out[k] = {is_slippery_ ? 1.0 / 3.0 : 1.0, to_state(new_row, new_col),
                    there == 'G' ? 1.0 : 0.0, there == 'G' || there == 'H'};
        }
        outcome_counts_[slot] = static_cast<std::uint8_t>(count);
      }
    }
  }
}

std::int32_t FrozenLakeEnv::reset(std::uint64_t seed) {
  rng_.seed(seed);
  return reset();
}

std::int32_t FrozenLakeEnv::reset() {
  state_ = start_state_;
  elapsed_steps_ = 0;
  running_ = true;
  ever_reset_ = true;
  return state_;
}

DiscreteStep FrozenLakeEnv::step(Action action) {
  if (!running_ || action < 0 || action >= kNumActions) [[unlikely]] {
    throw_step_error(action);
  }
  const auto slot = static_cast<std::size_t>(state_ * kNumActions + action);
  const FrozenLakeOutcome* out = &outcomes_[slot * kMaxOutcomes];
  const std::size_t count = outcome_counts_[slot];
  std::size_t chosen = 0;
  if (count > 1) {
    // Gymnasium's categorical_sample: the first outcome whose cumulative probability
    // exceeds a uniform draw in [0, 1).
    const double u = std::generate_canonical<double, 53>(rng_);
    double cumulative = 0.0;
    chosen = count - 1;
    for (std::size_t k = 0; k < count; ++k) {
      cumulative += out[k].probability;
      if (cumulative > u) {
        chosen = k;
        break;
      }
    }
  }
  const FrozenLakeOutcome& o = out[chosen];
  state_ = o.next_state;
  ++elapsed_steps_;
  DiscreteStep result;
  result.observation = o.next_state;
  result.reward = o.reward;
  result.terminated = o.terminated;
  result.truncated = max_episode_steps_ > 0 && elapsed_steps_ >= max_episode_steps_;
  running_ = !(result.terminated || result.truncated);
  return result;
}

char FrozenLakeEnv::tile(std::int32_t state) const {
  check_state(state, "FrozenLakeEnv::tile");
  return map_[static_cast<std::size_t>(state / num_cols_)]
             [static_cast<std::size_t>(state % num_cols_)];
}

std::span<const FrozenLakeOutcome> FrozenLakeEnv::outcomes(std::int32_t state,
                                                           Action action) const {
  check_state(state, "FrozenLakeEnv::outcomes");
  if (action < 0 || action >= kNumActions) {
    throw std::invalid_argument("FrozenLakeEnv::outcomes: action " + std::to_string(action) +
                                " is outside 0..3");
  }
  const auto slot = static_cast<std::size_t>(state * kNumActions + action);
  return {&outcomes_[slot * kMaxOutcomes], outcome_counts_[slot]};
}

std::string FrozenLakeEnv::state_name(std::int32_t state) const {
  check_state(state, "FrozenLakeEnv::state_name");
  return "cell(" + std::to_string(state / num_cols_) + "," + std::to_string(state % num_cols_) +
         ")=" + std::string(1, tile(state));
}

std::string_view FrozenLakeEnv::action_name(Action action) {
  if (action < 0 || action >= kNumActions) {
    throw std::invalid_argument("FrozenLakeEnv::action_name: action " +
                                std::to_string(action) + " is outside 0..3");
  }
  return kActionNames[static_cast<std::size_t>(action)];
}

void FrozenLakeEnv::set_state_for_testing(std::int32_t state, int elapsed_steps) {
  check_state(state, "FrozenLakeEnv::set_state_for_testing");
  if (elapsed_steps < 0 || (max_episode_steps_ > 0 && elapsed_steps >= max_episode_steps_)) {
    throw std::invalid_argument("FrozenLakeEnv::set_state_for_testing: elapsed_steps " +
                                std::to_string(elapsed_steps) + " is outside [0, " +
                                std::to_string(max_episode_steps_) + ")");
  }
  state_ = state;
  elapsed_steps_ = elapsed_steps;
  running_ = true;
  ever_reset_ = true;
}

void FrozenLakeEnv::check_state(std::int32_t state, const char* where) const {
  if (state < 0 || state >= num_states()) {
    throw std::invalid_argument(std::string(where) + ": state " + std::to_string(state) +
                                " is outside 0.." + std::to_string(num_states() - 1));
  }
}

void FrozenLakeEnv::throw_step_error(Action action) const {
  std::string message = "FrozenLakeEnv::step(action=" + std::to_string(action) + "): ";
  if (!ever_reset_) {
    message += "called before the first reset(); call reset(seed) first";
  } else if (!running_) {
    message += "the episode already ended after " + std::to_string(elapsed_steps_) +
               " steps (terminated or truncated); call reset() first";
  } else {
    message += "action " + std::to_string(action) + " is outside the action space 0..3";
  }
  message += " [state " + std::to_string(state_) + " = " + state_name(state_) +
             ", elapsed_steps=" + std::to_string(elapsed_steps_) + "]";
  throw EnvUsageError(message);
}

}  // namespace forkcast::env
