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
  // Quantization-aware training: the network always computes with its weights on the int8
  // grid (nn::project_weights_onto_int8_grid); Adam updates a float copy (the latent
  // weights) with the gradients of the projected network (straight-through estimator).
  // The trained float32 network and its int8 copy then make the same decisions.
  bool quantization_aware = false;
};

// How a candidate-scoring network's input row is made: [observation | static features of
// the item | dynamic features of (state, item)]. The static part comes from a table (one
// row per catalog item), the dynamic part from a function of the observation, the item and
// its `extra_size` extras (values the environment keeps per candidate beside the
// observation, stored in the replay: MealSim's recency, then its belief's values).
// Knowing this split lets the learner compute the first layer as
//   W1 [obs | static | dyn] = W1_obs obs (once per state) + W1_static static (once per item
//   and update) + W1_dyn dyn (per candidate),
// which makes scoring all candidates of a batch of states ~2.5x cheaper than building and
// multiplying full rows. The result is the same function; only the float rounding differs.
struct CandidateFeatures {
  int observation_size = 0;
  int static_size = 0;
  int dynamic_size = 0;
  int num_items = 0;
  int extra_size = 1;  // floats per candidate beside the observation
  const float* static_features = nullptr;  // [num_items x static_size], row-major, not owned
  std::function<void(std::span<const float> observation, int item, const float* extras, float* dynamic_out)> dynamic;
  int input_size() const noexcept { return observation_size + static_size + dynamic_size; }
  // Writes a full input row (input_size() floats).
  void write_row(std::span<const float> observation, int item, const float* extras, float* row) const;
};

class DqnLearner {
 public:
  // Fixed actions: input_size = observation size, num_actions outputs.
  DqnLearner(const DqnConfig& config, int input_size, int num_actions, std::uint64_t seed);
  // Candidate scoring: one output per (state, item) row laid out as `features` says.
  DqnLearner(const DqnConfig& config, CandidateFeatures features, std::uint64_t seed);

  bool candidate_head() const noexcept { return num_actions_ == 0; }
  // Actions (fixed head) or catalog items (candidate head) are in [0, action_bound()).
  int action_bound() const noexcept { return candidate_head() ? features_.num_items : num_actions_; }
  const DqnConfig& config() const noexcept { return config_; }

  // Greedy action for one observation (fixed head), among allowed ones (empty = all).
  std::int32_t greedy_action(std::span<const float> observation, std::span<const std::uint8_t> mask = {});
  // Scores of one state's candidates (candidate head) by the online network; `extras`
  // holds extra_size floats per candidate.
  void score_candidates(std::span<const float> observation, std::span<const std::int16_t> candidates,
                        std::span<const float> extras, std::span<float> scores);

  // One gradient update from a sampled batch. Returns the mean loss.
  float update(ReplayBuffer& replay, std::mt19937_64& rng);

  std::int64_t updates() const noexcept { return updates_; }
  nn::Mlp<float>& online() noexcept { return online_; }
  nn::Mlp<float>& target() noexcept { return target_; }
  const nn::Mlp<float>& online() const noexcept { return online_; }
  nn::Adam<float>& optimizer() noexcept { return adam_; }
  // quantization_aware: the latent weights (layout of online().parameters(); empty when off),
  // saved and restored by checkpoints so that a resumed run continues exactly.
  std::span<float> latent() noexcept { return latent_; }
  void set_updates(std::int64_t n) noexcept { updates_ = n; }

 private:
  void compute_targets_fixed(const ReplayBuffer& replay);
  void compute_targets_candidates(const ReplayBuffer& replay);
  // Factorized forward (see CandidateFeatures) of `net` for the rows described by
  // row_state_ (index into states), row_item_ and dynamic_ into out [rows x 1].
  void score_rows(const nn::Mlp<float>& net, const nn::Matrix<float>& states, nn::Matrix<float>& out);

  CandidateFeatures features_;
  DqnConfig config_;
  int input_size_;
  int num_actions_;
  nn::Mlp<float> online_, target_;
  nn::Adam<float> adam_;
  std::vector<float> latent_;  // quantization_aware: the weights Adam updates
  void reset_latent_from_online();
  std::int64_t updates_ = 0;
  // Scratch, reused across updates.
  ReplayBatch batch_;
  nn::Matrix<float> inputs_, next_inputs_, next_online_, next_target_, grad_out_, act_out_;
  nn::Workspace<float> workspace_;
  std::vector<float> targets_, td_errors_;
  std::vector<std::size_t> segment_begin_;
  std::vector<int> row_state_, row_item_;
  nn::Matrix<float> states_, dynamic_, item_part_, state_part_, hidden_a_, hidden_b_;
  nn::GemmScratch<float> gemm_;
};

}  // namespace forkcast::agent
