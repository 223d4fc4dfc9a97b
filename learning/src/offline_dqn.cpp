#include "forkcast/learning/offline_dqn.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "forkcast/env/mealsim.hpp"

namespace forkcast::learning {

namespace nn = agent::nn;

namespace {

void check_config(const OfflineDqnConfig& c) {
  if (c.updates < 0) throw std::invalid_argument("learning.updates: " + std::to_string(c.updates) + " must be >= 0");
  if (c.batch_size < 1) throw std::invalid_argument("learning.batch_size: " + std::to_string(c.batch_size) + " must be >= 1");
  if (!(c.learning_rate > 0) || !std::isfinite(c.learning_rate)) {
    throw std::invalid_argument("learning.learning_rate: " + std::to_string(c.learning_rate) + " must be > 0");
  }
  if (!(c.cql_alpha >= 0) || !std::isfinite(c.cql_alpha)) {
    throw std::invalid_argument("learning.cql_alpha: " + std::to_string(c.cql_alpha) + " must be >= 0");
  }
  if (!(c.huber_delta > 0)) throw std::invalid_argument("learning.huber_delta: must be > 0");
  if (!(c.max_grad_norm > 0)) throw std::invalid_argument("learning.max_grad_norm: must be > 0");
  if (c.target_update_every < 1) {
    throw std::invalid_argument("learning.target_update_every: " + std::to_string(c.target_update_every) +
                                " must be >= 1");
  }
}

const nn::Mlp<float>& checked(const nn::Mlp<float>& net) {
  if (net.input_size() != env::kCandidateInputSize || net.output_size() != 1) {
    throw std::invalid_argument("network: input " + std::to_string(net.input_size()) + ", output " +
                                std::to_string(net.output_size()) + "; the learner needs a MealSim candidate model (input " +
                                std::to_string(env::kCandidateInputSize) + ", output 1, no belief)");
  }
  return net;
}

// Uniform index in [0, n) from one raw draw (portable: no std::uniform_int_distribution).
std::size_t draw_index(std::mt19937_64& rng, std::size_t n) {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  return std::min(n - 1, static_cast<std::size_t>(u * static_cast<double>(n)));
}

}  // namespace

OfflineDqn::OfflineDqn(const env::Catalog& catalog, const nn::Mlp<float>& start, const OfflineDqnConfig& config)
    : catalog_(catalog),
      config_(config),
      online_(checked(start)),
      target_(start),
      adam_(start.num_parameters(), nn::AdamConfig{.learning_rate = config.learning_rate}),
      rng_(config.seed) {
  check_config(config_);
}

void OfflineDqn::write_rows(const LoggedDataset& data, std::int32_t row, std::size_t first_row) {
  const auto observation = data.observation(row);
  const auto candidates = data.candidates_of(row);
  const auto recency = data.recency_of(row);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    env::write_candidate_input(catalog_, observation, candidates[i], recency[i], rows_.row(static_cast<Eigen::Index>(first_row + i)).data());
  }
}

OfflineUpdateStats OfflineDqn::update(const LoggedDataset& data, std::span<const std::int32_t> train) {
  if (train.empty()) throw std::invalid_argument("train: no transitions to learn from");
  const auto batch = static_cast<std::size_t>(config_.batch_size);
  batch_.resize(batch);
  for (std::size_t b = 0; b < batch; ++b) batch_[b] = train[draw_index(rng_, train.size())];

  // 1. TD targets from the next states' candidates (inference only).
  std::size_t next_rows = 0;
  for (const std::int32_t t : batch_) {
    const Transition& tr = data.transitions[static_cast<std::size_t>(t)];
    if (tr.next_row >= 0) next_rows += data.candidate_count(tr.next_row);
  }
  const auto input = static_cast<Eigen::Index>(env::kCandidateInputSize);
  targets_.assign(batch, 0.0F);
  if (next_rows > 0) {
    if (rows_.rows() < static_cast<Eigen::Index>(next_rows)) rows_.resize(static_cast<Eigen::Index>(next_rows), input);
    segment_.resize(batch + 1);
    std::size_t at = 0;
    for (std::size_t b = 0; b < batch; ++b) {
      segment_[b] = at;
      const Transition& tr = data.transitions[static_cast<std::size_t>(batch_[b])];
      if (tr.next_row < 0) continue;
      write_rows(data, tr.next_row, at);
      at += data.candidate_count(tr.next_row);
    }
    segment_[batch] = at;
    const auto used = rows_.topRows(static_cast<Eigen::Index>(next_rows));
    target_.predict(used, next_target_, workspace_);
    if (config_.double_dqn) online_.predict(used, next_online_, workspace_);
    for (std::size_t b = 0; b < batch; ++b) {
      const Transition& tr = data.transitions[static_cast<std::size_t>(batch_[b])];
      float bootstrap = 0;
      if (tr.next_row >= 0) {
        const auto begin = static_cast<Eigen::Index>(segment_[b]), end = static_cast<Eigen::Index>(segment_[b + 1]);
        const nn::Matrix<float>& pick = config_.double_dqn ? next_online_ : next_target_;
        Eigen::Index best = begin;
        for (Eigen::Index r = begin + 1; r < end; ++r) {
          if (pick(r, 0) > pick(best, 0)) best = r;
        }
        bootstrap = next_target_(best, 0);
      }
      targets_[b] = tr.reward + tr.discount * bootstrap;
    }
  }
  for (std::size_t b = 0; b < batch; ++b) {
    const Transition& tr = data.transitions[static_cast<std::size_t>(batch_[b])];
    if (tr.next_row < 0) targets_[b] = tr.reward;
  }

  // 2. Q over the current states' candidates: all of them when the conservative term is on
  // (its logsumexp needs every logged candidate), the chosen one alone otherwise.
  const bool conservative = config_.cql_alpha > 0;
  std::size_t rows = 0;
  for (const std::int32_t t : batch_) {
    rows += conservative ? data.candidate_count(data.transitions[static_cast<std::size_t>(t)].row) : 1;
  }
  if (rows_.rows() < static_cast<Eigen::Index>(rows)) rows_.resize(static_cast<Eigen::Index>(rows), input);
  segment_.resize(batch + 1);
  std::size_t at = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    segment_[b] = at;
    const std::int32_t row = data.transitions[static_cast<std::size_t>(batch_[b])].row;
    if (conservative) {
      write_rows(data, row, at);
      at += data.candidate_count(row);
    } else {
      const auto chosen = static_cast<std::size_t>(data.chosen[static_cast<std::size_t>(row)]);
      env::write_candidate_input(catalog_, data.observation(row), data.chosen_meal(row), data.recency_of(row)[chosen],
                                 rows_.row(static_cast<Eigen::Index>(at)).data());
      ++at;
    }
  }
  segment_[batch] = at;
  const nn::Matrix<float>& q = online_.forward(rows_.topRows(static_cast<Eigen::Index>(rows)));

  // 3. dL/dQ per row, the losses, then one backward pass.
  grad_.setZero(static_cast<Eigen::Index>(rows), 1);
  OfflineUpdateStats stats;
  const double inv_batch = 1.0 / static_cast<double>(batch);
  const double delta = config_.huber_delta;
  for (std::size_t b = 0; b < batch; ++b) {
    const std::int32_t row = data.transitions[static_cast<std::size_t>(batch_[b])].row;
    const auto begin = static_cast<Eigen::Index>(segment_[b]), end = static_cast<Eigen::Index>(segment_[b + 1]);
    const Eigen::Index chosen = conservative ? begin + data.chosen[static_cast<std::size_t>(row)] : begin;
    const double qa = q(chosen, 0);
    const double d = qa - targets_[b];
    stats.td_loss += (std::abs(d) <= delta ? 0.5 * d * d : delta * (std::abs(d) - 0.5 * delta)) * inv_batch;
    stats.q_chosen += qa * inv_batch;
    grad_(chosen, 0) += static_cast<float>(std::clamp(d, -delta, delta) * inv_batch);
    if (conservative) {
      double max_q = -std::numeric_limits<double>::infinity();
      for (Eigen::Index r = begin; r < end; ++r) max_q = std::max(max_q, static_cast<double>(q(r, 0)));
      double sum = 0;
      for (Eigen::Index r = begin; r < end; ++r) sum += std::exp(q(r, 0) - max_q);
      stats.cql_loss += (max_q + std::log(sum) - qa) * inv_batch;
      const double scale = config_.cql_alpha * inv_batch;
      for (Eigen::Index r = begin; r < end; ++r) {
        grad_(r, 0) += static_cast<float>(scale * std::exp(q(r, 0) - max_q) / sum);
      }
      grad_(chosen, 0) -= static_cast<float>(scale);
    }
  }
  online_.zero_grad();
  online_.backward_parameters(grad_);
  stats.grad_norm = nn::clip_grad_norm<float>(online_.gradients(), static_cast<float>(config_.max_grad_norm));
  adam_.step(online_.parameters(), online_.gradients());
  ++updates_;
  if (updates_ % config_.target_update_every == 0) target_.copy_parameters_from(online_);
  return stats;
}

OfflineTrainStats OfflineDqn::train(const LoggedDataset& data, std::span<const std::int32_t> train,
                                    const std::function<void(int, int, const OfflineUpdateStats&)>& progress) {
  constexpr int kWindow = 100;
  const auto started = std::chrono::steady_clock::now();
  OfflineTrainStats out;
  OfflineUpdateStats window;
  int in_window = 0;
  const auto add = [](OfflineUpdateStats& sum, const OfflineUpdateStats& s) {
    sum.td_loss += s.td_loss;
    sum.cql_loss += s.cql_loss;
    sum.q_chosen += s.q_chosen;
    sum.grad_norm += s.grad_norm;
  };
  const auto mean = [](OfflineUpdateStats s, int n) {
    const double k = n > 0 ? 1.0 / n : 0.0;
    s.td_loss *= k;
    s.cql_loss *= k;
    s.q_chosen *= k;
    s.grad_norm *= k;
    return s;
  };
  for (int u = 0; u < config_.updates; ++u) {
    add(window, update(data, train));
    ++in_window;
    if (in_window == kWindow || u + 1 == config_.updates) {
      const OfflineUpdateStats m = mean(window, in_window);
      if (u < kWindow) out.first = m;
      out.last = m;
      if (progress) progress(u + 1, config_.updates, m);
      window = {};
      in_window = 0;
    }
  }
  out.updates = config_.updates;
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

}  // namespace forkcast::learning
