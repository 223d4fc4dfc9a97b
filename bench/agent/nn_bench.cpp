// Speed of agent/nn.hpp, single thread (OpenBLAS is set to one thread before anything runs;
// times are process CPU time, so work on any helper thread would be counted, not hidden):
//
//   BM_TrainStep/<net>/<backend>   one DQN train step: online forward on the batch, target
//                                   forward on the next states, TD target r + gamma (1 - done)
//                                   max_a' Q_target, gather Q(s, a), Huber loss, backward, clip,
//                                   Adam. `auto` is what forkcast runs (per-shape choice); `eigen`
//                                   and `blas` force one kernel for every product. Counter
//                                   `flops` is the step's multiply-adds x 2 (the GEMMs).
//   BM_Sgemm/1024/<backend>         the FLOP limit: a 1024^3 sgemm with Eigen and with OpenBLAS.
//   BM_Gemm/<product>/<m>x<n>x<k>/<backend>
//                                   every product of the train steps and of the candidate
//                                   scorer on each kernel: the table behind choose_gemm_backend.
//   BM_Predict/<net>/<dtype>        single-state inference: CartPole nets at batch 1, and
//                                   candidate scoring of 240 meals for one state, float and int8.
//   BM_Adam/<n>, BM_ClipGradNorm/<n> the optimizer and clipping alone, for the breakdown.
//
// bench/run_benchmarks.sh (nn_*) runs this beside bench/peers/libtorch_dqn_step.cpp and prints
// the ratios quoted in docs/performance.md (the DQN's kernels).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "forkcast/agent/nn.hpp"

namespace {

namespace nn = forkcast::agent::nn;

nn::Matrix<float> random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed, float lo = -1.0F,
                                float hi = 1.0F) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  nn::Matrix<float> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
  return m;
}

std::string sizes_name(const std::vector<int>& sizes) {
  std::string s;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i > 0) s += '-';
    s += std::to_string(sizes[i]);
  }
  return s;
}

const char* backend_name(nn::GemmBackend b) {
  switch (b) {
    case nn::GemmBackend::automatic: return "auto";
    case nn::GemmBackend::eigen: return "eigen";
    case nn::GemmBackend::blas: return "blas";
  }
  return "?";
}

// 2 x multiply-adds of one train step: per layer, the online forward, the target forward and dW,
// and dX for every layer but the first (the input is data; libtorch skips it too).
double train_step_flops(const std::vector<int>& sizes, int batch) {
  double mac = 0.0;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const double layer = static_cast<double>(batch) * sizes[l] * sizes[l + 1];
    mac += (l == 0 ? 3.0 : 4.0) * layer;
  }
  return 2.0 * mac;
}

// A replay batch: states, actions, rewards, next states, done flags; fixed seed.
struct Batch {
  nn::Matrix<float> states, next_states;
  std::vector<int> actions;
  std::vector<float> rewards, dones;
  Batch(int batch, int in, int actions_count, std::uint64_t seed)
      : states(random_matrix(batch, in, seed)), next_states(random_matrix(batch, in, seed + 1)),
        actions(static_cast<std::size_t>(batch)), rewards(static_cast<std::size_t>(batch)),
        dones(static_cast<std::size_t>(batch)) {
    std::mt19937_64 rng(seed + 2);
    for (int i = 0; i < batch; ++i) {
      actions[static_cast<std::size_t>(i)] = static_cast<int>(rng() % static_cast<std::uint64_t>(actions_count));
      rewards[static_cast<std::size_t>(i)] = 1.0F;
      dones[static_cast<std::size_t>(i)] = rng() % 50 == 0 ? 1.0F : 0.0F;
    }
  }
};

void train_step(benchmark::State& state, std::vector<int> sizes, int batch, nn::GemmBackend backend) {
  constexpr float kGamma = 0.99F;
  constexpr float kMaxGradNorm = 10.0F;
  nn::Mlp<float> online(sizes, 1);
  nn::Mlp<float> target(sizes, 2);
  online.set_gemm_backend(backend);
  target.set_gemm_backend(backend);
  nn::Adam<float> adam(online.num_parameters(), {2.5e-4, 0.9, 0.999, 1e-8, 0.0});
  const Batch data(batch, sizes.front(), sizes.back(), 3);
  nn::Workspace<float> workspace;
  nn::Matrix<float> next_q, td_target(batch, 1), q_taken(batch, 1), grad_taken, grad_q(batch, sizes.back());
  for (auto _ : state) {
    target.predict(data.next_states, next_q, workspace);
    for (int i = 0; i < batch; ++i) {
      const auto u = static_cast<std::size_t>(i);
      td_target(i, 0) = data.rewards[u] + kGamma * (1.0F - data.dones[u]) * next_q.row(i).maxCoeff();
    }
    const nn::Matrix<float>& q = online.forward(data.states);
    for (int i = 0; i < batch; ++i) q_taken(i, 0) = q(i, data.actions[static_cast<std::size_t>(i)]);
    benchmark::DoNotOptimize(nn::huber_loss<float>(q_taken, td_target, 1.0F, &grad_taken));
    grad_q.setZero();
    for (int i = 0; i < batch; ++i) grad_q(i, data.actions[static_cast<std::size_t>(i)]) = grad_taken(i, 0);
    online.zero_grad();
    online.backward_parameters(grad_q);
    nn::clip_grad_norm<float>(online.gradients(), kMaxGradNorm);
    adam.step(online.parameters(), online.gradients());
    benchmark::ClobberMemory();
  }
  const double flops = train_step_flops(sizes, batch);
  state.counters["flops"] = flops;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations());
}

// C = A B^T + C at 1024^3 on one kernel, the largest-shape rate of this machine.
void big_sgemm(benchmark::State& state, int size, nn::GemmBackend backend) {
  const auto a = random_matrix(size, size, 11);
  const auto b = random_matrix(size, size, 12);
  nn::Matrix<float> c = nn::Matrix<float>::Zero(size, size);
  nn::GemmScratch<float> scratch;
  for (auto _ : state) {
    nn::gemm<float>(false, true, size, size, size, a.data(), size, b.data(), size, 1.0F, c.data(), size, scratch,
                    backend);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * size * size * static_cast<double>(size);
  state.counters["flops"] = flops;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One product of a dense layer, as Mlp runs it.
enum class Product { forward, weight_grad, input_grad };

void one_gemm(benchmark::State& state, Product product, int batch, int in, int out, nn::GemmBackend backend) {
  bool ta = false;
  bool tb = false;
  int m = 0, n = 0, k = 0;
  switch (product) {
    case Product::forward: tb = true, m = batch, n = out, k = in; break;          // X W^T
    case Product::weight_grad: ta = true, m = out, n = in, k = batch; break;      // dY^T X
    case Product::input_grad: m = batch, n = in, k = out; break;                 // dY W
  }
  const auto a = random_matrix(ta ? k : m, ta ? m : k, 21);
  const auto b = random_matrix(tb ? n : k, tb ? k : n, 22);
  nn::Matrix<float> c = nn::Matrix<float>::Zero(m, n);
  nn::GemmScratch<float> scratch;
  const float beta = product == Product::input_grad ? 0.0F : 1.0F;
  for (auto _ : state) {
    nn::gemm<float>(ta, tb, m, n, k, a.data(), a.cols(), b.data(), b.cols(), beta, c.data(), n, scratch, backend);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * m * n * static_cast<double>(k);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void predict_float(benchmark::State& state, std::vector<int> sizes, int batch) {
  const nn::Mlp<float> net(sizes, 5);
  const auto x = random_matrix(batch, sizes.front(), 6, 0.0F, 1.0F);
  nn::Workspace<float> workspace;
  nn::Matrix<float> y;
  for (auto _ : state) {
    net.predict(x, y, workspace);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void predict_int8(benchmark::State& state, std::vector<int> sizes, int batch) {
  const nn::Mlp<float> net(sizes, 5);
  const nn::QuantizedMlp quantized(net);
  const auto x = random_matrix(batch, sizes.front(), 6, 0.0F, 1.0F);
  nn::Workspace<float> workspace;
  nn::Matrix<float> y;
  for (auto _ : state) {
    quantized.predict(x, y, workspace);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void adam_only(benchmark::State& state, std::size_t n) {
  std::vector<float> p(n, 0.5F), g(n, 0.01F);
  nn::Adam<float> adam(n, {});
  for (auto _ : state) {
    adam.step(p, g);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void clip_only(benchmark::State& state, std::size_t n) {
  std::vector<float> g(n, 0.01F);
  for (auto _ : state) {
    benchmark::DoNotOptimize(nn::clip_grad_norm<float>(g, 1e9F));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

struct Net {
  const char* name;
  std::vector<int> sizes;
  int batch;
};

void register_all() {
  const nn::GemmBackend backends[] = {nn::GemmBackend::automatic, nn::GemmBackend::eigen, nn::GemmBackend::blas};
  const Net train_nets[] = {{"cartpole", {4, 120, 84, 2}, 128}, {"mealsim", {96, 256, 256, 200}, 256}};
  for (const auto& net : train_nets) {
    for (const auto backend : backends) {
      const std::string name = std::string("BM_TrainStep/") + net.name + "_" + sizes_name(net.sizes) + "_b" +
                               std::to_string(net.batch) + "/" + backend_name(backend);
      benchmark::RegisterBenchmark(name.c_str(), train_step, net.sizes, net.batch, backend)
          ->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
    }
  }
  for (const auto backend : {nn::GemmBackend::eigen, nn::GemmBackend::blas}) {
    benchmark::RegisterBenchmark((std::string("BM_Sgemm/1024/") + backend_name(backend)).c_str(), big_sgemm, 1024,
                                 backend)
        ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()
        ->MinTime(1.0);
  }
  // Every product shape of the two train steps and of the candidate scorer.
  const Net gemm_nets[] = {{"cartpole", {4, 120, 84, 2}, 128},
                           {"mealsim", {96, 256, 256, 200}, 256},
                           {"scorer", {119, 128, 64, 1}, 240},
                           {"scorer_train", {119, 128, 64, 1}, 256}};
  for (const auto& net : gemm_nets) {
    for (std::size_t l = 0; l + 1 < net.sizes.size(); ++l) {
      const int in = net.sizes[l];
      const int out = net.sizes[l + 1];
      for (const auto product : {Product::forward, Product::weight_grad, Product::input_grad}) {
        if (product == Product::input_grad && l == 0) continue;  // never computed in training
        if (product != Product::forward && std::string(net.name) == "scorer") continue;  // serving only
        if (product == Product::forward && std::string(net.name) == "scorer_train") continue;  // as scorer
        const char* pname = product == Product::forward ? "fwd" : product == Product::weight_grad ? "dW" : "dX";
        int m = net.batch, n = out, k = in;
        if (product == Product::weight_grad) m = out, n = in, k = net.batch;
        if (product == Product::input_grad) m = net.batch, n = in, k = out;
        for (const auto backend : {nn::GemmBackend::eigen, nn::GemmBackend::blas}) {
          const std::string name = std::string("BM_Gemm/") + pname + "/" + std::to_string(m) + "x" +
                                   std::to_string(n) + "x" + std::to_string(k) + "/" + backend_name(backend);
          benchmark::RegisterBenchmark(name.c_str(), one_gemm, product, net.batch, in, out, backend)
              ->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
        }
      }
    }
  }
  const Net predict_nets[] = {{"cartpole", {4, 120, 84, 2}, 1},
                              {"cartpole256", {4, 256, 256, 2}, 1},
                              {"candidates240", {119, 128, 64, 1}, 240}};
  for (const auto& net : predict_nets) {
    const std::string base = std::string("BM_Predict/") + net.name + "_" + sizes_name(net.sizes) + "_b" +
                             std::to_string(net.batch);
    benchmark::RegisterBenchmark((base + "/float32").c_str(), predict_float, net.sizes, net.batch)
        ->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
    benchmark::RegisterBenchmark((base + "/int8").c_str(), predict_int8, net.sizes, net.batch)
        ->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
  }
  for (const std::size_t n : {std::size_t{10'934}, std::size_t{142'024}}) {
    benchmark::RegisterBenchmark(("BM_Adam/" + std::to_string(n)).c_str(), adam_only, n)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
    benchmark::RegisterBenchmark(("BM_ClipGradNorm/" + std::to_string(n)).c_str(), clip_only, n)
        ->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Single thread on both sides of every comparison (libtorch's peer sets its own to 1).
  nn::set_blas_threads(1);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("blas_threads", std::to_string(nn::blas_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
