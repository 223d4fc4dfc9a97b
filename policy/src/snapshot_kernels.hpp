// The serving kernel of PolicySnapshot (internal to policy/): scores the candidates of one
// state through a 2-hidden-layer candidate scorer [observation | meal static | dynamic] ->
// H1 -> H2 -> 1 with its first layer factorized per snapshot:
//
//   h1(c) = ReLU(state + items[meal(c)] + dyn(c) W1_dyn^T)      state = obs W1_obs^T + b1, once
//   h2(c) = ReLU(h1(c) W2^T + b2)                                 per request; items = the
//   score(c) = h2(c) . w3 + b3                                    catalog's static part, once
//                                                                 per snapshot
// One candidate at a time, fused: h1 stays in L1, the second layer runs over h1's non-zero
// entries only (ReLU leaves about half of them zero), as rank-1 updates of H2 accumulators
// held in registers, reading W2 transposed ([H1 x H2], 32 KiB for 128 x 64 floats, L1-resident).
//
// Two precisions. float: W1_obs, W2 and w3 in float. int8: the same weights int8 with one
// scale per output row (QuantizedMlp's quantization), converted to float in registers; the
// per-snapshot tables (items, W1_dyn) are computed from the int8 weights' values, so both
// precisions compute exactly their network, only in another order of summation.
//
// Compiled for AVX-512 and for AVX2+FMA with target attributes and chosen at run time from
// the CPU, so the default build (no -march) gets them too. No kernel (another CPU, or a
// network of another shape): PolicySnapshot keeps its generic Eigen path.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "forkcast/agent/nn.hpp"

namespace forkcast::policy::detail {

inline constexpr int kMaxFusedHidden = 512;  // H1 and H2 (padded) the fused kernel handles

enum class KernelIsa : std::uint8_t { none, avx2, avx512 };
KernelIsa best_kernel_isa() noexcept;  // what this CPU runs; FORKCAST_SCORER_ISA=avx2|none caps it
const char* isa_name(KernelIsa isa) noexcept;

struct FusedScorer {
  KernelIsa isa = KernelIsa::none;
  bool int8 = false;
  int obs = 0, dyn = 0;   // observation and dynamic feature counts
  int h1 = 0, h1p = 0;    // first hidden width, padded to 16
  int h2 = 0, h2p = 0;    // second hidden width, padded to 16
  std::vector<float> b1;        // [h1p]
  std::vector<float> w1_obs;    // float: [obs x h1p], W1_obs transposed
  std::vector<std::int8_t> q1_obs;  // int8: [obs x h1p], transposed
  std::vector<float> s1;        // int8: [h1p] per-row scales of W1
  std::vector<float> items;     // [meals x h1p]: static features x W1_static^T
  std::vector<float> w1_dyn;    // [dyn x h1p]: W1_dyn^T (int8: the int8 values times scale)
  std::vector<float> w2;        // float: [h1p x h2p], W2 transposed
  std::vector<std::int8_t> q2;  // int8: [h1p x h2p], transposed
  std::vector<float> s2;        // int8: [h2p]
  std::vector<float> b2;        // [h2p]
  std::vector<float> w3;        // float: [h2p]
  std::vector<std::int8_t> q3;  // int8: [h2p]
  float s3 = 0, b3 = 0;
};

// nullptr when the network is not [obs + static + dyn] -> H1 -> H2 -> 1 with H1, H2 <= 512 or
// the CPU has no AVX2. `meal_static` is [meals x static] row-major.
std::unique_ptr<FusedScorer> make_fused_scorer(const agent::nn::Mlp<float>& network,
                                               const agent::nn::QuantizedMlp* quantized, int obs, int dyn,
                                               std::span<const float> meal_static, int meals, KernelIsa isa);

// scores[c] for meals[c] with dynamic features dyn[c * scorer.dyn ...]. No allocation.
void fused_score(const FusedScorer& scorer, const float* observation, const std::int32_t* meals, const float* dyn,
                 int n, float* scores);

}  // namespace forkcast::policy::detail
