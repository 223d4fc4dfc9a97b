#include "forkcast/env/taxi.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace forkcast::env {

namespace {

// Gymnasium's MAP: row r of the grid is text row r + 1; the character between columns c
// and c + 1 of that row is at text column 2 * c + 2 (':' open, '|' wall).
constexpr std::array<std::string_view, 7> kMap = {
    "+---------+", "|R: | : :G|", "| : | : : |", "| : : : : |",
    "| | : | : |", "|Y| : |B: |", "+---------+",
};

constexpr bool open_east(int row, int col) {
  return kMap[static_cast<std::size_t>(row + 1)][static_cast<std::size_t>(2 * col + 2)] == ':';
}
constexpr bool open_west(int row, int col) {
  return kMap[static_cast<std::size_t>(row + 1)][static_cast<std::size_t>(2 * col)] == ':';
}

constexpr std::int32_t encode_unchecked(int row, int col, int passenger, int destination) {
  return ((row * TaxiEnv::kNumCols + col) * (TaxiEnv::kNumDepots + 1) + passenger) *
             TaxiEnv::kNumDepots +
         destination;
}

constexpr TaxiState decode_unchecked(std::int32_t state) {
  TaxiState s;
  s.destination = state % TaxiEnv::kNumDepots;
  state /= TaxiEnv::kNumDepots;
  s.passenger = state % (TaxiEnv::kNumDepots + 1);
  state /= TaxiEnv::kNumDepots + 1;
  s.taxi_col = state % TaxiEnv::kNumCols;
  s.taxi_row = state / TaxiEnv::kNumCols;
  return s;
}

// Index of the depot at (row, col), or -1 where there is none.
constexpr int depot_at(int row, int col) {
  for (int d = 0; d < TaxiEnv::kNumDepots; ++d) {
    const auto& depot = TaxiEnv::kDepots[static_cast<std::size_t>(d)];
    if (depot[0] == row && depot[1] == col) {
      return d;
    }
  }
  return -1;
}

// Gymnasium's rules, written from its description of P[s][a].
constexpr TaxiTransition transition_of(std::int32_t state, Action action) {
  const TaxiState s = decode_unchecked(state);
  int row = s.taxi_row;
  int col = s.taxi_col;
  int passenger = s.passenger;
  TaxiTransition t;
  t.reward = -1;
  const int depot_here = depot_at(s.taxi_row, s.taxi_col);
  switch (action) {
    case TaxiEnv::kSouth:
      row = std::min(row + 1, TaxiEnv::kNumRows - 1);
      break;
    case TaxiEnv::kNorth:
      row = std::max(row - 1, 0);
      break;
    case TaxiEnv::kEast:
      if (open_east(row, col)) {
        col = std::min(col + 1, TaxiEnv::kNumCols - 1);
      }
      break;
    case TaxiEnv::kWest:
      if (open_west(row, col)) {
        col = std::max(col - 1, 0);
      }
      break;
    case TaxiEnv::kPickup:
      if (s.passenger < TaxiEnv::kNumDepots && depot_here == s.passenger) {
        passenger = TaxiEnv::kInTaxi;
      } else {
        t.reward = -10;
      }
      break;
    case TaxiEnv::kDropoff:
      if (s.passenger == TaxiEnv::kInTaxi && depot_here == s.destination) {
        passenger = s.destination;
        t.terminated = true;
        t.reward = 20;
      } else if (s.passenger == TaxiEnv::kInTaxi && depot_here >= 0) {
        passenger = depot_here;  // wrong depot: the passenger gets out and waits there
      } else {
        t.reward = -10;
      }
      break;
    default:
      break;
  }
  t.next_state = encode_unchecked(row, col, passenger, s.destination);
  return t;
}

struct Tables {
  std::array<TaxiTransition, TaxiEnv::kNumStates * TaxiEnv::kNumActions> transitions{};
  std::array<std::int32_t, TaxiEnv::kNumInitialStates> initial_states{};
  std::size_t num_initial_states = 0;
};

constexpr Tables build_tables() {
  Tables tables;
  for (std::int32_t state = 0; state < TaxiEnv::kNumStates; ++state) {
    for (Action action = 0; action < TaxiEnv::kNumActions; ++action) {
      tables.transitions[static_cast<std::size_t>(state * TaxiEnv::kNumActions + action)] =
          transition_of(state, action);
    }
    const TaxiState s = decode_unchecked(state);
    if (s.passenger < TaxiEnv::kNumDepots && s.passenger != s.destination) {
      tables.initial_states[tables.num_initial_states++] = state;
    }
  }
  return tables;
}

// Immutable and computed by the compiler: no initialisation order, no shared mutable state.
constexpr Tables kTables = build_tables();
static_assert(kTables.num_initial_states == TaxiEnv::kNumInitialStates);
// From (0,1) the `|` east of the taxi blocks the move (Gymnasium's map).
static_assert(kTables.transitions[encode_unchecked(0, 1, 0, 1) * 6 + 2].next_state ==
              encode_unchecked(0, 1, 0, 1));

void check_state(std::int32_t state, const char* where) {
  if (state < 0 || state >= TaxiEnv::kNumStates) {
    throw std::invalid_argument(std::string(where) + ": state " + std::to_string(state) +
                                " is outside 0..499");
  }
}

void check_action(Action action, const char* where) {
  if (action < 0 || action >= TaxiEnv::kNumActions) {
    throw std::invalid_argument(std::string(where) + ": action " + std::to_string(action) +
                                " is outside 0..5");
  }
}

constexpr std::array<std::string_view, TaxiEnv::kNumActions> kActionNames = {
    "south", "north", "east", "west", "pickup", "dropoff"};
constexpr std::array<char, TaxiEnv::kNumDepots> kDepotLetters = {'R', 'G', 'Y', 'B'};

}  // namespace

TaxiEnv::TaxiEnv(TaxiConfig config) : config_(config) {
  if (config_.max_episode_steps < 0) {
    throw std::invalid_argument("TaxiConfig.max_episode_steps: " +
                                std::to_string(config_.max_episode_steps) +
                                " is invalid (must be >= 0; 0 = no limit)");
  }
}

std::int32_t TaxiEnv::reset(std::uint64_t seed) {
  rng_.seed(seed);
  return reset();
}

std::int32_t TaxiEnv::reset() {
  std::uniform_int_distribution<std::size_t> pick(0, kNumInitialStates - 1);
  state_ = kTables.initial_states[pick(rng_)];
  elapsed_steps_ = 0;
  running_ = true;
  ever_reset_ = true;
  return state_;
}

DiscreteStep TaxiEnv::step(Action action) {
  if (!running_ || action < 0 || action >= kNumActions) [[unlikely]] {
    throw_step_error(action);
  }
  const TaxiTransition& t =
      kTables.transitions[static_cast<std::size_t>(state_ * kNumActions + action)];
  state_ = t.next_state;
  ++elapsed_steps_;
  DiscreteStep result;
  result.observation = t.next_state;
  result.reward = static_cast<double>(t.reward);
  result.terminated = t.terminated;
  result.truncated = config_.max_episode_steps > 0 && elapsed_steps_ >= config_.max_episode_steps;
  running_ = !(result.terminated || result.truncated);
  return result;
}

void TaxiEnv::set_state_for_testing(std::int32_t state, int elapsed_steps) {
  check_state(state, "TaxiEnv::set_state_for_testing");
  if (elapsed_steps < 0 ||
      (config_.max_episode_steps > 0 && elapsed_steps >= config_.max_episode_steps)) {
    throw std::invalid_argument("TaxiEnv::set_state_for_testing: elapsed_steps " +
                                std::to_string(elapsed_steps) + " is outside [0, " +
                                std::to_string(config_.max_episode_steps) + ")");
  }
  state_ = state;
  elapsed_steps_ = elapsed_steps;
  running_ = true;
  ever_reset_ = true;
}

void TaxiEnv::throw_step_error(Action action) const {
  std::string message = "TaxiEnv::step(action=" + std::to_string(action) + "): ";
  if (!ever_reset_) {
    message += "called before the first reset(); call reset(seed) first";
  } else if (!running_) {
    message += "the episode already ended after " + std::to_string(elapsed_steps_) +
               " steps (terminated or truncated); call reset() first";
  } else {
    message += "action " + std::to_string(action) + " is outside the action space 0..5";
  }
  message += " [state " + std::to_string(state_);
  if (ever_reset_) {
    message += " = " + state_name(state_);
  }
  message += ", elapsed_steps=" + std::to_string(elapsed_steps_) + "]";
  throw EnvUsageError(message);
}

std::int32_t TaxiEnv::encode(int taxi_row, int taxi_col, int passenger, int destination) {
  if (taxi_row < 0 || taxi_row >= kNumRows || taxi_col < 0 || taxi_col >= kNumCols ||
      passenger < 0 || passenger > kInTaxi || destination < 0 || destination >= kNumDepots) {
    throw std::invalid_argument("TaxiEnv::encode: (taxi_row=" + std::to_string(taxi_row) +
                                ", taxi_col=" + std::to_string(taxi_col) +
                                ", passenger=" + std::to_string(passenger) +
                                ", destination=" + std::to_string(destination) +
                                ") is outside 0..4, 0..4, 0..4, 0..3");
  }
  return encode_unchecked(taxi_row, taxi_col, passenger, destination);
}

TaxiState TaxiEnv::decode(std::int32_t state) {
  check_state(state, "TaxiEnv::decode");
  return decode_unchecked(state);
}

std::string TaxiEnv::state_name(std::int32_t state) {
  check_state(state, "TaxiEnv::state_name");
  const TaxiState s = decode_unchecked(state);
  std::string name = "taxi(" + std::to_string(s.taxi_row) + "," + std::to_string(s.taxi_col) +
                     ") passenger=";
  if (s.passenger == kInTaxi) {
    name += "taxi";
  } else {
    name += kDepotLetters[static_cast<std::size_t>(s.passenger)];
  }
  name += " dest=";
  name += kDepotLetters[static_cast<std::size_t>(s.destination)];
  return name;
}

std::string_view TaxiEnv::action_name(Action action) {
  check_action(action, "TaxiEnv::action_name");
  return kActionNames[static_cast<std::size_t>(action)];
}

std::array<bool, TaxiEnv::kNumActions> TaxiEnv::action_mask(std::int32_t state) {
  check_state(state, "TaxiEnv::action_mask");
  const TaxiState s = decode_unchecked(state);
  const int depot_here = depot_at(s.taxi_row, s.taxi_col);
  std::array<bool, kNumActions> mask{};
  mask[kSouth] = s.taxi_row < kNumRows - 1;
  mask[kNorth] = s.taxi_row > 0;
  mask[kEast] = s.taxi_col < kNumCols - 1 && open_east(s.taxi_row, s.taxi_col);
  mask[kWest] = s.taxi_col > 0 && open_west(s.taxi_row, s.taxi_col);
  mask[kPickup] = s.passenger < kNumDepots && depot_here == s.passenger;
  mask[kDropoff] = s.passenger == kInTaxi && depot_here >= 0;
  return mask;
}

const TaxiTransition& TaxiEnv::transition(std::int32_t state, Action action) {
  check_state(state, "TaxiEnv::transition");
  check_action(action, "TaxiEnv::transition");
  return kTables.transitions[static_cast<std::size_t>(state * kNumActions + action)];
}

std::span<const std::int32_t, TaxiEnv::kNumInitialStates> TaxiEnv::initial_states() noexcept {
  return std::span<const std::int32_t, kNumInitialStates>(kTables.initial_states);
}

}  // namespace forkcast::env
