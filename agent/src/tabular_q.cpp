#include "forkcast/agent/tabular_q.hpp"

#include <limits>
#include <stdexcept>
#include <string>

namespace forkcast::agent {

TabularQ::TabularQ(const TabularQConfig& config)
    : config_(config),
      states_(config.num_states),
      actions_(static_cast<std::size_t>(config.num_actions)),
      learning_rate_(config.learning_rate),
      gamma_(config.gamma) {
  if (config.num_states <= 0) throw std::invalid_argument("num_states: " + std::to_string(config.num_states) + " must be > 0");
  if (config.num_actions <= 0) throw std::invalid_argument("num_actions: " + std::to_string(config.num_actions) + " must be > 0");
  if (!(config.learning_rate > 0 && config.learning_rate <= 1)) {
    throw std::invalid_argument("learning_rate: " + std::to_string(config.learning_rate) + " is not in (0, 1]");
  }
  if (!(config.gamma >= 0 && config.gamma <= 1)) {
    throw std::invalid_argument("gamma: " + std::to_string(config.gamma) + " is not in [0, 1]");
  }
  table_.assign(static_cast<std::size_t>(states_) * actions_, config.initial_q);
}

void TabularQ::throw_bad_state(std::int32_t state) const {
  throw std::invalid_argument("state: " + std::to_string(state) + " is out of range 0.." + std::to_string(states_ - 1));
}

void TabularQ::throw_no_action(std::int32_t state) const {
  throw std::invalid_argument("mask: no action is allowed in state " + std::to_string(state));
}

void TabularQ::load_table(std::span<const double> values) {
  if (values.size() != table_.size()) {
    throw std::invalid_argument("q_table: " + std::to_string(values.size()) + " values, expected " +
                                std::to_string(table_.size()) + " (" + std::to_string(states_) + " x " +
                                std::to_string(actions_) + ")");
  }
  table_.assign(values.begin(), values.end());
}

void TabularQ::validate(const Transition& t) const {
  auto check_state = [&](std::int32_t s, const char* field) {
    if (s < 0 || s >= states_) {
      throw std::invalid_argument(std::string(field) + ": " + std::to_string(s) + " is out of range 0.." +
                                  std::to_string(states_ - 1));
    }
  };
  check_state(t.state, "state");
  check_state(t.next_state, "next_state");
  if (t.action < 0 || static_cast<std::size_t>(t.action) >= actions_) {
    throw std::invalid_argument("action: " + std::to_string(t.action) + " is out of range 0.." +
                                std::to_string(actions_ - 1));
  }
  if (!t.next_mask.empty() && t.next_mask.size() != actions_) {
    throw std::invalid_argument("next_mask: " + std::to_string(t.next_mask.size()) + " entries, expected " +
                                std::to_string(actions_));
  }
}

}  // namespace forkcast::agent
