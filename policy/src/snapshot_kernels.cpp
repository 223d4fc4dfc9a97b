// GCC 12's -Wmaybe-uninitialized false positive inside its own AVX-512 intrinsics (bug 105593,
// as in agent/nn.hpp): keyed to the header's lines, so silenced for this include only.
#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define FORKCAST_FUSED_KERNELS 1
#endif

#include "snapshot_kernels.hpp"

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace forkcast::policy::detail {

namespace {

int pad16(int n) { return (n + 15) / 16 * 16; }

#if defined(FORKCAST_FUSED_KERNELS)
// ---- AVX-512 ------------------------------------------------------------------------------
// C = h2p / 16 output vectors; two sets of accumulators (even and odd non-zero inputs) so that
// 2C independent FMA chains hide the FMA latency.

#define FORKCAST_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma,popcnt")))

template <bool Q>
FORKCAST_AVX512 inline __m512 load16(const float* w, const std::int8_t* q, std::size_t at) {
  if constexpr (Q) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + at))));
  } else {
    return _mm512_loadu_ps(w + at);
  }
}

template <int C, bool Q, int D>
FORKCAST_AVX512 void score_avx512(const FusedScorer& f, const float* observation, const std::int32_t* meals,
                                  const float* dyn, int n, float* scores) {
  alignas(64) float state[kMaxFusedHidden];
  alignas(64) float h[kMaxFusedHidden];
  alignas(64) std::int32_t nonzero[kMaxFusedHidden];
  const int h1p = f.h1p;
  const auto h2p = static_cast<std::size_t>(f.h2p);
  const __m512 zero = _mm512_setzero_ps();

  // The state's part of the first layer, once: b1 + obs W1_obs^T.
  for (int j = 0; j < h1p; j += 16) {
    __m512 a0 = zero, a1 = zero;
    int k = 0;
    for (; k + 1 < f.obs; k += 2) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(observation[k]),
                           load16<Q>(f.w1_obs.data(), f.q1_obs.data(), static_cast<std::size_t>(k * h1p + j)), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(observation[k + 1]),
                           load16<Q>(f.w1_obs.data(), f.q1_obs.data(), static_cast<std::size_t>((k + 1) * h1p + j)), a1);
    }
    if (k < f.obs) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(observation[k]),
                           load16<Q>(f.w1_obs.data(), f.q1_obs.data(), static_cast<std::size_t>(k * h1p + j)), a0);
    }
    __m512 s = _mm512_add_ps(a0, a1);
    if constexpr (Q) s = _mm512_mul_ps(s, _mm512_loadu_ps(f.s1.data() + j));
    _mm512_store_ps(state + j, _mm512_add_ps(s, _mm512_loadu_ps(f.b1.data() + j)));
  }

  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int c = 0; c < n; ++c) {
    // First layer: state + the meal's precomputed part + its dynamic features; ReLU; and the
    // indices of the non-zero activations.
    const float* item = f.items.data() + static_cast<std::size_t>(meals[c]) * static_cast<std::size_t>(h1p);
    const float* d = dyn + static_cast<std::size_t>(c) * static_cast<std::size_t>(D);
    int count = 0;
    for (int j = 0; j < h1p; j += 16) {
      __m512 v = _mm512_add_ps(_mm512_load_ps(state + j), _mm512_loadu_ps(item + j));
#pragma GCC unroll 8
      for (int t = 0; t < D; ++t) {
        v = _mm512_fmadd_ps(_mm512_set1_ps(d[t]), _mm512_loadu_ps(f.w1_dyn.data() + t * h1p + j), v);
      }
      v = _mm512_max_ps(v, zero);
      _mm512_store_ps(h + j, v);
      const __mmask16 m = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
      _mm512_mask_compressstoreu_epi32(nonzero + count, m, _mm512_add_epi32(iota, _mm512_set1_epi32(j)));
      count += __builtin_popcount(m);
    }
    // Second layer over the non-zero activations only.
    __m512 acc0[C], acc1[C];
#pragma GCC unroll 8
    for (int i = 0; i < C; ++i) acc0[i] = acc1[i] = zero;
    int t = 0;
    for (; t + 1 < count; t += 2) {
      const auto k0 = static_cast<std::size_t>(nonzero[t]);
      const auto k1 = static_cast<std::size_t>(nonzero[t + 1]);
      const __m512 x0 = _mm512_set1_ps(h[k0]);
      const __m512 x1 = _mm512_set1_ps(h[k1]);
#pragma GCC unroll 8
      for (int i = 0; i < C; ++i) {
        acc0[i] = _mm512_fmadd_ps(x0, load16<Q>(f.w2.data(), f.q2.data(), k0 * h2p + 16 * i), acc0[i]);
        acc1[i] = _mm512_fmadd_ps(x1, load16<Q>(f.w2.data(), f.q2.data(), k1 * h2p + 16 * i), acc1[i]);
      }
    }
    if (t < count) {
      const auto k0 = static_cast<std::size_t>(nonzero[t]);
      const __m512 x0 = _mm512_set1_ps(h[k0]);
#pragma GCC unroll 8
      for (int i = 0; i < C; ++i) {
        acc0[i] = _mm512_fmadd_ps(x0, load16<Q>(f.w2.data(), f.q2.data(), k0 * h2p + 16 * i), acc0[i]);
      }
    }
    // Bias, ReLU and the output layer.
    __m512 out = zero;
#pragma GCC unroll 8
    for (int i = 0; i < C; ++i) {
      __m512 z = _mm512_add_ps(acc0[i], acc1[i]);
      if constexpr (Q) z = _mm512_mul_ps(z, _mm512_loadu_ps(f.s2.data() + 16 * i));
      z = _mm512_max_ps(_mm512_add_ps(z, _mm512_loadu_ps(f.b2.data() + 16 * i)), zero);
      out = _mm512_fmadd_ps(z, load16<Q>(f.w3.data(), f.q3.data(), static_cast<std::size_t>(16 * i)), out);
    }
    float score = _mm512_reduce_add_ps(out);
    if constexpr (Q) score *= f.s3;
    scores[c] = score + f.b3;
  }
}

// ---- AVX2 + FMA ---------------------------------------------------------------------------
// C = h2p / 8 output vectors (at most 8: all 16 registers are then in use), one set.

#define FORKCAST_AVX2 __attribute__((target("avx2,fma,popcnt")))

template <bool Q>
FORKCAST_AVX2 inline __m256 load8(const float* w, const std::int8_t* q, std::size_t at) {
  if constexpr (Q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + at))));
  } else {
    return _mm256_loadu_ps(w + at);
  }
}

template <int C, bool Q, int D>
FORKCAST_AVX2 void score_avx2(const FusedScorer& f, const float* observation, const std::int32_t* meals,
                              const float* dyn, int n, float* scores) {
  alignas(32) float state[kMaxFusedHidden];
  alignas(32) float h[kMaxFusedHidden];
  alignas(32) std::int32_t nonzero[kMaxFusedHidden];
  const int h1p = f.h1p;
  const auto h2p = static_cast<std::size_t>(f.h2p);
  const __m256 zero = _mm256_setzero_ps();

  for (int j = 0; j < h1p; j += 8) {
    __m256 a0 = zero, a1 = zero;
    int k = 0;
    for (; k + 1 < f.obs; k += 2) {
      a0 = _mm256_fmadd_ps(_mm256_set1_ps(observation[k]),
                           load8<Q>(f.w1_obs.data(), f.q1_obs.data(), static_cast<std::size_t>(k * h1p + j)), a0);
      a1 = _mm256_fmadd_ps(_mm256_set1_ps(observation[k + 1]),
                           load8<Q>(f.w1_obs.data(), f.q1_obs.data(), static_cast<std::size_t>((k + 1) * h1p + j)), a1);
    }
    if (k < f.obs) {
      a0 = _mm256_fmadd_ps(_mm256_set1_ps(observation[k]),
                           load8<Q>(f.w1_obs.data(), f.q1_obs.data(), static_cast<std::size_t>(k * h1p + j)), a0);
    }
    __m256 s = _mm256_add_ps(a0, a1);
    if constexpr (Q) s = _mm256_mul_ps(s, _mm256_loadu_ps(f.s1.data() + j));
    _mm256_store_ps(state + j, _mm256_add_ps(s, _mm256_loadu_ps(f.b1.data() + j)));
  }

  for (int c = 0; c < n; ++c) {
    const float* item = f.items.data() + static_cast<std::size_t>(meals[c]) * static_cast<std::size_t>(h1p);
    const float* d = dyn + static_cast<std::size_t>(c) * static_cast<std::size_t>(D);
    int count = 0;
    for (int j = 0; j < h1p; j += 8) {
      __m256 v = _mm256_add_ps(_mm256_load_ps(state + j), _mm256_loadu_ps(item + j));
#pragma GCC unroll 8
      for (int t = 0; t < D; ++t) {
        v = _mm256_fmadd_ps(_mm256_set1_ps(d[t]), _mm256_loadu_ps(f.w1_dyn.data() + t * h1p + j), v);
      }
      v = _mm256_max_ps(v, zero);
      _mm256_store_ps(h + j, v);
      auto m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
      while (m != 0) {
        nonzero[count++] = j + __builtin_ctz(m);
        m &= m - 1;
      }
    }
    __m256 acc[C];
#pragma GCC unroll 8
    for (int i = 0; i < C; ++i) acc[i] = zero;
    for (int t = 0; t < count; ++t) {
      const auto k = static_cast<std::size_t>(nonzero[t]);
      const __m256 x = _mm256_set1_ps(h[k]);
#pragma GCC unroll 8
      for (int i = 0; i < C; ++i) acc[i] = _mm256_fmadd_ps(x, load8<Q>(f.w2.data(), f.q2.data(), k * h2p + 8 * i), acc[i]);
    }
    __m256 out = zero;
#pragma GCC unroll 8
    for (int i = 0; i < C; ++i) {
      __m256 z = acc[i];
      if constexpr (Q) z = _mm256_mul_ps(z, _mm256_loadu_ps(f.s2.data() + 8 * i));
      z = _mm256_max_ps(_mm256_add_ps(z, _mm256_loadu_ps(f.b2.data() + 8 * i)), zero);
      out = _mm256_fmadd_ps(z, load8<Q>(f.w3.data(), f.q3.data(), static_cast<std::size_t>(8 * i)), out);
    }
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(out), _mm256_extractf128_ps(out, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    float score = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
    if constexpr (Q) score *= f.s3;
    scores[c] = score + f.b3;
  }
}

using Kernel = void (*)(const FusedScorer&, const float*, const std::int32_t*, const float*, int, float*);

// MealSim's candidate dynamic features; a scorer with another count takes the generic path.
constexpr int kDyn = 5;

template <bool Q>
Kernel pick(KernelIsa isa, int h2p, int dyn) {
  if (dyn != kDyn) return nullptr;
  if (isa == KernelIsa::avx512) {
    switch (h2p / 16) {
      case 1: return score_avx512<1, Q, kDyn>;
      case 2: return score_avx512<2, Q, kDyn>;
      case 3: return score_avx512<3, Q, kDyn>;
      case 4: return score_avx512<4, Q, kDyn>;
      case 5: return score_avx512<5, Q, kDyn>;
      case 6: return score_avx512<6, Q, kDyn>;
      case 7: return score_avx512<7, Q, kDyn>;
      case 8: return score_avx512<8, Q, kDyn>;
      default: return nullptr;
    }
  }
  if (isa == KernelIsa::avx2) {
    switch (h2p / 8) {
      case 2: return score_avx2<2, Q, kDyn>;
      case 4: return score_avx2<4, Q, kDyn>;
      case 6: return score_avx2<6, Q, kDyn>;
      case 8: return score_avx2<8, Q, kDyn>;
      default: return nullptr;
    }
  }
  return nullptr;
}

Kernel kernel_of(const FusedScorer& f) {
  return f.int8 ? pick<true>(f.isa, f.h2p, f.dyn) : pick<false>(f.isa, f.h2p, f.dyn);
}

#else
// Not x86-64: no fused kernel; PolicySnapshot keeps its generic path.
using Kernel = void (*)(const FusedScorer&, const float*, const std::int32_t*, const float*, int, float*);
Kernel kernel_of(const FusedScorer&) { return nullptr; }
#endif

}  // namespace

KernelIsa best_kernel_isa() noexcept {
  KernelIsa best = KernelIsa::none;
#if defined(FORKCAST_FUSED_KERNELS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = KernelIsa::avx2;
  if (best == KernelIsa::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")) {
    best = KernelIsa::avx512;
  }
#endif
  // A cap for benchmarks and tests of the narrower kernels on a wider CPU.
  if (const char* cap = std::getenv("FORKCAST_SCORER_ISA")) {
    const std::string_view c(cap);
    if (c == "none") best = KernelIsa::none;
    if (c == "avx2" && best == KernelIsa::avx512) best = KernelIsa::avx2;
  }
  return best;
}

const char* isa_name(KernelIsa isa) noexcept {
  switch (isa) {
    case KernelIsa::avx512: return "avx512";
    case KernelIsa::avx2: return "avx2";
    default: return "none";
  }
}

std::unique_ptr<FusedScorer> make_fused_scorer(const agent::nn::Mlp<float>& network,
                                               const agent::nn::QuantizedMlp* quantized, int obs, int dyn,
                                               std::span<const float> meal_static, int meals, KernelIsa isa) {
  const auto& sizes = network.layer_sizes();
  if (isa == KernelIsa::none || sizes.size() != 4 || sizes[3] != 1 || obs <= 0 || dyn < 0 || meals <= 0) return nullptr;
  const int in = sizes[0];
  const int statics = in - obs - dyn;
  if (statics < 0 || meal_static.size() != static_cast<std::size_t>(meals) * static_cast<std::size_t>(statics)) {
    return nullptr;
  }
  auto f = std::make_unique<FusedScorer>();
  f->isa = isa;
  f->int8 = quantized != nullptr;
  f->obs = obs;
  f->dyn = dyn;
  f->h1 = sizes[1];
  f->h2 = sizes[2];
  f->h1p = pad16(f->h1);
  f->h2p = pad16(f->h2);
  if (f->h1p > kMaxFusedHidden || f->h2p > kMaxFusedHidden || kernel_of(*f) == nullptr) return nullptr;
  const auto h1p = static_cast<std::size_t>(f->h1p);
  const auto h2p = static_cast<std::size_t>(f->h2p);
  const auto w1 = network.weight(0);
  const auto w2 = network.weight(1);
  const auto w3 = network.weight(2);

  // W1 as the kernel will multiply it: float, or the int8 values times their row's scale.
  std::vector<float> w1t(static_cast<std::size_t>(in) * h1p, 0.0F);  // [in x h1p]
  if (quantized != nullptr) {
    const auto q1 = quantized->quantized_weight(0);
    const auto s1 = quantized->scales(0);
    f->s1.assign(h1p, 0.0F);
    f->q1_obs.assign(static_cast<std::size_t>(obs) * h1p, 0);
    for (int j = 0; j < f->h1; ++j) f->s1[static_cast<std::size_t>(j)] = s1[static_cast<std::size_t>(j)];
    for (int k = 0; k < in; ++k) {
      for (int j = 0; j < f->h1; ++j) {
        const auto at = static_cast<std::size_t>(k) * h1p + static_cast<std::size_t>(j);
        w1t[at] = static_cast<float>(q1(k, j)) * s1[static_cast<std::size_t>(j)];
        if (k < obs) f->q1_obs[at] = q1(k, j);
      }
    }
  } else {
    f->w1_obs.assign(static_cast<std::size_t>(obs) * h1p, 0.0F);
    for (int k = 0; k < in; ++k) {
      for (int j = 0; j < f->h1; ++j) {
        const auto at = static_cast<std::size_t>(k) * h1p + static_cast<std::size_t>(j);
        w1t[at] = w1(j, k);
        if (k < obs) f->w1_obs[at] = w1(j, k);
      }
    }
  }
  f->b1.assign(h1p, 0.0F);
  for (int j = 0; j < f->h1; ++j) f->b1[static_cast<std::size_t>(j)] = network.bias(0)(j);
  f->w1_dyn.assign(static_cast<std::size_t>(dyn) * h1p, 0.0F);
  std::memcpy(f->w1_dyn.data(), w1t.data() + static_cast<std::size_t>(obs + statics) * h1p,
              static_cast<std::size_t>(dyn) * h1p * sizeof(float));
  // The catalog's part of the first layer, once per snapshot (double sums, rounded once).
  f->items.assign(static_cast<std::size_t>(meals) * h1p, 0.0F);
  for (int m = 0; m < meals; ++m) {
    for (int j = 0; j < f->h1; ++j) {
      double sum = 0;
      for (int s = 0; s < statics; ++s) {
        sum += static_cast<double>(meal_static[static_cast<std::size_t>(m) * static_cast<std::size_t>(statics) +
                                               static_cast<std::size_t>(s)]) *
               static_cast<double>(w1t[static_cast<std::size_t>(obs + s) * h1p + static_cast<std::size_t>(j)]);
      }
      f->items[static_cast<std::size_t>(m) * h1p + static_cast<std::size_t>(j)] = static_cast<float>(sum);
    }
  }
  f->b2.assign(h2p, 0.0F);
  for (int j = 0; j < f->h2; ++j) f->b2[static_cast<std::size_t>(j)] = network.bias(1)(j);
  f->b3 = network.bias(2)(0);
  if (quantized != nullptr) {
    const auto q2 = quantized->quantized_weight(1);
    const auto s2 = quantized->scales(1);
    const auto q3 = quantized->quantized_weight(2);
    f->q2.assign(h1p * h2p, 0);
    f->s2.assign(h2p, 0.0F);
    f->q3.assign(h2p, 0);
    for (int k = 0; k < f->h1; ++k) {
      for (int j = 0; j < f->h2; ++j) f->q2[static_cast<std::size_t>(k) * h2p + static_cast<std::size_t>(j)] = q2(k, j);
    }
    for (int j = 0; j < f->h2; ++j) {
      f->s2[static_cast<std::size_t>(j)] = s2[static_cast<std::size_t>(j)];
      f->q3[static_cast<std::size_t>(j)] = q3(j, 0);
    }
    f->s3 = quantized->scales(2)[0];
  } else {
    f->w2.assign(h1p * h2p, 0.0F);
    f->w3.assign(h2p, 0.0F);
    for (int k = 0; k < f->h1; ++k) {
      for (int j = 0; j < f->h2; ++j) f->w2[static_cast<std::size_t>(k) * h2p + static_cast<std::size_t>(j)] = w2(j, k);
    }
    for (int j = 0; j < f->h2; ++j) f->w3[static_cast<std::size_t>(j)] = w3(0, j);
  }
  return f;
}

void fused_score(const FusedScorer& scorer, const float* observation, const std::int32_t* meals, const float* dyn,
                 int n, float* scores) {
  kernel_of(scorer)(scorer, observation, meals, dyn, n, scores);
}

}  // namespace forkcast::policy::detail
