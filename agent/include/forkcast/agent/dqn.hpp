// Deep Q-network (Mnih et al., "Human-level control through deep reinforcement learning",
// Nature 518, 2015) with double DQN (van Hasselt, Guez & Silver, AAAI 2016), n-step
// returns (Sutton, 1988; Hessel et al., "Rainbow", AAAI 2018) and optional prioritized
// replay (Schaul et al., ICLR 2016), on the Eigen MLP of agent/nn.hpp.
//
// One engine, two heads:
//  - fixed actions (CartPole): the network maps an observation to one Q-value per action;
//  - candidate scoring (MealSim): the network maps one (state, meal) input row to one
//    Q-value, and a state's candidates are scored in one batched pass, so a new meal in
//    the catalog needs no new output unit. Masked candidates are never built into the
//    batch: they score -inf by construction, before any max, argmax or sample.
//
// TD target: y = r + discount * Q_target(s', a*), a* = argmax_a' Q_online(s', a') (double
// DQN) or argmax Q_target; discount = gamma^n, 0 at termination (see replay.hpp).
// Loss: Huber (delta configurable) weighted by PER importance weights; global-norm
// gradient clipping; Adam. Target network: hard copy every target_update_every updates,
// or Polyak averaging with tau < 1 after every update.
// Ownership: owns both networks, the optimizer and scratch buffers; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "forkcast/agent/nn.hpp"
#include "forkcast/agent/replay.hpp"

namespace forkcast::agent {

struct DqnConfig {
  std::vector<int> hidden = {256, 256};
  double learning_rate = 1e-3;
  double gamma = 0.99;
  int n_step = 1;
  int batch_size = 64;
  double huber_delta = 1.0;
  double max_grad_norm = 10.0;
  double weight_decay = 0.0;
  bool double_dqn = true;
  double tau = 1.0;                 // 1: hard copies every target_update_every updates
  int target_update_every = 100;    // in gradient updates, when tau == 1
  double per_beta = 0.4;            // prioritized replay importance exponent
};

// Builds the input rows of a candidate-scoring network: for the given next observation,
// candidates and recencies, writes one row per candidate into `rows` (pre-sized).
using CandidateRowWriter = std::function<void(std::span<const float> observation, int candidate, float recency,
                                              float* row)>;

class DqnLearner {
 public:
  // Fixed actions: input_size = observation size, num_actions outputs.
  // Candidate scoring: input_size = candidate row size, num_actions = 0 (one output).
  DqnLearner(const DqnConfig& config, int input_size, int num_actions, std::uint64_t seed);

  bool candidate_head() const noexcept { return num_actions_ == 0; }
  const DqnConfig& config() const noexcept { return config_; }

  // Greedy action for one observation (fixed head), among allowed ones (empty = all).
  std::int32_t greedy_action(std::span<const float> observation, std::span<const std::uint8_t> mask = {});
  // Scores of candidate rows [n x input] (candidate head), written into `scores` (size n).
  void score_candidates(const nn::ConstMatrixRef<float>& rows, std::span<float> scores);

  // One gradient update from a sampled batch. For the candidate head, `writer` rebuilds
  // rows from the replay (observation + candidate + recency). Returns the mean loss.
  float update(ReplayBuffer& replay, std::mt19937_64& rng, const CandidateRowWriter& writer = {});

  std::int64_t updates() const noexcept { return updates_; }
  nn::Mlp<float>& online() noexcept { return online_; }
  nn::Mlp<float>& target() noexcept { return target_; }
  const nn::Mlp<float>& online() const noexcept { return online_; }
  nn::Adam<float>& optimizer() noexcept { return adam_; }
  void set_updates(std::int64_t n) noexcept { updates_ = n; }

 private:
  void compute_targets_fixed(const ReplayBuffer& replay);
  void compute_targets_candidates(const ReplayBuffer& replay, const CandidateRowWriter& writer);

  DqnConfig config_;
  int input_size_;
  int num_actions_;
  nn::Mlp<float> online_, target_;
  nn::Adam<float> adam_;
  std::int64_t updates_ = 0;
  // Scratch, reused across updates.
  ReplayBatch batch_;
  nn::Matrix<float> inputs_, next_inputs_, next_online_, next_target_, grad_out_, act_out_;
  nn::Workspace<float> workspace_;
  std::vector<float> targets_, td_errors_;
  std::vector<std::size_t> segment_begin_;
};

}  // namespace forkcast::agent
