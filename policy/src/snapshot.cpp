#include "forkcast/policy/snapshot.hpp"

#include <stdexcept>
#include <string>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/model_files.hpp"
#include "snapshot_kernels.hpp"

namespace forkcast::policy {

namespace nn = agent::nn;

ScoringWorkspace::ScoringWorkspace(int input_size, const std::vector<int>& layer_sizes)
    : rows(kMaxCandidates, input_size),
      dynamic(kMaxCandidates, env::kCandidateDynamicFeatures),
      state_part(1, layer_sizes.size() > 1 ? layer_sizes[1] : 1) {
  rows.setZero();
  dynamic.setZero();
  for (std::size_t l = 1; l < layer_sizes.size(); ++l) layers.emplace_back(kMaxCandidates, layer_sizes[l]);
}

PolicySnapshot::~PolicySnapshot() = default;

const char* PolicySnapshot::kernel(Precision precision) const noexcept {
  const auto& fused = precision == Precision::int8 ? fused_int8_ : fused_float_;
  return fused ? detail::isa_name(fused->isa) : "generic";
}

std::shared_ptr<const PolicySnapshot> PolicySnapshot::load(const std::filesystem::path& model,
                                                           const env::Catalog& catalog, std::string version) {
  auto loaded = load_dqn_model(model);
  const std::string expected = "MealSim catalog " + catalog.content_hash();
  if (loaded.env != "mealsim" || loaded.env_spec != expected) {
    throw CheckpointError(model.string(), "was trained for \"" + loaded.env_spec + "\", not for this catalog (\"" +
                                              expected + "\")");
  }
  if (const int particles = dqn_belief_particles(loaded, model); particles > 0) {
    // Its rows need a particle belief that follows each user's week: about 1 000 times the
    // scoring work per suggestion, and state the service does not keep (docs/agents.md).
    throw CheckpointError(model.string(), "was trained on a belief over the user (belief_particles " +
                                              std::to_string(particles) +
                                              "); the service serves models trained without --belief-particles");
  }
  if (loaded.network->input_size() != env::kCandidateInputSize || loaded.network->output_size() != 1) {
    throw CheckpointError(model.string(), "is not a MealSim candidate scorer (" +
                                              std::to_string(loaded.network->input_size()) + " -> " +
                                              std::to_string(loaded.network->output_size()) + ")");
  }
  // Serving threads each score on one core; a threaded OpenBLAS would also allocate per call.
  nn::set_blas_threads(1);
  std::shared_ptr<PolicySnapshot> snapshot(new PolicySnapshot());
  snapshot->catalog_ = &catalog;
  snapshot->quantized_ = std::make_unique<nn::QuantizedMlp>(*loaded.network);
  snapshot->network_ = std::move(loaded.network);
  const Eigen::Map<const nn::Matrix<float>> items(catalog.meal_features().data(), static_cast<Eigen::Index>(catalog.size()),
                                                  env::kMealStaticFeatures);
  snapshot->item_part_ = items * snapshot->network_->weight(0).middleCols(env::kObservationSize, env::kMealStaticFeatures).transpose();
  const auto isa = detail::best_kernel_isa();
  const std::span<const float> statics(catalog.meal_features().data(),
                                       catalog.size() * static_cast<std::size_t>(env::kMealStaticFeatures));
  const int meals = static_cast<int>(catalog.size());
  snapshot->fused_float_ = detail::make_fused_scorer(*snapshot->network_, nullptr, env::kObservationSize,
                                                     env::kCandidateDynamicFeatures, statics, meals, isa);
  snapshot->fused_int8_ = detail::make_fused_scorer(*snapshot->network_, snapshot->quantized_.get(),
                                                    env::kObservationSize, env::kCandidateDynamicFeatures, statics,
                                                    meals, isa);
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
  if (const auto& fused = precision == Precision::int8 ? fused_int8_ : fused_float_) {
    for (Eigen::Index i = 0; i < n; ++i) {
      env::write_candidate_dynamic(*catalog_, observation, candidates[static_cast<std::size_t>(i)],
                                   recency[static_cast<std::size_t>(i)], ws.dynamic.row(i).data());
    }
    detail::fused_score(*fused, observation.data(), candidates.data(), ws.dynamic.data(), static_cast<int>(n),
                        scores.data());
    return;
  }
  if (precision == Precision::int8) {
    for (Eigen::Index i = 0; i < n; ++i) {
      env::write_candidate_input(*catalog_, observation, candidates[static_cast<std::size_t>(i)],
                                 recency[static_cast<std::size_t>(i)], ws.rows.row(i).data());
    }
    // The quantized network runs on the workspace's full, fixed-size batch so that its
    // buffers never change shape (no allocation); rows past n are ignored.
    quantized_->predict(ws.rows, ws.layers.back(), ws.quantized_workspace);
    for (Eigen::Index i = 0; i < n; ++i) scores[static_cast<std::size_t>(i)] = ws.layers.back()(i, 0);
    return;
  }
  // Float path, factorized first layer: state part once, catalog part precomputed, the
  // dynamic part per candidate; then the remaining layers as GEMMs into fixed blocks.
  const auto w1 = network_->weight(0);
  const Eigen::Map<const Eigen::Matrix<float, 1, Eigen::Dynamic>> obs(observation.data(), env::kObservationSize);
  ws.state_part.noalias() = obs * w1.leftCols(env::kObservationSize).transpose();
  ws.state_part += network_->bias(0);
  for (Eigen::Index i = 0; i < n; ++i) {
    env::write_candidate_dynamic(*catalog_, observation, candidates[static_cast<std::size_t>(i)],
                                 recency[static_cast<std::size_t>(i)], ws.dynamic.row(i).data());
  }
  const auto& sizes = network_->layer_sizes();
  const int layers = static_cast<int>(sizes.size()) - 1;
  const int rows = static_cast<int>(n);
  const int hidden = sizes[1];
  constexpr int kDynamicColumn = env::kObservationSize + env::kMealStaticFeatures;
  nn::Matrix<float>& first = ws.layers[0];
  nn::dense_layer<float>(rows, env::kCandidateDynamicFeatures, hidden, ws.dynamic.data(), env::kCandidateDynamicFeatures,
                         w1.data() + kDynamicColumn, static_cast<int>(w1.cols()), nullptr, false, first.data(),
                         static_cast<int>(first.cols()), ws.gemm);
  for (Eigen::Index i = 0; i < n; ++i) {
    first.row(i) += ws.state_part + item_part_.row(candidates[static_cast<std::size_t>(i)]);
    if (layers > 1) first.row(i) = first.row(i).cwiseMax(0.0F);
  }
  for (int l = 1; l < layers; ++l) {
    const auto& in = ws.layers[static_cast<std::size_t>(l - 1)];
    auto& out = ws.layers[static_cast<std::size_t>(l)];
    const auto w = network_->weight(l);
    nn::dense_layer<float>(rows, sizes[static_cast<std::size_t>(l)], sizes[static_cast<std::size_t>(l) + 1], in.data(),
                           static_cast<int>(in.cols()), w.data(), static_cast<int>(w.cols()), network_->bias(l).data(),
                           l + 1 < layers, out.data(), static_cast<int>(out.cols()), ws.gemm);
  }
  for (Eigen::Index i = 0; i < n; ++i) scores[static_cast<std::size_t>(i)] = ws.layers.back()(i, 0);
}

}  // namespace forkcast::policy
