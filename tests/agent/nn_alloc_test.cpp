// Hot paths of agent/nn.hpp must not allocate once warm: predict() with a warm workspace, and
// a training step (forward, loss, backward, clip, Adam) at a batch seen before, whichever
// GEMM back end runs. This binary replaces malloc and friends with counting wrappers around
// glibc's own (__libc_*), which is why it is a binary of its own: Eigen allocates through
// std::malloc, not operator new, so counting `new` alone would miss it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "forkcast/agent/nn.hpp"

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define FORKCAST_COUNT_MALLOC 1

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* ptr, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void __libc_free(void* ptr);
}

namespace {
// Only the test thread's allocations inside a measured region count.
thread_local bool counting = false;
thread_local long allocations = 0;
void note() {
  if (counting) ++allocations;
}
}  // namespace

extern "C" {
void* malloc(std::size_t size) {
  note();
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) {
  note();
  return __libc_calloc(count, size);
}
void* realloc(void* ptr, std::size_t size) {
  note();
  return __libc_realloc(ptr, size);
}
void* memalign(std::size_t alignment, std::size_t size) {
  note();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  note();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  note();
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void free(void* ptr) { __libc_free(ptr); }
}
#endif

namespace nn = forkcast::agent::nn;

namespace {

// Allocations made by f on this thread.
template <class F>
long allocations_in(F&& f) {
#ifdef FORKCAST_COUNT_MALLOC
  allocations = 0;
  counting = true;
  f();
  counting = false;
  return allocations;
#else
  f();
  return 0;
#endif
}

nn::Matrix<float> filled(Eigen::Index rows, Eigen::Index cols, float seed) {
  nn::Matrix<float> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = std::sin(seed + 0.37F * static_cast<float>(i));
  return m;
}

// One DQN-shaped update: online forward, target predict, Huber on gathered Q, backward, clip, Adam.
struct TrainStep {
  nn::Mlp<float> online, target;
  nn::Adam<float> adam;
  nn::Workspace<float> ws;
  nn::Matrix<float> x, next_x, next_q, target_q, gathered, grad_q, grad_out;
  std::vector<int> actions;

  TrainStep(std::vector<int> sizes, int batch, nn::GemmBackend backend)
      : online(sizes, 1), target(sizes, 2), adam(online.num_parameters(), {}),
        x(filled(batch, sizes.front(), 0.1F)), next_x(filled(batch, sizes.front(), 0.2F)),
        target_q(batch, 1), gathered(batch, 1), grad_out(batch, sizes.back()), actions(static_cast<std::size_t>(batch)) {
    online.set_gemm_backend(backend);
    target.set_gemm_backend(backend);
    for (int i = 0; i < batch; ++i) actions[static_cast<std::size_t>(i)] = i % sizes.back();
  }

  void run() {
    target.predict(next_x, next_q, ws);
    for (Eigen::Index r = 0; r < next_q.rows(); ++r) target_q(r, 0) = 1.0F + 0.99F * next_q.row(r).maxCoeff();
    const auto& q = online.forward(x);
    for (Eigen::Index r = 0; r < q.rows(); ++r) gathered(r, 0) = q(r, actions[static_cast<std::size_t>(r)]);
    nn::huber_loss<float>(gathered, target_q, 1.0F, &grad_q);
    grad_out.setZero();
    for (Eigen::Index r = 0; r < q.rows(); ++r) grad_out(r, actions[static_cast<std::size_t>(r)]) = grad_q(r, 0);
    online.zero_grad();
    online.backward_parameters(grad_out);
    nn::clip_grad_norm<float>(online.gradients(), 10.0F);
    adam.step(online.parameters(), online.gradients());
  }
};

}  // namespace

TEST(NnNoAllocation, WarmTrainStepOnEveryBackend) {
  // Multi-threaded OpenBLAS 0.3.21 mallocs a 512 KiB buffer per threaded sgemm (measured with
  // this test); one thread per trainer is the setting forkcast trains with.
  nn::set_blas_threads(1);
  for (const auto backend : {nn::GemmBackend::eigen, nn::GemmBackend::blas, nn::GemmBackend::automatic}) {
    for (const auto& [sizes, batch] : {std::pair<std::vector<int>, int>{{4, 120, 84, 2}, 128},
                                       std::pair<std::vector<int>, int>{{96, 256, 256, 200}, 256}}) {
      TrainStep step(sizes, batch, backend);
      step.run();  // warm-up: buffers grow here
      step.run();
      EXPECT_EQ(allocations_in([&] { step.run(); }), 0)
          << "backend " << static_cast<int>(backend) << ", net with " << sizes[1] << "-wide layers";
    }
  }
}

TEST(NnNoAllocation, WarmPredictAcrossBatchSizesAndNetworks) {
  nn::set_blas_threads(1);  // as above: a threaded OpenBLAS allocates per call
  nn::Mlp<float> cartpole({4, 120, 84, 2}, 3);
  nn::Mlp<float> scorer({119, 128, 64, 1}, 4);
  const nn::QuantizedMlp scorer_int8(scorer);
  nn::Workspace<float> ws;  // one workspace serving all three
  const auto one_state = filled(1, 4, 0.3F);
  const auto batch = filled(128, 4, 0.4F);
  const auto candidates = filled(240, 119, 0.5F);
  nn::Matrix<float> q1, q128, scores, scores_int8;
  auto serve = [&] {
    cartpole.predict(one_state, q1, ws);
    cartpole.predict(batch, q128, ws);
    scorer.predict(candidates, scores, ws);
    scorer_int8.predict(candidates, scores_int8, ws);
    scorer_int8.predict(candidates.topRows(1), q1, ws);  // reshapes q1: not part of the warm loop
  };
  serve();
  auto warm = [&] {
    cartpole.predict(one_state, q1, ws);
    cartpole.predict(batch, q128, ws);
    scorer.predict(candidates, scores, ws);
    scorer_int8.predict(candidates, scores_int8, ws);
    cartpole.predict(batch.topRows(7), q128, ws);  // a smaller batch reuses capacity...
  };
  warm();
  q128.resize(128, 2);
  // ...but the caller's output is exactly [B x out]: keep one output matrix per batch size.
  auto warm_fixed_outputs = [&] {
    cartpole.predict(one_state, q1, ws);
    cartpole.predict(batch, q128, ws);
    scorer.predict(candidates, scores, ws);
    scorer_int8.predict(candidates, scores_int8, ws);
  };
  warm_fixed_outputs();
  EXPECT_EQ(allocations_in(warm_fixed_outputs), 0);
}
