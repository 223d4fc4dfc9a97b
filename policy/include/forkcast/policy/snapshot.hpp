// The immutable serving snapshot of a trained MealSim candidate-scoring network: weights
// (float32 and an int8 weight-quantized copy), version and the sha256 of the file they
// came from. The service keeps a shared_ptr<const PolicySnapshot>; promoting a model loads
// a new snapshot beside the old one and swaps the pointer, so requests in flight finish
// on the snapshot they started with.
//
// Both precisions compute the first layer factorized, as training does: the catalog's
// part (static meal features x W1) once when the snapshot loads, the state's part once per
// request, and only the 5 dynamic features per candidate. For the shipped shape
// (in -> H1 -> H2 -> 1) a fused kernel then scores one candidate at a time, running the
// second layer over the first layer's non-zero activations only, in AVX-512 or AVX2+FMA
// chosen at run time (policy/src/snapshot_kernels.hpp); the int8 path reads int8 weights and
// converts them in registers. Other shapes, or a CPU without AVX2, take the generic path
// (Eigen GEMMs; int8 on full rows).
//
// score() scores every candidate of one state in one batched pass without allocating:
// each calling thread owns a ScoringWorkspace, sized once for the largest slot of the
// catalog (kMaxCandidates rows). Masked meals are simply not passed in: they score -inf
// by construction.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "forkcast/agent/nn.hpp"
#include "forkcast/env/catalog.hpp"

namespace forkcast::policy {

inline constexpr int kMaxCandidates = 256;

enum class Precision : std::uint8_t { float32, int8 };

// Per-thread scratch of PolicySnapshot::score; allocate once, reuse for every request.
struct ScoringWorkspace {
  explicit ScoringWorkspace(int input_size, const std::vector<int>& layer_sizes);
  agent::nn::Matrix<float> rows;                  // kMaxCandidates x input (int8 path)
  agent::nn::Matrix<float> dynamic;               // kMaxCandidates x dynamic features
  agent::nn::Matrix<float> state_part;            // 1 x first hidden width
  std::vector<agent::nn::Matrix<float>> layers;   // kMaxCandidates x width, per layer
  agent::nn::Workspace<float> quantized_workspace; // int8 path scratch
  agent::nn::GemmScratch<float> gemm;              // float path GEMM packing buffers
};

namespace detail {
struct FusedScorer;
}

class PolicySnapshot {
 public:
  ~PolicySnapshot();
  PolicySnapshot(const PolicySnapshot&) = delete;
  PolicySnapshot& operator=(const PolicySnapshot&) = delete;

  // Loads model.safetensors (a forkcast DQN model for MealSim) and checks that the
  // catalog it was trained on is `catalog` (sha256 in the env spec). Throws
  // CheckpointError naming the file and the problem.
  static std::shared_ptr<const PolicySnapshot> load(const std::filesystem::path& model,
                                                    const env::Catalog& catalog, std::string version);

  // Scores candidates (catalog indices with their recencies) for one observation into
  // `scores` (same length as candidates, at most kMaxCandidates). No allocation.
  void score(std::span<const float> observation, std::span<const std::int32_t> candidates,
             std::span<const float> recency, std::span<float> scores, ScoringWorkspace& workspace,
             Precision precision = Precision::float32) const;

  ScoringWorkspace make_workspace() const { return ScoringWorkspace(network_->input_size(), network_->layer_sizes()); }
  const std::string& version() const noexcept { return version_; }
  const std::string& sha256() const noexcept { return sha256_; }
  const agent::nn::Mlp<float>& network() const noexcept { return *network_; }
  // "avx512", "avx2" or "generic": how score() runs this precision on this CPU.
  const char* kernel(Precision precision) const noexcept;

 private:
  PolicySnapshot() = default;
  const env::Catalog* catalog_ = nullptr;
  std::unique_ptr<agent::nn::Mlp<float>> network_;
  std::unique_ptr<agent::nn::QuantizedMlp> quantized_;
  agent::nn::Matrix<float> item_part_;  // [catalog meals x first hidden width], static x W1
  std::unique_ptr<detail::FusedScorer> fused_float_, fused_int8_;  // null: generic path
  std::string version_, sha256_;
};

}  // namespace forkcast::policy
