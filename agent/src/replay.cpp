#include "forkcast/agent/replay.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace forkcast::agent {

ReplayBuffer::ReplayBuffer(const ReplaySpec& spec) : spec_(spec) {
  if (spec.capacity == 0) throw std::invalid_argument("replay capacity: must be > 0");
  if (spec.observation_size <= 0) {
    throw std::invalid_argument("replay observation_size: " + std::to_string(spec.observation_size) + " must be > 0");
  }
  if (spec.max_candidates < 0 || spec.max_candidates > 32767) {
    throw std::invalid_argument("replay max_candidates: " + std::to_string(spec.max_candidates) + " is out of range 0..32767");
  }
  if (spec.candidate_extras < 1 || spec.candidate_extras > 64) {
    throw std::invalid_argument("replay candidate_extras: " + std::to_string(spec.candidate_extras) + " is out of range 1..64");
  }
  const auto n = static_cast<Eigen::Index>(spec.capacity);
  observations_.setZero(n, spec.observation_size);
  next_observations_.setZero(n, spec.observation_size);
  actions_.assign(spec.capacity, 0);
  const auto extras = static_cast<std::size_t>(spec.candidate_extras);
  action_extras_.assign(spec.max_candidates > 0 ? spec.capacity * extras : spec.capacity, 0.0F);
  rewards_.assign(spec.capacity, 0.0F);
  discounts_.assign(spec.capacity, 0.0F);
  if (spec.max_candidates > 0) {
    next_candidates_.setZero(n, spec.max_candidates);
    next_extras_.setZero(n, spec.max_candidates * spec.candidate_extras);
    next_count_.assign(spec.capacity, 0);
  }
  if (spec.prioritized) {
    leaves_ = 1;
    while (leaves_ < spec.capacity) leaves_ <<= 1;
    tree_.assign(2 * leaves_, 0.0);
  }
}

void ReplayBuffer::add(std::span<const float> observation, std::int32_t action, std::span<const float> action_extras,
                       float reward, float discount, std::span<const float> next_observation,
                       std::span<const std::int16_t> next_candidates, std::span<const float> next_extras) {
  const auto width = static_cast<std::size_t>(spec_.observation_size);
  if (observation.size() != width || next_observation.size() != width) {
    throw std::invalid_argument("replay add: observation sizes " + std::to_string(observation.size()) + " and " +
                                std::to_string(next_observation.size()) + ", expected " + std::to_string(width));
  }
  const auto extras = static_cast<std::size_t>(spec_.candidate_extras);
  if (spec_.max_candidates > 0) {
    if (next_candidates.size() * extras != next_extras.size() ||
        next_candidates.size() > static_cast<std::size_t>(spec_.max_candidates) || action_extras.size() != extras) {
      throw std::invalid_argument("replay add: " + std::to_string(next_candidates.size()) + " next candidates with " +
                                  std::to_string(next_extras.size()) + " extras and " +
                                  std::to_string(action_extras.size()) + " for the action (at most " +
                                  std::to_string(spec_.max_candidates) + " candidates, " + std::to_string(extras) +
                                  " extras each)");
    }
  }
  const std::size_t row = next_;
  actions_[row] = action;
  rewards_[row] = reward;
  discounts_[row] = discount;
  std::copy(observation.begin(), observation.end(), observations_.row(static_cast<Eigen::Index>(row)).data());
  std::copy(next_observation.begin(), next_observation.end(), next_observations_.row(static_cast<Eigen::Index>(row)).data());
  if (spec_.max_candidates > 0) {
    std::copy(action_extras.begin(), action_extras.end(), action_extras_.begin() + static_cast<std::ptrdiff_t>(row * extras));
    std::copy(next_candidates.begin(), next_candidates.end(), next_candidates_.row(static_cast<Eigen::Index>(row)).data());
    std::copy(next_extras.begin(), next_extras.end(), next_extras_.row(static_cast<Eigen::Index>(row)).data());
    next_count_[row] = static_cast<std::int16_t>(next_candidates.size());
  }
  // New transitions get the largest priority seen, so each is replayed at least once soon.
  if (spec_.prioritized) set_priority(row, max_priority_);
  next_ = (next_ + 1) % spec_.capacity;
  size_ = std::min(size_ + 1, spec_.capacity);
}

void ReplayBuffer::set_priority(std::size_t row, double priority) {
  std::size_t node = leaves_ + row;
  const double value = std::pow(priority + spec_.priority_epsilon, spec_.alpha);
  const double delta = value - tree_[node];
  while (node >= 1) {
    tree_[node] += delta;
    node >>= 1;
  }
}

void ReplayBuffer::sample(std::size_t batch_size, std::mt19937_64& rng, double beta, ReplayBatch& out) const {
  if (size_ == 0) throw std::invalid_argument("replay sample: the buffer is empty");
  out.indices.resize(batch_size);
  out.weights.assign(batch_size, 1.0F);
  if (!spec_.prioritized) {
    std::uniform_int_distribution<std::size_t> pick(0, size_ - 1);
    for (auto& i : out.indices) i = pick(rng);
    return;
  }
  const double total = tree_[1];
  // Stratified: one draw per equal slice of the total priority mass.
  const double slice = total / static_cast<double>(batch_size);
  double max_weight = 0;
  for (std::size_t k = 0; k < batch_size; ++k) {
    double target = (static_cast<double>(k) + std::uniform_real_distribution<double>(0.0, 1.0)(rng)) * slice;
    std::size_t node = 1;
    while (node < leaves_) {
      const std::size_t left = 2 * node;
      if (target <= tree_[left] || tree_[left + 1] <= 0.0) {
        node = left;
      } else {
        target -= tree_[left];
        node = left + 1;
      }
    }
    std::size_t row = node - leaves_;
    if (row >= size_) row = size_ - 1;  // floating-point tail
    out.indices[k] = row;
    const double p = tree_[leaves_ + row] / total;
    const double w = std::pow(static_cast<double>(size_) * std::max(p, 1e-12), -beta);
    out.weights[k] = static_cast<float>(w);
    max_weight = std::max(max_weight, w);
  }
  for (auto& w : out.weights) w = static_cast<float>(w / max_weight);
}

void ReplayBuffer::update_priorities(std::span<const std::size_t> indices, std::span<const float> td_errors) {
  if (!spec_.prioritized) return;
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const double p = std::abs(static_cast<double>(td_errors[k]));
    max_priority_ = std::max(max_priority_, p);
    set_priority(indices[k], p);
  }
}

std::span<const float> ReplayBuffer::observation(std::size_t row) const {
  return {observations_.row(static_cast<Eigen::Index>(row)).data(), static_cast<std::size_t>(spec_.observation_size)};
}

std::span<const float> ReplayBuffer::next_observation(std::size_t row) const {
  return {next_observations_.row(static_cast<Eigen::Index>(row)).data(), static_cast<std::size_t>(spec_.observation_size)};
}

std::span<const std::int16_t> ReplayBuffer::next_candidates(std::size_t row) const {
  if (spec_.max_candidates == 0) return {};
  return {next_candidates_.row(static_cast<Eigen::Index>(row)).data(), static_cast<std::size_t>(next_count_[row])};
}

std::span<const float> ReplayBuffer::next_extras(std::size_t row) const {
  if (spec_.max_candidates == 0) return {};
  return {next_extras_.row(static_cast<Eigen::Index>(row)).data(),
          static_cast<std::size_t>(next_count_[row]) * static_cast<std::size_t>(spec_.candidate_extras)};
}

std::span<const float> ReplayBuffer::action_extras(std::size_t row) const {
  if (spec_.max_candidates == 0) return {};
  const auto extras = static_cast<std::size_t>(spec_.candidate_extras);
  return {action_extras_.data() + row * extras, extras};
}

void ReplayBuffer::restore_state(const State& s) {
  if (s.size > spec_.capacity || s.next >= spec_.capacity) {
    throw std::invalid_argument("replay state: size " + std::to_string(s.size) + " / next " + std::to_string(s.next) +
                                " do not fit capacity " + std::to_string(spec_.capacity));
  }
  size_ = s.size;
  next_ = s.next;
  max_priority_ = s.max_priority;
}

void ReplayBuffer::check_contents(int action_bound) const {
  const auto bad = [](const std::string& what) { throw std::invalid_argument("replay: " + what); };
  if (size_ < spec_.capacity && next_ != size_) {
    bad("next row " + std::to_string(next_) + " must equal the size " + std::to_string(size_) +
        " while the ring is not full");
  }
  for (std::size_t row = 0; row < size_; ++row) {
    const auto where = "row " + std::to_string(row) + ": ";
    if (actions_[row] < 0 || actions_[row] >= action_bound) {
      bad(where + "action " + std::to_string(actions_[row]) + " is outside 0.." + std::to_string(action_bound - 1));
    }
    if (spec_.max_candidates == 0) continue;
    const int count = next_count_[row];
    if (count < 0 || count > spec_.max_candidates) {
      bad(where + std::to_string(count) + " next candidates, outside 0.." + std::to_string(spec_.max_candidates));
    }
    for (int k = 0; k < count; ++k) {
      const int item = next_candidates_(static_cast<Eigen::Index>(row), k);
      if (item < 0 || item >= action_bound) {
        bad(where + "next candidate " + std::to_string(item) + " is outside 0.." + std::to_string(action_bound - 1));
      }
    }
  }
  for (const double p : tree_) {
    if (!(p >= 0.0 && std::isfinite(p))) bad("a priority of " + std::to_string(p) + " (must be finite and >= 0)");
  }
}

}  // namespace forkcast::agent
