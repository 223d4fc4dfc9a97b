// Experience replay as a preallocated ring of Eigen matrices (Lin, 1992; Mnih et al., 2015),
// uniform or prioritized (Schaul et al., "Prioritized Experience Replay", ICLR 2016).
//
// One row per transition. Fixed-action environments (CartPole) store observation, action,
// n-step reward, discount and next observation. Candidate-scoring environments (MealSim)
// also store the chosen candidate's extras and, for the next state, the allowed
// candidates (catalog indices) and their extras: `candidate_extras` floats per candidate
// that the observation does not hold (MealSim: the meal's recency, then the belief's
// values when the agent uses one), which with the observation rebuild every candidate's
// input row (env/mealsim.hpp, write_candidate_input) — far smaller than the rows themselves.
//
// `discount` is gamma^k for a k-step transition that did not terminate, and 0 when it
// did: the TD target is reward + discount * max_a' Q(next, a'), whatever n and however the
// episode ended (a time-limit truncation keeps its discount and bootstraps).
// Ownership: owns all storage, allocated once in the constructor. Not thread-safe.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace forkcast::agent {

struct ReplaySpec {
  std::size_t capacity = 100'000;
  int observation_size = 0;
  int max_candidates = 0;  // 0: fixed-action environment
  int candidate_extras = 1;  // floats per candidate beside the observation (candidate replays)
  bool prioritized = false;
  double alpha = 0.6;      // prioritization exponent
  double priority_epsilon = 1e-5;
};

struct ReplayBatch {
  std::vector<std::size_t> indices;  // rows sampled, for priority updates
  std::vector<float> weights;        // importance weights (all 1 for uniform replay)
};

class ReplayBuffer {
 public:
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  explicit ReplayBuffer(const ReplaySpec& spec);

  // Adds one transition, overwriting the oldest when full. `action_extras` (candidate_extras
  // floats) belong to the chosen candidate; `next_candidates` (<= max_candidates) and
  // `next_extras` (candidate_extras per candidate, row-major) to the next state. All three
  // are ignored for fixed-action replays.
  void add(std::span<const float> observation, std::int32_t action, std::span<const float> action_extras, float reward,
           float discount, std::span<const float> next_observation,
           std::span<const std::int16_t> next_candidates = {}, std::span<const float> next_extras = {});

  // Samples `batch_size` rows (with replacement) into `out`; beta is PER's importance
  // exponent (ignored for uniform replay).
  void sample(std::size_t batch_size, std::mt19937_64& rng, double beta, ReplayBatch& out) const;
  // New priorities (|TD error|) for the rows of the last sample (prioritized replays).
  void update_priorities(std::span<const std::size_t> indices, std::span<const float> td_errors);

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return spec_.capacity; }
  const ReplaySpec& spec() const noexcept { return spec_; }

  // Row views.
  std::span<const float> observation(std::size_t row) const;
  std::span<const float> next_observation(std::size_t row) const;
  std::int32_t action(std::size_t row) const { return actions_[row]; }
  std::span<const float> action_extras(std::size_t row) const;
  float reward(std::size_t row) const { return rewards_[row]; }
  float discount(std::size_t row) const { return discounts_[row]; }
  std::span<const std::int16_t> next_candidates(std::size_t row) const;
  std::span<const float> next_extras(std::size_t row) const;  // candidate_extras per next candidate

  // Whole storage, for checkpoints (resume restores it exactly).
  struct State {
    std::size_t size = 0, next = 0;
    double max_priority = 1.0;
  };
  State state() const noexcept { return {size_, next_, max_priority_}; }
  void restore_state(const State& s);
  // After restoring storage from a file: every stored row's action and next candidates lie
  // in [0, action_bound) with at most max_candidates of them, priorities are finite and
  // >= 0, and a ring that is not full ends at `size`. Throws std::invalid_argument naming
  // the first row that does not (indices are used unchecked when sampling and training).
  void check_contents(int action_bound) const;
  RowMatrix& observations() noexcept { return observations_; }
  RowMatrix& next_observations() noexcept { return next_observations_; }
  std::vector<std::int32_t>& actions() noexcept { return actions_; }
  std::vector<float>& action_extras() noexcept { return action_extras_; }
  std::vector<float>& rewards() noexcept { return rewards_; }
  std::vector<float>& discounts() noexcept { return discounts_; }
  Eigen::Matrix<std::int16_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& candidates() noexcept { return next_candidates_; }
  RowMatrix& candidate_extras() noexcept { return next_extras_; }
  std::vector<std::int16_t>& candidate_counts() noexcept { return next_count_; }
  std::vector<double>& priority_tree() noexcept { return tree_; }

 private:
  void set_priority(std::size_t row, double priority);

  ReplaySpec spec_;
  std::size_t size_ = 0, next_ = 0;
  RowMatrix observations_, next_observations_;
  std::vector<std::int32_t> actions_;
  std::vector<float> action_extras_, rewards_, discounts_;
  Eigen::Matrix<std::int16_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> next_candidates_;
  RowMatrix next_extras_;  // [capacity x max_candidates * candidate_extras]
  std::vector<std::int16_t> next_count_;
  // Prioritized replay: a sum tree over capacity leaves (leaf i at tree_[leaves_ + i]).
  std::size_t leaves_ = 0;
  std::vector<double> tree_;
  double max_priority_ = 1.0;
};

}  // namespace forkcast::agent
