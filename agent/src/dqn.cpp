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
  reset_latent_from_online();
}

void DqnLearner::reset_latent_from_online() {
  if (!config_.quantization_aware) return;
  latent_.assign(online_.parameters().begin(), online_.parameters().end());
  nn::project_weights_onto_int8_grid(latent_, online_);
  target_.copy_parameters_from(online_);
}

void CandidateFeatures::write_row(std::span<const float> observation, int item, const float* extras, float* row) const {
  std::copy(observation.begin(), observation.begin() + observation_size, row);
  const float* features = static_features + static_cast<std::size_t>(item) * static_cast<std::size_t>(static_size);
  std::copy(features, features + static_size, row + observation_size);
  dynamic(observation, item, extras, row + observation_size + static_size);
}

DqnLearner::DqnLearner(const DqnConfig& config, CandidateFeatures features, std::uint64_t seed)
    : DqnLearner(config, features.input_size(), 0, seed) {
  if (features.observation_size <= 0 || features.static_size < 0 || features.dynamic_size < 0 || features.num_items <= 0 ||
      features.extra_size < 1 ||
      (features.static_size > 0 && features.static_features == nullptr) || !features.dynamic) {
    throw std::invalid_argument("CandidateFeatures: observation_size " + std::to_string(features.observation_size) +
                                ", static_size " + std::to_string(features.static_size) + ", dynamic_size " +
                                std::to_string(features.dynamic_size) + ", num_items " + std::to_string(features.num_items) +
                                ", extra_size " + std::to_string(features.extra_size) +
                                ": sizes must be positive (extra_size >= 1), with a static table and a dynamic function");
  }
  features_ = std::move(features);
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

void DqnLearner::score_rows(const nn::Mlp<float>& net, const nn::Matrix<float>& states, nn::Matrix<float>& out) {
  const int obs = features_.observation_size, stat = features_.static_size, dyn = features_.dynamic_size;
  const auto w1 = net.weight(0);
  const int in = static_cast<int>(w1.cols());
  const auto& sizes = net.layer_sizes();
  const int hidden = sizes[1];
  const int n = static_cast<int>(row_state_.size());
  const int num_states = static_cast<int>(states.rows());
  // Per state and per item parts of the first layer, then the per-candidate dynamic part,
  // each a GEMM on nn::gemm (OpenBLAS or Eigen by shape).
  state_part_.resize(num_states, hidden);
  nn::dense_layer<float>(num_states, obs, hidden, states.data(), obs, w1.data(), in, net.bias(0).data(), false,
                         state_part_.data(), hidden, gemm_);
  item_part_.resize(features_.num_items, hidden);
  nn::dense_layer<float>(features_.num_items, stat, hidden, features_.static_features, stat, w1.data() + obs, in, nullptr,
                         false, item_part_.data(), hidden, gemm_);
  if (hidden_a_.rows() < n || hidden_a_.cols() != hidden) hidden_a_.resize(std::max<Eigen::Index>(n, hidden_a_.rows()), hidden);
  nn::dense_layer<float>(n, dyn, hidden, dynamic_.data(), dyn, w1.data() + obs + stat, in, nullptr, false, hidden_a_.data(),
                         hidden, gemm_);
  const int layers = static_cast<int>(sizes.size()) - 1;  // weight(0) .. weight(layers - 1)
  for (int r = 0; r < n; ++r) {
    auto row = hidden_a_.row(r);
    row += state_part_.row(row_state_[static_cast<std::size_t>(r)]) + item_part_.row(row_item_[static_cast<std::size_t>(r)]);
    if (layers > 1) row = row.cwiseMax(0.0F);
  }
  nn::Matrix<float>* x = &hidden_a_;
  nn::Matrix<float>* y = &hidden_b_;
  for (int l = 1; l < layers; ++l) {
    const int width = sizes[static_cast<std::size_t>(l) + 1];
    nn::Matrix<float>& target = l + 1 == layers ? out : *y;
    if (target.rows() != n || target.cols() != width) target.resize(n, width);
    const auto w = net.weight(l);
    nn::dense_layer<float>(n, sizes[static_cast<std::size_t>(l)], width, x->data(), static_cast<int>(x->cols()), w.data(),
                           static_cast<int>(w.cols()), net.bias(l).data(), l + 1 < layers, target.data(), width, gemm_);
    std::swap(x, y);
  }
  if (layers == 1) out = hidden_a_.topRows(n);
}

void DqnLearner::score_candidates(std::span<const float> observation, std::span<const std::int16_t> candidates,
                                  std::span<const float> extras, std::span<float> scores) {
  const auto n = candidates.size();
  if (extras.size() != n * static_cast<std::size_t>(features_.extra_size) || scores.size() < n) {
    throw std::invalid_argument("score_candidates: " + std::to_string(n) + " candidates need " +
                                std::to_string(n * static_cast<std::size_t>(features_.extra_size)) + " extras and as many scores; got " +
                                std::to_string(extras.size()) + " and " + std::to_string(scores.size()));
  }
  states_.resize(1, features_.observation_size);
  std::copy(observation.begin(), observation.begin() + features_.observation_size, states_.data());
  row_state_.assign(n, 0);
  row_item_.resize(n);
  if (dynamic_.rows() < static_cast<Eigen::Index>(n)) dynamic_.resize(static_cast<Eigen::Index>(n), features_.dynamic_size);
  for (std::size_t c = 0; c < n; ++c) {
    row_item_[c] = candidates[c];
    features_.dynamic(observation, candidates[c], extras.data() + c * static_cast<std::size_t>(features_.extra_size),
                      dynamic_.row(static_cast<Eigen::Index>(c)).data());
  }
  score_rows(online_, states_, act_out_);
  for (std::size_t c = 0; c < n; ++c) scores[c] = act_out_(static_cast<Eigen::Index>(c), 0);
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

void DqnLearner::compute_targets_candidates(const ReplayBuffer& replay) {
  const std::size_t b = batch_.indices.size();
  segment_begin_.assign(b + 1, 0);
  for (std::size_t i = 0; i < b; ++i) {
    const std::size_t row = batch_.indices[i];
    const std::size_t n = replay.discount(row) > 0.0F ? replay.next_candidates(row).size() : 0;
    segment_begin_[i + 1] = segment_begin_[i] + n;
  }
  const std::size_t total = segment_begin_[b];
  targets_.resize(b);
  if (total > 0) {
    states_.resize(static_cast<Eigen::Index>(b), features_.observation_size);
    row_state_.resize(total);
    row_item_.resize(total);
    if (dynamic_.rows() < static_cast<Eigen::Index>(total)) dynamic_.resize(static_cast<Eigen::Index>(total), features_.dynamic_size);
    for (std::size_t i = 0; i < b; ++i) {
      const std::size_t row = batch_.indices[i];
      const auto next = replay.next_observation(row);
      std::copy(next.begin(), next.begin() + features_.observation_size, states_.row(static_cast<Eigen::Index>(i)).data());
      if (segment_begin_[i + 1] == segment_begin_[i]) continue;
      const auto candidates = replay.next_candidates(row);
      const auto extras = replay.next_extras(row);
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        const std::size_t r = segment_begin_[i] + c;
        row_state_[r] = static_cast<int>(i);
        row_item_[r] = candidates[c];
        features_.dynamic(next, candidates[c], extras.data() + c * static_cast<std::size_t>(features_.extra_size),
                          dynamic_.row(static_cast<Eigen::Index>(r)).data());
      }
    }
    score_rows(target_, states_, next_target_);
    if (config_.double_dqn) score_rows(online_, states_, next_online_);
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

float DqnLearner::update(ReplayBuffer& replay, std::mt19937_64& rng) {
  if (candidate_head() && !features_.dynamic) throw std::invalid_argument("update: the candidate head needs CandidateFeatures");
  if (candidate_head() && replay.spec().candidate_extras != features_.extra_size) {
    throw std::invalid_argument("update: the replay keeps " + std::to_string(replay.spec().candidate_extras) +
                                " extras per candidate, the features read " + std::to_string(features_.extra_size));
  }
  const auto b = static_cast<std::size_t>(config_.batch_size);
  replay.sample(b, rng, config_.per_beta, batch_);
  inputs_.resize(static_cast<Eigen::Index>(b), input_size_);
  for (std::size_t i = 0; i < b; ++i) {
    const std::size_t row = batch_.indices[i];
    float* dst = inputs_.row(static_cast<Eigen::Index>(i)).data();
    if (candidate_head()) {
      features_.write_row(replay.observation(row), replay.action(row), replay.action_extras(row).data(), dst);
    } else {
      const auto obs = replay.observation(row);
      std::copy(obs.begin(), obs.end(), dst);
    }
  }
  if (candidate_head()) {
    compute_targets_candidates(replay);
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
  online_.backward_parameters(grad_out_);  // dL/dx is not needed: saves one GEMM
  if (config_.max_grad_norm > 0) nn::clip_grad_norm<float>(online_.gradients(), static_cast<float>(config_.max_grad_norm));
  if (config_.quantization_aware) {
    adam_.step(latent_, online_.gradients());
    nn::project_weights_onto_int8_grid(latent_, online_);
  } else {
    adam_.step(online_.parameters(), online_.gradients());
  }
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
