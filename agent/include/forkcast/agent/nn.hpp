// Small neural-network kernels for the deep Q-network, on Eigen (OpenBLAS where it pays):
// a multilayer perceptron with ReLU, Huber and MSE losses, Adam, global-norm gradient
// clipping, He/Xavier initialisation with an explicit seed.
//
// Layout: every matrix is row-major; a batch is [B x features]. A layer's weight is stored
// [out x in] (PyTorch's nn.Linear layout) so checkpoints load in PyTorch unchanged. All
// parameters of an Mlp live in ONE contiguous buffer, layer by layer: W0, b0, W1, b1, ...
// and the gradients in a second buffer of the same layout, so Adam, clipping, target-net
// copies and Polyak averaging are single loops over one span.
//
// Scalar: float for training and serving; double for the finite-difference gradient checks.
// Ownership: an Mlp owns its parameters, gradients and the activations of the last
// forward(); forward()'s result is a reference valid until the next forward().
// Threads: not thread-safe; predict() is const and may run concurrently with other
// predict() calls given separate workspaces.
// Errors: shape mismatches throw std::invalid_argument naming both shapes.
#pragma once

// GCC 12 warns -Wmaybe-uninitialized inside its own AVX-512 intrinsics (the self-initialised
// _mm*_undefined_* helpers) once Eigen's packet code is inlined under -march=native (GCC bug
// 105593); the diagnostic is keyed to those header lines, so the pragma silences only them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace forkcast::agent::nn {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMatrixRef = Eigen::Ref<const Matrix<T>>;

enum class Init : std::uint8_t {
  he_uniform,     // U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)) weights, zero biases (ReLU nets)
  xavier_uniform  // U(-sqrt(6 / (fan_in + fan_out)), ...) weights, zero biases
};

// Which GEMM kernel runs a product: Eigen's own blocked kernel, OpenBLAS (cblas_?gemm), or
// `automatic`, the per-shape choice measured in docs/performance-nn.md (choose_gemm_backend).
// Products with one row or one column always run as Eigen GEMVs, whatever is asked.
enum class GemmBackend : std::uint8_t { automatic, eigen, blas };

// Packing buffers for Eigen's GEMM kernel, owned by the caller: Eigen's own product
// heap-allocates them on every call once they pass 128 KiB, and hot paths must not allocate.
// Grows to the largest shape seen, then never again.
template <class T>
struct GemmScratch {
  Eigen::Matrix<T, Eigen::Dynamic, 1> buffer;
};

// Scratch buffers for predict(); reused across calls so inference does not allocate once
// warmed up (a buffer only grows when a larger batch arrives). One workspace may serve several
// networks (online and target); two threads never share one.
template <class T>
struct Workspace {
  std::vector<Matrix<T>> activations;  // hidden layers, capacity rows (only the first B used)
  GemmScratch<T> gemm;                 // Eigen packing buffers
  Matrix<T> dequantized;               // QuantizedMlp: a block of int8 weight rows as T
};

// C[m x n] = beta * C + op(A) op(B), every matrix row-major with leading dimensions lda, ldb,
// ldc; op(X) is X, or its transpose when transpose_x. beta == 0 ignores C's old contents (NaN
// included), as BLAS does. Throws std::invalid_argument on negative sizes or short leading
// dimensions.
template <class T>
void gemm(bool transpose_a, bool transpose_b, int m, int n, int k, const T* a, int lda, const T* b, int ldb,
          T beta, T* c, int ldc, GemmScratch<T>& scratch, GemmBackend backend = GemmBackend::automatic);

// A dense layer on gemm(): y[n x out] = x[n x in] W^T (+ bias) (then ReLU when relu), with W
// stored [out x in] at w with leading dimension ldw (a column block of a wider weight is
// fine), bias nullable. Used by the factorized candidate scorers (DQN training, serving).
template <class T>
void dense_layer(int n, int in, int out, const T* x, int ldx, const T* w, int ldw, const T* bias, bool relu, T* y,
                 int ldy, GemmScratch<T>& scratch);

// The kernel `automatic` runs for this float product shape (double always runs on Eigen).
GemmBackend choose_gemm_backend(bool transpose_a, bool transpose_b, int m, int n, int k) noexcept;

// OpenBLAS's own thread count: process-wide, as OpenBLAS keeps it; forkcast never changes it by
// itself. Trainers set 1: a multi-threaded OpenBLAS 0.3.21 mallocs a 512 KiB buffer on every
// threaded sgemm (so hot paths would allocate) and shares cores the trainer's workers own.
void set_blas_threads(int threads);
int blas_threads() noexcept;

template <class T>
class Mlp {
 public:
  // layer_sizes = {in, hidden..., out}, at least two entries, all > 0. ReLU between layers,
  // none after the last. Weights are drawn from std::mt19937_64(seed), one 64-bit draw per
  // weight, layer by layer in row-major order: w = bound * (2u - 1), u = (draw >> 11) * 2^-53,
  // computed in double then rounded to T (so a float and a double net of one seed agree).
  Mlp(std::vector<int> layer_sizes, std::uint64_t seed, Init init = Init::he_uniform);

  const std::vector<int>& layer_sizes() const noexcept;
  int input_size() const noexcept;
  int output_size() const noexcept;
  std::size_t num_parameters() const noexcept;

  std::span<T> parameters() noexcept;
  std::span<const T> parameters() const noexcept;
  std::span<T> gradients() noexcept;
  std::span<const T> gradients() const noexcept;
  void zero_grad() noexcept;

  // Weight [out x in] and bias [out] of layer `layer` as views into parameters().
  Eigen::Map<Matrix<T>> weight(int layer);
  Eigen::Map<const Matrix<T>> weight(int layer) const;
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(int layer);
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(int layer) const;

  // Training forward of x [B x in]; keeps activations for backward(). Returns [B x out].
  const Matrix<T>& forward(const ConstMatrixRef<T>& x);
  // Accumulates dL/dparameters into gradients() from dL/dy [B x out] of the last forward().
  // Returns dL/dx [B x in] (valid until the next backward()).
  const Matrix<T>& backward(const ConstMatrixRef<T>& grad_output);
  // backward() without dL/dx: a DQN's input is data, so the first layer's [B x in] GEMM is waste.
  void backward_parameters(const ConstMatrixRef<T>& grad_output);

  // Inference: y [B x out] = net(x), no training state touched.
  void predict(const ConstMatrixRef<T>& x, Matrix<T>& y, Workspace<T>& workspace) const;

  // Target networks: hard copy, and Polyak averaging p <- tau * other + (1 - tau) * p.
  void copy_parameters_from(const Mlp& other);
  void polyak_update_from(const Mlp& other, T tau);

  int num_layers() const noexcept { return static_cast<int>(sizes_.size()) - 1; }  // Linear layers
  // Kernel choice for every product of this network (benchmarks compare them; default automatic).
  void set_gemm_backend(GemmBackend backend) noexcept { backend_ = backend; }
  GemmBackend gemm_backend() const noexcept { return backend_; }

 private:
  const Matrix<T>& backward_impl(const ConstMatrixRef<T>& grad_output, bool input_gradient);
  void check_layer(int layer) const;

  std::vector<int> sizes_;
  std::vector<std::size_t> weight_offset_, bias_offset_;
  std::vector<T> params_, grads_;
  // acts_[0] = input, acts_[i] = post-ReLU of layer i-1. All but the last (the output, exactly
  // [B x out]) keep capacity rows: a smaller batch uses their first B rows, nothing reallocates.
  std::vector<Matrix<T>> acts_;
  std::vector<Matrix<T>> deltas_;   // backward scratch; deltas_[0] = dL/dx, exactly [B x in]
  Eigen::Index batch_ = 0;          // rows of the last forward()
  GemmScratch<T> gemm_scratch_;
  GemmBackend backend_ = GemmBackend::automatic;
};

// Losses over all elements of pred and target ([B x k], same shape), mean-reduced.
// `grad` (optional) receives dL/dpred. `weights` (optional, one per row) scales each
// row's loss, for prioritized replay's importance weights; mean is still over elements.
// Huber: 0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta), d = pred - target
// (PyTorch's smooth_l1/huber with beta = delta = 1 by default).
template <class T>
T huber_loss(const ConstMatrixRef<T>& pred, const ConstMatrixRef<T>& target, T delta, Matrix<T>* grad,
             const T* row_weights = nullptr);
template <class T>
T mse_loss(const ConstMatrixRef<T>& pred, const ConstMatrixRef<T>& target, Matrix<T>* grad,
           const T* row_weights = nullptr);

// Scales grads in place so that their global L2 norm is at most max_norm (as PyTorch's
// clip_grad_norm_). Returns the norm before clipping.
template <class T>
T clip_grad_norm(std::span<T> grads, T max_norm);

struct AdamConfig {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;  // L2 added to the gradient, as torch.optim.Adam
};

// Adam (Kingma & Ba, 2015), bias-corrected exactly as torch.optim.Adam.
template <class T>
class Adam {
 public:
  Adam(std::size_t num_parameters, AdamConfig config);
  void step(std::span<T> parameters, std::span<const T> gradients);
  const AdamConfig& config() const noexcept { return config_; }
  std::int64_t steps() const noexcept { return t_; }
  // Moment estimates, for checkpoints (resume continues exactly).
  std::span<T> first_moment() noexcept { return m_; }
  std::span<T> second_moment() noexcept { return v_; }
  void set_steps(std::int64_t t) noexcept { t_ = t; }

 private:
  AdamConfig config_;
  std::vector<T> m_, v_;
  std::int64_t t_ = 0;
};

// Quantization-aware training's projection: sets `net`'s weights to `latent`'s rounded onto
// the grid QuantizedMlp uses (per output row, scale max|w_row| / 127, round half to even);
// biases are copied as they are. `latent` has the layout of net.parameters(). A network
// whose weights lie on this grid is what QuantizedMlp stores, up to one rounding of the scale.
void project_weights_onto_int8_grid(std::span<const float> latent, Mlp<float>& net);

// An int8 weight-quantized copy of a float Mlp for serving: per output row, weights are
// q = round(w / scale), scale = max|w_row| / 127; activations stay float. predict() has the
// same contract as Mlp::predict.
class QuantizedMlp {
 public:
  explicit QuantizedMlp(const Mlp<float>& source);
  void predict(const ConstMatrixRef<float>& x, Matrix<float>& y, Workspace<float>& workspace) const;
  const std::vector<int>& layer_sizes() const noexcept { return sizes_; }
  int input_size() const noexcept { return sizes_.front(); }
  int output_size() const noexcept { return sizes_.back(); }
  // Views for checkpoints and tests: layer `layer`'s int8 weight TRANSPOSED, [in x out] (so
  // q(j, k) of the [out x in] weight is quantized_weight(l)(k, j)), and its per-row scales [out].
  using Int8Map = Eigen::Map<const Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                             Eigen::OuterStride<>>;
  Int8Map quantized_weight(int layer) const;
  std::span<const float> scales(int layer) const;

  // Batches up to this size run a fused int8 GEMV (weights converted in registers); larger ones
  // dequantize blocks to float and run float GEMMs. Measured: docs/performance-nn.md, "int8".
  static constexpr int kDirectMaxBatch = 2;

 private:
  std::vector<int> sizes_;
  // Per layer, [in x out] with rows zero-padded to a multiple of 16: a GEMV then reads contiguous
  // runs of outputs per input, accumulating in registers with no horizontal sums and no tails.
  std::vector<std::vector<std::int8_t>> weights_;
  std::vector<std::vector<float>> scales_;         // per layer, [out]
  std::vector<std::vector<float>> biases_;         // per layer, [out]
};

}  // namespace forkcast::agent::nn
