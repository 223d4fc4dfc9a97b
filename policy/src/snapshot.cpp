#include "forkcast/policy/snapshot.hpp"

#include <stdexcept>
#include <string>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/dqn_training.hpp"

namespace forkcast::policy {

namespace nn = agent::nn;

ScoringWorkspace::ScoringWorkspace(int input_size, const std::vector<int>& layer_sizes)
    : rows(kMaxCandidates, input_size) {
  rows.setZero();
  for (std::size_t l = 1; l < layer_sizes.size(); ++l) layers.emplace_back(kMaxCandidates, layer_sizes[l]);
}

std::shared_ptr<const PolicySnapshot> PolicySnapshot::load(const std::filesystem::path& model,
                                                           const env::Catalog& catalog, std::string version) {
  auto loaded = load_dqn_model(model);
  const std::string expected = "MealSim catalog " + catalog.content_hash();
  if (loaded.env != "mealsim" || loaded.env_spec != expected) {
    throw CheckpointError(model.string(), "was trained for \"" + loaded.env_spec + "\", not for this catalog (\"" +
                                              expected + "\")");
  }
  if (loaded.network->input_size() != env::kCandidateInputSize || loaded.network->output_size() != 1) {
    throw CheckpointError(model.string(), "is not a MealSim candidate scorer (" +
                                              std::to_string(loaded.network->input_size()) + " -> " +
                                              std::to_string(loaded.network->output_size()) + ")");
  }
  std::shared_ptr<PolicySnapshot> snapshot(new PolicySnapshot());
  snapshot->catalog_ = &catalog;
  snapshot->quantized_ = std::make_unique<nn::QuantizedMlp>(*loaded.network);
  snapshot->network_ = std::move(loaded.network);
  snapshot->version_ = std::move(version);
  snapshot->sha256_ = sha256_file_hex(model);
  return snapshot;
}

void PolicySnapshot::score(std::span<const float> observation, std::span<const std::int32_t> candidates,
                           std::span<const float> recency, std::span<float> scores, ScoringWorkspace& ws,
                           Precision precision) const {
  const auto n = static_cast<Eigen::Index>(candidates.size());
  if (candidates.size() > static_cast<std::size_t>(kMaxCandidates) || recency.size() != candidates.size() ||
      scores.size() != candidates.size()) {
    throw std::invalid_argument("PolicySnapshot::score: " + std::to_string(candidates.size()) + " candidates, " +
                                std::to_string(recency.size()) + " recencies, " + std::to_string(scores.size()) +
                                " scores (equal lengths, at most " + std::to_string(kMaxCandidates) + ")");
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    env::write_candidate_input(*catalog_, observation, candidates[static_cast<std::size_t>(i)],
                               recency[static_cast<std::size_t>(i)], ws.rows.row(i).data());
  }
  if (precision == Precision::int8) {
    // The quantized network runs on the workspace's full, fixed-size batch so that its
    // buffers never change shape (no allocation); rows past n are ignored.
    quantized_->predict(ws.rows, ws.layers.back(), ws.quantized_workspace);
    for (Eigen::Index i = 0; i < n; ++i) scores[static_cast<std::size_t>(i)] = ws.layers.back()(i, 0);
    return;
  }
  // Float path: layer by layer into preallocated blocks (noalias GEMMs, ReLU in place).
  const auto& sizes = network_->layer_sizes();
  const nn::Matrix<float>* input = &ws.rows;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    auto out = ws.layers[l].topRows(n);
    out.noalias() = input->topRows(n) * network_->weight(static_cast<int>(l)).transpose();
    out.rowwise() += network_->bias(static_cast<int>(l));
    if (l + 2 < sizes.size()) out = out.cwiseMax(0.0F);
    input = &ws.layers[l];
  }
  for (Eigen::Index i = 0; i < n; ++i) scores[static_cast<std::size_t>(i)] = ws.layers.back()(i, 0);
}

}  // namespace forkcast::policy
