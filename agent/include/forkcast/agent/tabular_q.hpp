// Tabular Q-learning (Watkins, 1989; Watkins & Dayan, "Q-learning", Machine Learning 8,
// 1992). One dense row-major table Q[state][action] of doubles: a state's actions are
// contiguous, so the update touches one row for the max over s' and one entry for s —
// Taxi's 500 x 6 table (24 KiB) stays in L1 during training.
//
// Update: Q[s][a] += lr * (r + gamma * max_{a' allowed in s'} Q[s'][a'] - Q[s][a]),
// where the bootstrap term is 0 when the transition terminated, and computed normally
// when it was truncated by a time limit (the state s' still has a future).
//
// Exploration is not here: the training loop asks policy/explore for the pmf over
// greedy_values(). This class only learns and answers.
// Ownership: owns its table. Not thread-safe. Errors: std::invalid_argument naming the
// parameter for bad sizes, states or actions.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace forkcast::agent {

struct TabularQConfig {
  int num_states = 0;
  int num_actions = 0;
  double learning_rate = 0.7;
  double gamma = 0.95;
  double initial_q = 0.0;
};

struct Transition {
  std::int32_t state = 0;
  std::int32_t action = 0;
  double reward = 0;
  std::int32_t next_state = 0;
  bool terminated = false;
  // Allowed actions of next_state (1 = allowed); empty means all are allowed.
  std::span<const std::uint8_t> next_mask = {};
};

class TabularQ {
 public:
  explicit TabularQ(const TabularQConfig& config);

  // Applies one Q-learning update; returns the TD error before the update.
  double update(const Transition& t) {
    const double* next = row_ptr(t.next_state);
    double bootstrap = 0.0;
    if (!t.terminated) bootstrap = max_allowed(next, t.next_mask);
    double& q = table_[static_cast<std::size_t>(t.state) * actions_ + static_cast<std::size_t>(t.action)];
    const double td = t.reward + gamma_ * bootstrap - q;
    q += learning_rate_ * td;
    return td;
  }

  // Greedy action among allowed ones (lowest index on ties). Throws if the state is out of
  // range or no action is allowed. Inline: it runs once per training step.
  std::int32_t greedy_action(std::int32_t state, std::span<const std::uint8_t> mask = {}) const {
    if (state < 0 || state >= states_) throw_bad_state(state);
    const double* row = row_ptr(state);
    std::int32_t best = -1;
    if (mask.empty()) {
      best = 0;
      for (std::size_t a = 1; a < actions_; ++a) {
        if (row[a] > row[static_cast<std::size_t>(best)]) best = static_cast<std::int32_t>(a);
      }
      return best;
    }
    for (std::size_t a = 0; a < actions_; ++a) {
      if (mask[a] && (best < 0 || row[a] > row[static_cast<std::size_t>(best)])) best = static_cast<std::int32_t>(a);
    }
    if (best < 0) throw_no_action(state);
    return best;
  }
  std::span<const double> values(std::int32_t state) const {
    return {row_ptr(state), static_cast<std::size_t>(actions_)};
  }

  int num_states() const noexcept { return states_; }
  int num_actions() const noexcept { return actions_; }
  const TabularQConfig& config() const noexcept { return config_; }
  // The whole table, row-major [num_states x num_actions], for checkpoints and export.
  std::span<const double> table() const noexcept { return table_; }
  // Replaces the table (checkpoint restore). Throws if the size differs.
  void load_table(std::span<const double> values);

  // Checks a transition's indices; the hot update() trusts its caller.
  void validate(const Transition& t) const;

 private:
  const double* row_ptr(std::int32_t state) const {
    return table_.data() + static_cast<std::size_t>(state) * static_cast<std::size_t>(actions_);
  }
  double max_allowed(const double* row, std::span<const std::uint8_t> mask) const {
    double best = -std::numeric_limits<double>::infinity();
    if (mask.empty()) {
      for (std::size_t a = 0; a < actions_; ++a) best = row[a] > best ? row[a] : best;
    } else {
      for (std::size_t a = 0; a < actions_; ++a) {
        if (mask[a] && row[a] > best) best = row[a];
      }
    }
    // A state with no allowed action has no future to bootstrap from.
    return best == -std::numeric_limits<double>::infinity() ? 0.0 : best;
  }
  [[noreturn]] void throw_bad_state(std::int32_t state) const;
  [[noreturn]] void throw_no_action(std::int32_t state) const;

  TabularQConfig config_;
  int states_;
  std::size_t actions_;
  double learning_rate_;
  double gamma_;
  std::vector<double> table_;
};

}  // namespace forkcast::agent
