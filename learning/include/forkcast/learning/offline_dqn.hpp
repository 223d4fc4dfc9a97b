// The learner's update (docs/learning-loop.md "The update"): a conservative off-policy DQN
// over logged transitions, warm-started from the production network. Per sampled
// transition (s, a, r, discount, s') of a LoggedDataset, with C(s) the candidates the log
// shows for s:
//
//   y     = r + discount * Q_target(s', argmax_{c in C(s')} Q_online(s', c))   (double DQN)
//   L_td  = huber(Q(s, a) - y)
//   L_cql = logsumexp_{c in C(s)} Q(s, c) - Q(s, a)
//   L     = mean over the batch of L_td + cql_alpha * L_cql
//
// L_cql is CQL(H) (Kumar, Zhou, Tucker & Levine, "Conservative Q-Learning for Offline
// Reinforcement Learning", NeurIPS 2020) over the logged candidate set: it pushes down the
// values of the meals the logging policy did not choose and up the one it did, so the
// greedy policy stays where the log has data — the log covers mostly what production
// chose, and a plain DQN update would trust its extrapolation to the rest.
//
// Input rows are MealSim's candidate rows (env::write_candidate_input: observation, the
// meal's static features, its dynamic features from the logged recency), so the network
// must be a candidate-scoring model without a belief (input env::kCandidateInputSize).
// Deterministic for a given seed (single-threaded kernels; set_blas_threads(1)).
// Ownership: owns its networks, optimizer and scratch; borrows the catalog, which must
// outlive it. Not thread-safe.
// Errors: std::invalid_argument naming the option or the network shape.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "forkcast/agent/nn.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/learning/logged_dataset.hpp"

namespace forkcast::learning {

struct OfflineDqnConfig {
  int updates = 3'000;           // gradient updates per cycle
  int batch_size = 64;           // transitions per update
  double learning_rate = 1e-4;   // Adam; small: the start is a trained network
  double huber_delta = 1.0;
  double max_grad_norm = 10.0;
  double cql_alpha = 1.0;        // weight of L_cql; 0: plain double DQN on the log
  int target_update_every = 250; // updates between hard copies to the target network
  bool double_dqn = true;
  std::uint64_t seed = 0;
};

struct OfflineUpdateStats {
  double td_loss = 0;   // mean L_td
  double cql_loss = 0;  // mean L_cql
  double q_chosen = 0;  // mean Q(s, a)
  double grad_norm = 0; // before clipping
};

struct OfflineTrainStats {
  int updates = 0;
  OfflineUpdateStats first, last;  // means over the first and the last 100 updates
  double wall_s = 0;
};

class OfflineDqn {
 public:
  // `start` is copied into the online and target networks. Throws std::invalid_argument for
  // a network whose input is not env::kCandidateInputSize or whose output is not 1, or a
  // config value out of range (updates < 0, batch_size < 1, learning_rate <= 0, cql_alpha < 0,
  // target_update_every < 1).
  OfflineDqn(const env::Catalog& catalog, const agent::nn::Mlp<float>& start, const OfflineDqnConfig& config);

  // One gradient update on a batch drawn uniformly (with replacement) from `train`
  // (indices into data.transitions, non-empty).
  OfflineUpdateStats update(const LoggedDataset& data, std::span<const std::int32_t> train);

  // config.updates updates; `progress(done, total, last stats)` every 100 updates when given.
  OfflineTrainStats train(const LoggedDataset& data, std::span<const std::int32_t> train,
                          const std::function<void(int, int, const OfflineUpdateStats&)>& progress = {});

  const agent::nn::Mlp<float>& network() const noexcept { return online_; }
  std::int64_t updates() const noexcept { return updates_; }

 private:
  // Writes the input rows of `row`'s candidates into rows_ from `first_row`.
  void write_rows(const LoggedDataset& data, std::int32_t row, std::size_t first_row);

  const env::Catalog& catalog_;
  OfflineDqnConfig config_;
  agent::nn::Mlp<float> online_, target_;
  agent::nn::Adam<float> adam_;
  std::mt19937_64 rng_;
  std::int64_t updates_ = 0;
  // Scratch, reused across updates.
  agent::nn::Matrix<float> rows_, next_online_, next_target_, grad_;
  agent::nn::Workspace<float> workspace_;
  std::vector<std::int32_t> batch_;
  std::vector<float> targets_;
  std::vector<std::size_t> segment_;  // first row of each batch entry's candidates in rows_
};

}  // namespace forkcast::learning
