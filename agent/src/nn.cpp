// Kernels of agent/nn.hpp. The numbers behind every choice made here are in
// docs/performance.md (the DQN's kernels) and come from bench/agent/nn_bench.cpp.
//
// GEMM. Three products carry a dense layer, all on row-major buffers:
//   forward      Y[B x out]  = X[B x in] W^T + b      gemm(no,  yes)
//   weight grad  dW[out x in] += dY^T X                gemm(yes, no)
//   input grad   dX[B x in]  = dY W                    gemm(no,  no)
// Each runs on Eigen's blocked kernel (GEBP) or on OpenBLAS's cblas_?gemm, per shape
// (choose_gemm_backend). Eigen is called through its internal GEMM driver
// (Eigen::internal::general_matrix_matrix_product, stable across Eigen 3.4.x) rather than
// through `C.noalias() += A * B`, because the expression path heap-allocates its packing
// buffers on every call once they pass EIGEN_STACK_ALLOCATION_LIMIT (128 KiB), which the
// 256-wide layers do; here they live in a caller-owned GemmScratch instead. Products with one
// row or one column (batch-1 inference, a one-output head) go through the expression path,
// which Eigen turns into a GEMV that needs no packing at all.
//
// Buffers that depend on the batch keep their capacity: a smaller batch uses the first B rows of
// a row-major buffer (which are contiguous), so alternating batch sizes never reallocates.
#include "forkcast/agent/nn.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace forkcast::agent::nn {
namespace {

using Index = Eigen::Index;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;
template <class T>
using StridedMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;

std::string shape_string(Index rows, Index cols) {
  return "[" + std::to_string(rows) + " x " + std::to_string(cols) + "]";
}

std::string sizes_string(const std::vector<int>& sizes) {
  std::string s;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i > 0) s += '-';
    s += std::to_string(sizes[i]);
  }
  return s;
}

// A capacity buffer: at least `elements` values, grown (never shrunk) on demand. The
// matrix's own shape is meaningless; callers map the shape they need onto data().
template <class T>
T* reserve(Matrix<T>& buffer, Index elements) {
  if (buffer.size() < elements) buffer.resize(1, elements);
  return buffer.data();
}

// ---------------------------------------------------------------------------------------------
// GEMM

// Eigen's level-3 blocking with its packing buffers in caller-owned scratch. The block sizes
// are the ones Eigen's own product computes for the same shape (gemm_blocking_space with a
// row-major destination, which Eigen runs as the transposed column-major product).
template <class T>
class ScratchBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  ScratchBlocking(Index m, Index n, Index k, GemmScratch<T>& scratch) {
    this->m_mc = n;
    this->m_nc = m;
    this->m_kc = k;
    Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Index{1});
    // The packing and GEBP kernels use aligned packet loads: B's block starts aligned too.
    constexpr Index kAlign = EIGEN_DEFAULT_ALIGN_BYTES / static_cast<Index>(sizeof(T));
    const Index size_a = (this->m_mc * this->m_kc + kAlign - 1) / kAlign * kAlign;
    const Index size_b = this->m_kc * this->m_nc;
    if (scratch.buffer.size() < size_a + size_b) scratch.buffer.resize(size_a + size_b);
    this->m_blockA = scratch.buffer.data();
    this->m_blockB = scratch.buffer.data() + size_a;
  }
};

// C += op(A) op(B) on Eigen's GEBP kernel. LhsOrder/RhsOrder are the storage orders of op(A)
// [m x k] and op(B) [k x n]: a transposed row-major matrix is a column-major one.
template <class T, int LhsOrder, int RhsOrder>
void eigen_gebp(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T* c, Index ldc,
                GemmScratch<T>& scratch) {
  using Product = Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                                 Eigen::RowMajor, 1>;
  ScratchBlocking<T> blocking(m, n, k, scratch);
  Product::run(m, n, k, a, lda, b, ldb, c, 1, ldc, T(1), blocking, nullptr);
}

// C += op(A) op(B) through Eigen's product expression: GEMV when m or n is 1, the
// coefficient-wise product for tiny shapes. Never used for shapes that would need packing.
template <class T>
void eigen_expression(bool ta, bool tb, Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb,
                      T* c, Index ldc) {
  StridedMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (!ta && !tb) {
    C.noalias() += ConstStridedMap<T>(a, m, k, Eigen::OuterStride<>(lda)) *
                   ConstStridedMap<T>(b, k, n, Eigen::OuterStride<>(ldb));
  } else if (!ta && tb) {
    C.noalias() += ConstStridedMap<T>(a, m, k, Eigen::OuterStride<>(lda)) *
                   ConstStridedMap<T>(b, n, k, Eigen::OuterStride<>(ldb)).transpose();
  } else if (ta && !tb) {
    C.noalias() += ConstStridedMap<T>(a, k, m, Eigen::OuterStride<>(lda)).transpose() *
                   ConstStridedMap<T>(b, k, n, Eigen::OuterStride<>(ldb));
  } else {
    C.noalias() += ConstStridedMap<T>(a, k, m, Eigen::OuterStride<>(lda)).transpose() *
                   ConstStridedMap<T>(b, n, k, Eigen::OuterStride<>(ldb)).transpose();
  }
}

void blas_gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
               float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0F, a, lda, b,
              ldb, beta, c, ldc);
}

void blas_gemm(bool ta, bool tb, int m, int n, int k, const double* a, int lda, const double* b, int ldb,
               double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0, a, lda, b,
              ldb, beta, c, ldc);
}

// C = beta * C over an [m x n] block with leading dimension ldc; beta == 0 overwrites.
template <class T>
void scale_block(T* c, Index m, Index n, Index ldc, T beta) {
  if (beta == T(1)) return;
  StridedMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) {
    C.setZero();
  } else {
    C *= beta;
  }
}

// Eigen's coefficient-based product threshold (EIGEN_GEMM_TO_COEFFBASED_THRESHOLD).
constexpr Index kLazyProductThreshold = 20;

// ---------------------------------------------------------------------------------------------
// Dense layers

// Y[B x out] = X W^T + b (ReLU'd when `relu`), Y with leading dimension `out`.
template <class T>
void dense_forward(const T* x, Index ldx, Index batch, int in, int out, const T* w, const T* bias, T* y, bool relu,
                   GemmScratch<T>& scratch, GemmBackend backend) {
  StridedMap<T> Y(y, batch, out, Eigen::OuterStride<>(out));
  // The bias is written first and the product accumulated onto it: one pass over Y fewer.
  Y.rowwise() = Eigen::Map<const RowVector<T>>(bias, out);
  gemm<T>(false, true, static_cast<int>(batch), out, in, x, static_cast<int>(ldx), w, in, T(1), y, out, scratch,
          backend);
  if (relu) Y = Y.cwiseMax(T(0));
}

template <class T>
void check_input(const ConstMatrixRef<T>& x, int in, const char* what) {
  if (x.cols() != in || x.rows() < 1) {
    throw std::invalid_argument(std::string(what) + ": input " + shape_string(x.rows(), x.cols()) +
                                " does not match [B x " + std::to_string(in) + "], B >= 1");
  }
}

// The FMA torch's CPU kernels use for `add(alpha)` and `addcmul` (its vectorised paths fuse them),
// so that Adam matches torch.optim.Adam bit for bit. Without FMA hardware the float version is
// emulated in double: the product is exact there, leaving one double rounding that differs
// from a true FMA only in rare ties.
template <class T>
inline T fused_multiply_add(T a, T b, T c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  if constexpr (std::is_same_v<T, float>) {
    return static_cast<float>(static_cast<double>(a) * static_cast<double>(b) + static_cast<double>(c));
  } else {
    return std::fma(a, b, c);
  }
#endif
}

}  // namespace

// -----------------------------------------------------------------------------------------------
// GEMM

// The per-shape choice, from BM_Gemm of bench/agent/nn_bench.cpp on the development machine (AMD
// EPYC Zen 5, one core; OpenBLAS 0.3.21 picks its Haswell AVX2 kernels there). Tables in
// docs/performance.md (the DQN's kernels), "Kernel choice". What decides is how wide Eigen's kernel was compiled:
//  - AVX-512 (-march=native here): Eigen's GEBP runs the 256-wide layers at 150-165 GFLOP/s
//    against OpenBLAS's 100-110, and wins every layer of both nets, except where the packed
//    panel is nearly empty: depth <= 2 (dX of a 2-action head) and dW of a layer with <= 8
//    inputs (CartPole's 4 observations), where OpenBLAS's small-size path is 1.5x faster.
//  - AVX2 + FMA: the two kernels tie within 5 %; OpenBLAS is ahead from ~4 M multiply-adds
//    (every 256-wide product) and on the same thin shapes, Eigen on the rest.
//  - SSE only (the default build without FORKCAST_NATIVE): Eigen has 4-wide registers and no
//    FMA, OpenBLAS dispatches at run time to AVX2 and is 2.5x faster on every packed shape.
// Products with one row or column never get here (gemm() runs them as Eigen GEMVs).
GemmBackend choose_gemm_backend(bool transpose_a, bool transpose_b, int m, int n, int k) noexcept {
  (void)transpose_b;
  const bool thin = k <= 2 || (transpose_a && n <= 8);
#if defined(EIGEN_VECTORIZE_AVX512)
  (void)m;
  return thin ? GemmBackend::blas : GemmBackend::eigen;
#elif defined(EIGEN_VECTORIZE_AVX2) && defined(EIGEN_VECTORIZE_FMA)
  constexpr double kLargeMultiplyAdds = 4.0 * 1024 * 1024;
  const double multiply_adds = static_cast<double>(m) * n * k;
  return thin || multiply_adds >= kLargeMultiplyAdds ? GemmBackend::blas : GemmBackend::eigen;
#else
  (void)m;
  (void)n;
  (void)k;
  (void)thin;
  return GemmBackend::blas;
#endif
}

template <class T>
void gemm(bool transpose_a, bool transpose_b, int m, int n, int k, const T* a, int lda, const T* b, int ldb, T beta,
          T* c, int ldc, GemmScratch<T>& scratch, GemmBackend backend) {
  if (m < 0 || n < 0 || k < 0) {
    throw std::invalid_argument("gemm: negative size m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                " k=" + std::to_string(k));
  }
  const int a_cols = transpose_a ? m : k;
  const int b_cols = transpose_b ? k : n;
  if (lda < std::max(1, a_cols) || ldb < std::max(1, b_cols) || ldc < std::max(1, n)) {
    throw std::invalid_argument("gemm: leading dimensions lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) +
                                " ldc=" + std::to_string(ldc) + " are shorter than rows of " +
                                std::to_string(a_cols) + ", " + std::to_string(b_cols) + ", " + std::to_string(n));
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {
    scale_block(c, m, n, ldc, beta);
    return;
  }
  const bool vector_product = m == 1 || n == 1 || m + n + k < kLazyProductThreshold;
  if (backend == GemmBackend::automatic) {
    backend = std::is_same_v<T, float> ? choose_gemm_backend(transpose_a, transpose_b, m, n, k) : GemmBackend::eigen;
  }
  if (backend == GemmBackend::blas && !vector_product) {
    blas_gemm(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  scale_block(c, m, n, ldc, beta);  // Eigen's kernels accumulate into C
  if (vector_product) {
    eigen_expression(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc);
  } else if (!transpose_a && !transpose_b) {
    eigen_gebp<T, Eigen::RowMajor, Eigen::RowMajor>(m, n, k, a, lda, b, ldb, c, ldc, scratch);
  } else if (!transpose_a && transpose_b) {
    eigen_gebp<T, Eigen::RowMajor, Eigen::ColMajor>(m, n, k, a, lda, b, ldb, c, ldc, scratch);
  } else if (transpose_a && !transpose_b) {
    eigen_gebp<T, Eigen::ColMajor, Eigen::RowMajor>(m, n, k, a, lda, b, ldb, c, ldc, scratch);
  } else {
    eigen_gebp<T, Eigen::ColMajor, Eigen::ColMajor>(m, n, k, a, lda, b, ldb, c, ldc, scratch);
  }
}

void set_blas_threads(int threads) {
  if (threads < 1) throw std::invalid_argument("blas threads: " + std::to_string(threads) + " must be >= 1");
  openblas_set_num_threads(threads);
}

int blas_threads() noexcept { return openblas_get_num_threads(); }

// -----------------------------------------------------------------------------------------------
// Mlp

template <class T>
Mlp<T>::Mlp(std::vector<int> layer_sizes, std::uint64_t seed, Init init) : sizes_(std::move(layer_sizes)) {
  if (sizes_.size() < 2) {
    throw std::invalid_argument("layer_sizes: " + std::to_string(sizes_.size()) +
                                " entries, need at least 2 ({in, ..., out})");
  }
  for (std::size_t i = 0; i < sizes_.size(); ++i) {
    if (sizes_[i] <= 0) {
      throw std::invalid_argument("layer_sizes[" + std::to_string(i) + "]: " + std::to_string(sizes_[i]) +
                                  " must be > 0");
    }
  }
  const int layers = num_layers();
  std::size_t offset = 0;
  for (int l = 0; l < layers; ++l) {
    const auto in = static_cast<std::size_t>(sizes_[l]);
    const auto out = static_cast<std::size_t>(sizes_[l + 1]);
    weight_offset_.push_back(offset);
    offset += out * in;
    bias_offset_.push_back(offset);
    offset += out;
  }
  params_.assign(offset, T(0));
  grads_.assign(offset, T(0));

  // Draw order (a checkpoint-free way to rebuild a network from its seed): one 64-bit draw of
  // std::mt19937_64(seed) per weight, layer 0 first, each layer's [out x in] weight in row-major
  // order; u = (draw >> 11) * 2^-53 is uniform on [0, 1) with 53 bits and w = bound * (2u - 1)
  // is computed in double, then rounded to T. Biases are zero and take no draw. Written out
  // rather than std::uniform_real_distribution, whose algorithm the standard leaves open.
  std::mt19937_64 rng(seed);
  for (int l = 0; l < layers; ++l) {
    const double fan_in = sizes_[l];
    const double fan_out = sizes_[l + 1];
    const double bound = init == Init::he_uniform ? std::sqrt(6.0 / fan_in) : std::sqrt(6.0 / (fan_in + fan_out));
    const std::size_t count = static_cast<std::size_t>(sizes_[l]) * static_cast<std::size_t>(sizes_[l + 1]);
    T* w = params_.data() + weight_offset_[l];
    for (std::size_t i = 0; i < count; ++i) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      w[i] = static_cast<T>(bound * (2.0 * u - 1.0));
    }
  }
  acts_.resize(sizes_.size());
  deltas_.resize(static_cast<std::size_t>(layers));
}

template <class T>
const std::vector<int>& Mlp<T>::layer_sizes() const noexcept {
  return sizes_;
}
template <class T>
int Mlp<T>::input_size() const noexcept {
  return sizes_.front();
}
template <class T>
int Mlp<T>::output_size() const noexcept {
  return sizes_.back();
}
template <class T>
std::size_t Mlp<T>::num_parameters() const noexcept {
  return params_.size();
}
template <class T>
std::span<T> Mlp<T>::parameters() noexcept {
  return params_;
}
template <class T>
std::span<const T> Mlp<T>::parameters() const noexcept {
  return params_;
}
template <class T>
std::span<T> Mlp<T>::gradients() noexcept {
  return grads_;
}
template <class T>
std::span<const T> Mlp<T>::gradients() const noexcept {
  return grads_;
}
template <class T>
void Mlp<T>::zero_grad() noexcept {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <class T>
void Mlp<T>::check_layer(int layer) const {
  if (layer < 0 || layer >= num_layers()) {
    throw std::out_of_range("layer " + std::to_string(layer) + " is out of range 0.." +
                            std::to_string(num_layers() - 1) + " of an Mlp " + sizes_string(sizes_));
  }
}

template <class T>
Eigen::Map<Matrix<T>> Mlp<T>::weight(int layer) {
  check_layer(layer);
  return {params_.data() + weight_offset_[layer], sizes_[layer + 1], sizes_[layer]};
}
template <class T>
Eigen::Map<const Matrix<T>> Mlp<T>::weight(int layer) const {
  check_layer(layer);
  return {params_.data() + weight_offset_[layer], sizes_[layer + 1], sizes_[layer]};
}
template <class T>
Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> Mlp<T>::bias(int layer) {
  check_layer(layer);
  return {params_.data() + bias_offset_[layer], sizes_[layer + 1]};
}
template <class T>
Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> Mlp<T>::bias(int layer) const {
  check_layer(layer);
  return {params_.data() + bias_offset_[layer], sizes_[layer + 1]};
}

template <class T>
const Matrix<T>& Mlp<T>::forward(const ConstMatrixRef<T>& x) {
  check_input<T>(x, input_size(), "Mlp::forward");
  const Index batch = x.rows();
  const int layers = num_layers();
  // Copied, not referenced: backward() needs the input and the caller may reuse its buffer.
  StridedMap<T>(reserve(acts_[0], batch * input_size()), batch, input_size(), Eigen::OuterStride<>(input_size())) = x;
  for (int l = 0; l < layers; ++l) {
    const int in = sizes_[l];
    const int out = sizes_[l + 1];
    const bool last = l + 1 == layers;
    Matrix<T>& y = acts_[l + 1];
    if (last && (y.rows() != batch || y.cols() != out)) y.resize(batch, out);
    T* y_data = last ? y.data() : reserve(y, batch * out);
    dense_forward<T>(acts_[l].data(), in, batch, in, out, params_.data() + weight_offset_[l],
                     params_.data() + bias_offset_[l], y_data, !last, gemm_scratch_, backend_);
  }
  batch_ = batch;
  return acts_.back();
}

template <class T>
const Matrix<T>& Mlp<T>::backward_impl(const ConstMatrixRef<T>& grad_output, bool input_gradient) {
  if (batch_ == 0) throw std::logic_error("Mlp::backward: no forward() to differentiate");
  if (grad_output.rows() != batch_ || grad_output.cols() != output_size()) {
    throw std::invalid_argument("Mlp::backward: grad_output " + shape_string(grad_output.rows(), grad_output.cols()) +
                                " does not match the last forward's output " + shape_string(batch_, output_size()));
  }
  const Index batch = batch_;
  const T* delta = grad_output.data();
  Index ld_delta = grad_output.outerStride();
  for (int l = num_layers() - 1; l >= 0; --l) {
    const int in = sizes_[l];
    const int out = sizes_[l + 1];
    const T* a = acts_[l].data();
    const T* w = params_.data() + weight_offset_[l];
    // dW += dY^T A and db += column sums of dY: gradients accumulate, as in PyTorch.
    gemm<T>(true, false, out, in, static_cast<int>(batch), delta, static_cast<int>(ld_delta), a, in, T(1),
            grads_.data() + weight_offset_[l], in, gemm_scratch_, backend_);
    Eigen::Map<RowVector<T>> db(grads_.data() + bias_offset_[l], out);
    for (Index r = 0; r < batch; ++r) db += Eigen::Map<const RowVector<T>>(delta + r * ld_delta, out);
    if (l == 0 && !input_gradient) break;
    // dA = dY W, then through the ReLU that produced A (post-ReLU A > 0 exactly where it passed).
    T* da = nullptr;
    if (l == 0) {
      if (deltas_[0].rows() != batch || deltas_[0].cols() != in) deltas_[0].resize(batch, in);
      da = deltas_[0].data();
    } else {
      da = reserve(deltas_[static_cast<std::size_t>(l)], batch * in);
    }
    gemm<T>(false, false, static_cast<int>(batch), in, out, delta, static_cast<int>(ld_delta), w, in, T(0), da, in,
            gemm_scratch_, backend_);
    if (l > 0) {
      const Index count = batch * in;
      for (Index i = 0; i < count; ++i) da[i] = a[i] > T(0) ? da[i] : T(0);
    }
    delta = da;
    ld_delta = in;
  }
  return deltas_[0];
}

template <class T>
const Matrix<T>& Mlp<T>::backward(const ConstMatrixRef<T>& grad_output) {
  return backward_impl(grad_output, true);
}

template <class T>
void Mlp<T>::backward_parameters(const ConstMatrixRef<T>& grad_output) {
  backward_impl(grad_output, false);
}

template <class T>
void Mlp<T>::predict(const ConstMatrixRef<T>& x, Matrix<T>& y, Workspace<T>& workspace) const {
  check_input<T>(x, input_size(), "Mlp::predict");
  const Index batch = x.rows();
  const int layers = num_layers();
  if (workspace.activations.size() < static_cast<std::size_t>(layers)) workspace.activations.resize(layers);
  const T* in_data = x.data();
  Index ld_in = x.outerStride();
  for (int l = 0; l < layers; ++l) {
    const int out = sizes_[l + 1];
    const bool last = l + 1 == layers;
    if (last && (y.rows() != batch || y.cols() != out)) y.resize(batch, out);
    T* out_data = last ? y.data() : reserve(workspace.activations[static_cast<std::size_t>(l)], batch * out);
    dense_forward<T>(in_data, ld_in, batch, sizes_[l], out, params_.data() + weight_offset_[l],
                     params_.data() + bias_offset_[l], out_data, !last, workspace.gemm, backend_);
    in_data = out_data;
    ld_in = out;
  }
}

template <class T>
void Mlp<T>::copy_parameters_from(const Mlp& other) {
  if (other.sizes_ != sizes_) {
    throw std::invalid_argument("copy_parameters_from: source " + sizes_string(other.sizes_) +
                                " does not match destination " + sizes_string(sizes_));
  }
  std::copy(other.params_.begin(), other.params_.end(), params_.begin());
}

template <class T>
void Mlp<T>::polyak_update_from(const Mlp& other, T tau) {
  if (other.sizes_ != sizes_) {
    throw std::invalid_argument("polyak_update_from: source " + sizes_string(other.sizes_) +
                                " does not match destination " + sizes_string(sizes_));
  }
  if (!(tau >= T(0) && tau <= T(1))) {
    throw std::invalid_argument("polyak tau: " + std::to_string(tau) + " is not in [0, 1]");
  }
  const T keep = T(1) - tau;
  const T* src = other.params_.data();
  T* dst = params_.data();
  const std::size_t count = params_.size();
  for (std::size_t i = 0; i < count; ++i) dst[i] = tau * src[i] + keep * dst[i];
}

// -----------------------------------------------------------------------------------------------
// Losses and clipping

namespace {

template <class T>
void check_loss_shapes(const ConstMatrixRef<T>& pred, const ConstMatrixRef<T>& target, const char* loss) {
  if (pred.rows() != target.rows() || pred.cols() != target.cols()) {
    throw std::invalid_argument(std::string(loss) + ": pred " + shape_string(pred.rows(), pred.cols()) +
                                " and target " + shape_string(target.rows(), target.cols()) + " differ");
  }
  if (pred.size() == 0) {
    throw std::invalid_argument(std::string(loss) + ": empty pred " + shape_string(pred.rows(), pred.cols()));
  }
}

// Shared body of the element-wise losses: per element, value(d) accumulates (in double, so the
// float loss does not lose the small terms of a large batch) and slope(d) is dL/dd before the
// row weight and the 1/N of the mean.
template <class T, class Value, class Slope>
T elementwise_loss(const ConstMatrixRef<T>& pred, const ConstMatrixRef<T>& target, Matrix<T>* grad,
                   const T* row_weights, Value value, Slope slope) {
  const Index rows = pred.rows();
  const Index cols = pred.cols();
  const double count = static_cast<double>(pred.size());
  const T inv_count = static_cast<T>(1.0 / count);
  if (grad != nullptr && (grad->rows() != rows || grad->cols() != cols)) grad->resize(rows, cols);
  double total = 0.0;
  for (Index r = 0; r < rows; ++r) {
    const T w = row_weights != nullptr ? row_weights[r] : T(1);
    double row_total = 0.0;
    for (Index c = 0; c < cols; ++c) {
      const T d = pred(r, c) - target(r, c);
      row_total += value(static_cast<double>(d));
      if (grad != nullptr) (*grad)(r, c) = slope(d) * w * inv_count;
    }
    total += static_cast<double>(w) * row_total;
  }
  return static_cast<T>(total / count);
}

}  // namespace

template <class T>
T huber_loss(const ConstMatrixRef<T>& pred, const ConstMatrixRef<T>& target, T delta, Matrix<T>* grad,
             const T* row_weights) {
  check_loss_shapes<T>(pred, target, "huber_loss");
  if (!(delta > T(0)) || !std::isfinite(delta)) {
    throw std::invalid_argument("huber_loss: delta " + std::to_string(delta) + " must be finite and > 0");
  }
  const double delta_d = delta;
  return elementwise_loss<T>(
      pred, target, grad, row_weights,
      [delta_d](double d) {
        const double ad = std::abs(d);
        return ad <= delta_d ? 0.5 * d * d : delta_d * (ad - 0.5 * delta_d);
      },
      [delta](T d) { return std::clamp(d, -delta, delta); });
}

template <class T>
T mse_loss(const ConstMatrixRef<T>& pred, const ConstMatrixRef<T>& target, Matrix<T>* grad, const T* row_weights) {
  check_loss_shapes<T>(pred, target, "mse_loss");
  return elementwise_loss<T>(
      pred, target, grad, row_weights, [](double d) { return d * d; }, [](T d) { return T(2) * d; });
}

template <class T>
T clip_grad_norm(std::span<T> grads, T max_norm) {
  if (!(max_norm > T(0))) {
    throw std::invalid_argument("clip_grad_norm: max_norm " + std::to_string(max_norm) + " must be > 0");
  }
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> g(grads.data(), static_cast<Index>(grads.size()));
  // Eigen's reduction is vectorised with a fixed association for a given size and build, so
  // the norm (and the training run) is deterministic.
  const T norm = std::sqrt(g.squaredNorm());
  // torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied when < 1.
  const T coefficient = max_norm / (norm + T(1e-6));
  if (coefficient < T(1)) g *= coefficient;
  return norm;
}

// -----------------------------------------------------------------------------------------------
// Adam

template <class T>
Adam<T>::Adam(std::size_t num_parameters, AdamConfig config)
    : config_(config), m_(num_parameters, T(0)), v_(num_parameters, T(0)) {
  if (!(config.learning_rate > 0.0) || !std::isfinite(config.learning_rate)) {
    throw std::invalid_argument("adam learning_rate: " + std::to_string(config.learning_rate) +
                                " must be finite and > 0");
  }
  if (!(config.beta1 >= 0.0 && config.beta1 < 1.0)) {
    throw std::invalid_argument("adam beta1: " + std::to_string(config.beta1) + " is not in [0, 1)");
  }
  if (!(config.beta2 >= 0.0 && config.beta2 < 1.0)) {
    throw std::invalid_argument("adam beta2: " + std::to_string(config.beta2) + " is not in [0, 1)");
  }
  if (!(config.epsilon >= 0.0)) {
    throw std::invalid_argument("adam epsilon: " + std::to_string(config.epsilon) + " must be >= 0");
  }
  if (!(config.weight_decay >= 0.0)) {
    throw std::invalid_argument("adam weight_decay: " + std::to_string(config.weight_decay) + " must be >= 0");
  }
}

namespace {

// One Adam update over n values, in torch.optim.Adam's single-tensor order (torch 1.13,
// foreach=False, the CPU default): scalars in double, rounded to T where torch passes them to
// a kernel; element operations in T, multiply-adds fused where torch's kernels fuse them.
template <class T, bool kWeightDecay>
void adam_update(T* params, const T* grads, T* m1, T* m2, std::size_t n, T weight_decay, T beta1,
                 T one_minus_beta1, T beta2, T one_minus_beta2, T bias_correction2_sqrt, T epsilon, T neg_step_size) {
  for (std::size_t i = 0; i < n; ++i) {
    const T p = params[i];
    T g = grads[i];
    if constexpr (kWeightDecay) g = fused_multiply_add(p, weight_decay, g);       // grad.add(param, alpha=wd)
    const T m = fused_multiply_add(g, one_minus_beta1, m1[i] * beta1);            // exp_avg.mul_(b1).add_(g, alpha=1-b1)
    const T v = fused_multiply_add(one_minus_beta2 * g, g, m2[i] * beta2);        // exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2)
    const T denom = std::sqrt(v) / bias_correction2_sqrt + epsilon;              // (sqrt(v) / sqrt(bc2)).add_(eps)
    params[i] = p + (neg_step_size * m) / denom;                                  // addcdiv_(m, denom, -lr/bc1)
    m1[i] = m;
    m2[i] = v;
  }
}

}  // namespace

template <class T>
void Adam<T>::step(std::span<T> parameters, std::span<const T> gradients) {
  if (parameters.size() != m_.size() || gradients.size() != m_.size()) {
    throw std::invalid_argument("Adam::step: " + std::to_string(parameters.size()) + " parameters and " +
                                std::to_string(gradients.size()) + " gradients, optimizer built for " +
                                std::to_string(m_.size()));
  }
  ++t_;
  const double step = static_cast<double>(t_);
  const double bias_correction1 = 1.0 - std::pow(config_.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(config_.beta2, step);
  const T neg_step_size = static_cast<T>(-(config_.learning_rate / bias_correction1));
  const T bc2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  const T beta1 = static_cast<T>(config_.beta1);
  const T beta2 = static_cast<T>(config_.beta2);
  const T one_minus_beta1 = static_cast<T>(1.0 - config_.beta1);
  const T one_minus_beta2 = static_cast<T>(1.0 - config_.beta2);
  const T epsilon = static_cast<T>(config_.epsilon);
  const T weight_decay = static_cast<T>(config_.weight_decay);
  if (config_.weight_decay != 0.0) {
    adam_update<T, true>(parameters.data(), gradients.data(), m_.data(), v_.data(), m_.size(), weight_decay, beta1,
                         one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, epsilon, neg_step_size);
  } else {
    adam_update<T, false>(parameters.data(), gradients.data(), m_.data(), v_.data(), m_.size(), weight_decay, beta1,
                          one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, epsilon, neg_step_size);
  }
}

// -----------------------------------------------------------------------------------------------
// QuantizedMlp

namespace {

// Rows of the transposed int8 weight dequantized per float GEMM: 64 Ki floats (256 KiB) keeps
// the block in L2 and covers a whole layer of every network this project trains.
constexpr Index kDequantizeBlockElements = 64 * 1024;

// a * b + c, fused where the hardware has FMA (speed, not reproducibility across builds, is the
// point here: serving results already differ in the last bits between kernels).
inline float multiply_add(float a, float b, float c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// Rows of the transposed int8 weights are padded with zeros to a multiple of this, so the GEMV
// below never needs a scalar tail (a lone column is one long dependent chain of multiply-adds).
constexpr int kQuantizedRowAlign = 16;

int padded(int out) { return (out + kQuantizedRowAlign - 1) / kQuantizedRowAlign * kQuantizedRowAlign; }

// y[j0, j0 + kWidth) = x . Q^T for int8 Q stored transposed [in x stride]: each k broadcasts x[k]
// against a contiguous run of int8 weights, converted in registers, into kWidth accumulators that
// stay in registers (64 = four AVX-512 registers); no horizontal sums, no float copy of Q.
// Every store has a fixed trip count, so the compiler keeps acc in registers.
template <int kWidth>
void int8_gemv_columns(const std::int8_t* qt, const float* x, int in, int stride, int j0, float* y) {
  float acc[kWidth] = {};
  for (int k = 0; k < in; ++k) {
    const float xk = x[k];
    const std::int8_t* row = qt + static_cast<std::size_t>(k) * static_cast<std::size_t>(stride) + j0;
    for (int j = 0; j < kWidth; ++j) acc[j] = multiply_add(xk, static_cast<float>(row[j]), acc[j]);
  }
  for (int j = 0; j < kWidth; ++j) y[j0 + j] = acc[j];
}

// y [padded(out)] = x . Q^T; the padding's lanes come out zero and the caller drops them.
void int8_gemv(const std::int8_t* qt, const float* x, int in, int out, float* y) {
  const int stride = padded(out);
  int j0 = 0;
  for (; j0 + 64 <= stride; j0 += 64) int8_gemv_columns<64>(qt, x, in, stride, j0, y);
  for (; j0 < stride; j0 += kQuantizedRowAlign) int8_gemv_columns<kQuantizedRowAlign>(qt, x, in, stride, j0, y);
}

}  // namespace

namespace {
// The int8 grid, one definition for QuantizedMlp and for quantization-aware training: per
// output row, scale max|w| / 127; a weight's level rounds half to even (as
// torch.quantize_per_channel); an all-zero row stays zero.
template <typename Row>
float int8_row_scale(const Row& row) {
  return row.cwiseAbs().maxCoeff() / 127.0F;
}
float int8_level(float w, float scale) {
  return scale > 0.0F ? std::clamp(std::nearbyint(w / scale), -127.0F, 127.0F) : 0.0F;
}
}  // namespace

void project_weights_onto_int8_grid(std::span<const float> latent, Mlp<float>& net) {
  if (latent.size() != net.num_parameters()) {
    throw std::invalid_argument("project_weights_onto_int8_grid: " + std::to_string(latent.size()) + " latent values for " +
                                std::to_string(net.num_parameters()) + " parameters");
  }
  std::copy(latent.begin(), latent.end(), net.parameters().begin());  // biases (and weights, overwritten below)
  for (int l = 0; l < net.num_layers(); ++l) {
    auto w = net.weight(l);
    for (Index j = 0; j < w.rows(); ++j) {
      const float s = int8_row_scale(w.row(j));
      for (Index k = 0; k < w.cols(); ++k) w(j, k) = int8_level(w(j, k), s) * s;
    }
  }
}

QuantizedMlp::QuantizedMlp(const Mlp<float>& source) : sizes_(source.layer_sizes()) {
  const int layers = source.num_layers();
  for (int l = 0; l < layers; ++l) {
    const auto w = source.weight(l);
    const auto b = source.bias(l);
    const Index out = w.rows();
    const Index in = w.cols();
    const Index stride = padded(static_cast<int>(out));
    std::vector<std::int8_t> qt(static_cast<std::size_t>(stride * in), 0);
    std::vector<float> scale(static_cast<std::size_t>(out));
    for (Index j = 0; j < out; ++j) {
      if (!w.row(j).allFinite()) {
        throw std::invalid_argument("QuantizedMlp: layer " + std::to_string(l) + " row " + std::to_string(j) +
                                    " has a non-finite weight");
      }
      const float s = int8_row_scale(w.row(j));
      scale[static_cast<std::size_t>(j)] = s;
      for (Index k = 0; k < in; ++k) {
        qt[static_cast<std::size_t>(k * stride + j)] = static_cast<std::int8_t>(int8_level(w(j, k), s));
      }
    }
    weights_.push_back(std::move(qt));
    scales_.push_back(std::move(scale));
    biases_.emplace_back(b.data(), b.data() + out);
  }
}

QuantizedMlp::Int8Map QuantizedMlp::quantized_weight(int layer) const {
  if (layer < 0 || static_cast<std::size_t>(layer) >= weights_.size()) {
    throw std::out_of_range("QuantizedMlp layer " + std::to_string(layer) + " is out of range 0.." +
                            std::to_string(static_cast<int>(weights_.size()) - 1));
  }
  const int in = sizes_[static_cast<std::size_t>(layer)];
  const int out = sizes_[static_cast<std::size_t>(layer) + 1];
  return {weights_[static_cast<std::size_t>(layer)].data(), in, out, Eigen::OuterStride<>(padded(out))};
}

std::span<const float> QuantizedMlp::scales(int layer) const {
  if (layer < 0 || static_cast<std::size_t>(layer) >= scales_.size()) {
    throw std::out_of_range("QuantizedMlp layer " + std::to_string(layer) + " is out of range 0.." +
                            std::to_string(static_cast<int>(scales_.size()) - 1));
  }
  return scales_[static_cast<std::size_t>(layer)];
}

void QuantizedMlp::predict(const ConstMatrixRef<float>& x, Matrix<float>& y, Workspace<float>& workspace) const {
  check_input<float>(x, input_size(), "QuantizedMlp::predict");
  const Index batch = x.rows();
  const auto layers = weights_.size();
  if (workspace.activations.size() < layers) workspace.activations.resize(layers);
  const float* in_data = x.data();
  Index ld_in = x.outerStride();
  for (std::size_t l = 0; l < layers; ++l) {
    const int in = sizes_[l];
    const int out = sizes_[l + 1];
    const bool last = l + 1 == layers;
    if (last && (y.rows() != batch || y.cols() != out)) y.resize(batch, out);
    float* out_data = last ? y.data() : reserve(workspace.activations[l], batch * out);
    const std::int8_t* qt = weights_[l].data();
    if (batch <= kDirectMaxBatch) {
      // Few rows: each weight is used `batch` times, so converting it in registers beats writing
      // and re-reading a float copy (measured: docs/performance.md (the DQN's kernels), "int8").
      float* staging = reserve(workspace.dequantized, padded(out));
      for (Index r = 0; r < batch; ++r) {
        int8_gemv(qt, in_data + r * ld_in, in, out, staging);
        std::copy(staging, staging + out, out_data + r * out);
      }
    } else {
      // A batch: dequantize blocks of Q^T's rows to exact small integers (float holds every int8;
      // a plain widening convert that vectorises) and accumulate X[:, block] Q^T[block, :] as float
      // GEMMs, so the int8 path runs on the same kernels as the float one.
      const int stride = padded(out);
      const int block_rows = static_cast<int>(std::clamp<Index>(kDequantizeBlockElements / stride, 1, in));
      float* dq = reserve(workspace.dequantized, static_cast<Index>(block_rows) * stride);
      for (int k0 = 0; k0 < in; k0 += block_rows) {
        const int rows = std::min(block_rows, in - k0);
        const std::int8_t* qb = qt + static_cast<std::size_t>(k0) * static_cast<std::size_t>(stride);
        const Index count = static_cast<Index>(rows) * stride;
        for (Index i = 0; i < count; ++i) dq[i] = static_cast<float>(qb[i]);
        gemm<float>(false, false, static_cast<int>(batch), out, rows, in_data + k0, static_cast<int>(ld_in), dq,
                    stride, k0 == 0 ? 0.0F : 1.0F, out_data, out, workspace.gemm, GemmBackend::automatic);
      }
    }
    // y = scale * (x . q) + b per output column, then the ReLU.
    StridedMap<float> Y(out_data, batch, out, Eigen::OuterStride<>(out));
    const Eigen::Map<const RowVector<float>> s(scales_[l].data(), out);
    const Eigen::Map<const RowVector<float>> b(biases_[l].data(), out);
    if (last) {
      for (Index r = 0; r < batch; ++r) Y.row(r) = Y.row(r).cwiseProduct(s) + b;
    } else {
      for (Index r = 0; r < batch; ++r) Y.row(r) = (Y.row(r).cwiseProduct(s) + b).cwiseMax(0.0F);
    }
    in_data = out_data;
    ld_in = out;
  }
}

// -----------------------------------------------------------------------------------------------
// Explicit instantiations: float for training and serving, double for gradient checks.

template void gemm<float>(bool, bool, int, int, int, const float*, int, const float*, int, float, float*, int,
                          GemmScratch<float>&, GemmBackend);
template void gemm<double>(bool, bool, int, int, int, const double*, int, const double*, int, double, double*, int,
                           GemmScratch<double>&, GemmBackend);
template class Mlp<float>;
template class Mlp<double>;
template float huber_loss<float>(const ConstMatrixRef<float>&, const ConstMatrixRef<float>&, float, Matrix<float>*,
                                 const float*);
template double huber_loss<double>(const ConstMatrixRef<double>&, const ConstMatrixRef<double>&, double,
                                   Matrix<double>*, const double*);
template float mse_loss<float>(const ConstMatrixRef<float>&, const ConstMatrixRef<float>&, Matrix<float>*,
                               const float*);
template double mse_loss<double>(const ConstMatrixRef<double>&, const ConstMatrixRef<double>&, Matrix<double>*,
                                 const double*);
template float clip_grad_norm<float>(std::span<float>, float);
template double clip_grad_norm<double>(std::span<double>, double);
template class Adam<float>;
template class Adam<double>;

}  // namespace forkcast::agent::nn
