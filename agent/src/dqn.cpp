#include "forkcast/agent/dqn.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace forkcast::agent {

namespace {

std::vector<int> layer_sizes(int input, const std::vector<int>& hidden, int output) {
  std::vector<int> sizes{input};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(output);
  return sizes;
}

}  // namespace

DqnLearner::DqnLearner(const DqnConfig& config, int input_size, int num_actions, std::uint64_t seed)
    : config_(config),
      input_size_(input_size),
      num_actions_(num_actions),
      online_(layer_sizes(input_size, config.hidden, num_actions > 0 ? num_actions : 1), seed),
      target_(online_),
      adam_(online_.num_parameters(),
            nn::AdamConfig{config.learning_rate, 0.9, 0.999, 1e-8, config.weight_decay}) {
  if (num_actions < 0) throw std::invalid_argument("num_actions: " + std::to_string(num_actions) + " must be >= 0");
  if (config.batch_size <= 0) throw std::invalid_argument("batch_size: " + std::to_string(config.batch_size) + " must be > 0");
  if (config.n_step <= 0) throw std::invalid_argument("n_step: " + std::to_string(config.n_step) + " must be > 0");
  if (!(config.tau > 0 && config.tau <= 1)) throw std::invalid_argument("tau: " + std::to_string(config.tau) + " is not in (0, 1]");
  if (config.target_update_every <= 0) {
    throw std::invalid_argument("target_update_every: " + std::to_string(config.target_update_every) + " must be > 0");
  }
}

std::int32_t DqnLearner::greedy_action(std::span<const float> observation, std::span<const std::uint8_t> mask) {
  inputs_.resize(1, input_size_);
  std::copy(observation.begin(), observation.end(), inputs_.data());
  online_.predict(inputs_, act_out_, workspace_);
  std::int32_t best = -1;
  float best_q = -std::numeric_limits<float>::infinity();
  for (int a = 0; a < num_actions_; ++a) {
    if (!mask.empty() && !mask[static_cast<std::size_t>(a)]) continue;
    if (best < 0 || act_out_(0, a) > best_q) {
      best = a;
      best_q = act_out_(0, a);
    }
  }
  if (best < 0) throw std::invalid_argument("mask: no action is allowed");
  return best;
}

void DqnLearner::score_candidates(const nn::ConstMatrixRef<float>& rows, std::span<float> scores) {
  online_.predict(rows, act_out_, workspace_);
  for (Eigen::Index i = 0; i < rows.rows(); ++i) scores[static_cast<std::size_t>(i)] = act_out_(i, 0);
}

void DqnLearner::compute_targets_fixed(const ReplayBuffer& replay) {
  const auto b = static_cast<Eigen::Index>(batch_.indices.size());
  next_inputs_.resize(b, input_size_);
  for (Eigen::Index i = 0; i < b; ++i) {
    const auto next = replay.next_observation(batch_.indices[static_cast<std::size_t>(i)]);
    std::copy(next.begin(), next.end(), next_inputs_.row(i).data());
  }
  target_.predict(next_inputs_, next_target_, workspace_);
  const nn::Matrix<float>* chooser = &next_target_;
  if (config_.double_dqn) {
    online_.predict(next_inputs_, next_online_, workspace_);
    chooser = &next_online_;
  }
  targets_.resize(static_cast<std::size_t>(b));
  for (Eigen::Index i = 0; i < b; ++i) {
    const std::size_t row = batch_.indices[static_cast<std::size_t>(i)];
    Eigen::Index best = 0;
    chooser->row(i).maxCoeff(&best);
    targets_[static_cast<std::size_t>(i)] = replay.reward(row) + replay.discount(row) * next_target_(i, best);
  }
}

void DqnLearner::compute_targets_candidates(const ReplayBuffer& replay, const CandidateRowWriter& writer) {
  const std::size_t b = batch_.indices.size();
  segment_begin_.assign(b + 1, 0);
  for (std::size_t i = 0; i < b; ++i) {
    const std::size_t row = batch_.indices[i];
    const std::size_t n = replay.discount(row) > 0.0F ? replay.next_candidates(row).size() : 0;
    segment_begin_[i + 1] = segment_begin_[i] + n;
  }
  const auto total = static_cast<Eigen::Index>(segment_begin_[b]);
  targets_.resize(b);
  if (total > 0) {
    next_inputs_.resize(total, input_size_);
    for (std::size_t i = 0; i < b; ++i) {
      const std::size_t row = batch_.indices[i];
      if (segment_begin_[i + 1] == segment_begin_[i]) continue;
      const auto candidates = replay.next_candidates(row);
      const auto recency = replay.next_recency(row);
      const auto next = replay.next_observation(row);
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        writer(next, candidates[c], recency[c], next_inputs_.row(static_cast<Eigen::Index>(segment_begin_[i] + c)).data());
      }
    }
    target_.predict(next_inputs_, next_target_, workspace_);
    if (config_.double_dqn) online_.predict(next_inputs_, next_online_, workspace_);
  }
  const nn::Matrix<float>& chooser = config_.double_dqn ? next_online_ : next_target_;
  for (std::size_t i = 0; i < b; ++i) {
    const std::size_t row = batch_.indices[i];
    float value = 0.0F;
    if (segment_begin_[i + 1] > segment_begin_[i]) {
      auto best = static_cast<Eigen::Index>(segment_begin_[i]);
      for (auto r = best + 1; r < static_cast<Eigen::Index>(segment_begin_[i + 1]); ++r) {
        if (chooser(r, 0) > chooser(best, 0)) best = r;
      }
      value = next_target_(best, 0);
    }
    targets_[i] = replay.reward(row) + replay.discount(row) * value;
  }
}

float DqnLearner::update(ReplayBuffer& replay, std::mt19937_64& rng, const CandidateRowWriter& writer) {
  if (candidate_head() && !writer) throw std::invalid_argument("update: the candidate head needs a row writer");
  const auto b = static_cast<std::size_t>(config_.batch_size);
  replay.sample(b, rng, config_.per_beta, batch_);
  inputs_.resize(static_cast<Eigen::Index>(b), input_size_);
  for (std::size_t i = 0; i < b; ++i) {
    const std::size_t row = batch_.indices[i];
    float* dst = inputs_.row(static_cast<Eigen::Index>(i)).data();
    if (candidate_head()) {
      writer(replay.observation(row), replay.action(row), replay.action_recency(row), dst);
    } else {
      const auto obs = replay.observation(row);
      std::copy(obs.begin(), obs.end(), dst);
    }
  }
  if (candidate_head()) {
    compute_targets_candidates(replay, writer);
  } else {
    compute_targets_fixed(replay);
  }

  const auto& q = online_.forward(inputs_);
  grad_out_.setZero(q.rows(), q.cols());
  td_errors_.resize(b);
  const double delta = config_.huber_delta;
  double loss = 0;
  for (std::size_t i = 0; i < b; ++i) {
    const Eigen::Index col = candidate_head() ? 0 : replay.action(batch_.indices[i]);
    const double d = static_cast<double>(q(static_cast<Eigen::Index>(i), col)) - targets_[i];
    const double w = batch_.weights[i];
    const double abs_d = std::abs(d);
    loss += w * (abs_d <= delta ? 0.5 * d * d : delta * (abs_d - 0.5 * delta));
    const double g = abs_d <= delta ? d : (d > 0 ? delta : -delta);
    grad_out_(static_cast<Eigen::Index>(i), col) = static_cast<float>(w * g / static_cast<double>(b));
    td_errors_[i] = static_cast<float>(d);
  }
  online_.zero_grad();
  online_.backward(grad_out_);
  if (config_.max_grad_norm > 0) nn::clip_grad_norm<float>(online_.gradients(), static_cast<float>(config_.max_grad_norm));
  adam_.step(online_.parameters(), online_.gradients());
  replay.update_priorities(batch_.indices, td_errors_);
  ++updates_;
  if (config_.tau < 1.0) {
    target_.polyak_update_from(online_, static_cast<float>(config_.tau));
  } else if (updates_ % config_.target_update_every == 0) {
    target_.copy_parameters_from(online_);
  }
  return static_cast<float>(loss / static_cast<double>(b));
}

}  // namespace forkcast::agent
