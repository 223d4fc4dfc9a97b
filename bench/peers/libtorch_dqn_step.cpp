// Peer of bench/agent/nn_bench.cpp on libtorch (Debian's libtorch-dev), one thread: the same DQN
// train steps and forwards, written the way a libtorch user writes them (CleanRL's dqn.py in C++):
//
//   BM_TrainStep/<net>/libtorch   target forward under NoGradGuard, TD target
//                                 r + gamma (1 - done) max_a' Q_target, online forward, gather,
//                                 Huber loss (smooth_l1, beta 1), zero_grad, backward,
//                                 clip_grad_norm_(10), Adam step.
//   BM_Predict/<net>/libtorch     one forward under InferenceMode: CartPole nets at batch 1, and
//                                 240 candidates through 139-128-64-1 (the MealSim scorer).
//
// Benchmark names match ours so bench/run_benchmarks.sh can pair them. Built only when CMake
// finds libtorch (bench/agent/CMakeLists.txt); never part of the default build's needs.
//
// `--check_adam` instead runs torch.optim.Adam and forkcast's nn::Adam<float> side by side (five
// steps with weight decay on 100 003 parameters) and prints how many parameters and moments
// differ bit for bit, as one JSON line.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "forkcast/agent/nn.hpp"

namespace {

torch::nn::Sequential make_mlp(const std::vector<int>& sizes) {
  torch::nn::Sequential net;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    net->push_back(torch::nn::Linear(sizes[l], sizes[l + 1]));
    if (l + 2 < sizes.size()) net->push_back(torch::nn::ReLU());
  }
  return net;
}

std::string sizes_name(const std::vector<int>& sizes) {
  std::string s;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i > 0) s += '-';
    s += std::to_string(sizes[i]);
  }
  return s;
}

void train_step(benchmark::State& state, std::vector<int> sizes, int batch) {
  torch::manual_seed(1);
  auto online = make_mlp(sizes);
  auto target = make_mlp(sizes);
  torch::optim::Adam optimizer(online->parameters(), torch::optim::AdamOptions(2.5e-4));
  const auto states = torch::rand({batch, sizes.front()}) * 2 - 1;
  const auto next_states = torch::rand({batch, sizes.front()}) * 2 - 1;
  const auto actions = torch::randint(0, sizes.back(), {batch, 1}, torch::kLong);
  const auto rewards = torch::ones({batch});
  const auto dones = (torch::rand({batch}) < 0.02).to(torch::kFloat);
  constexpr double kGamma = 0.99;
  for (auto _ : state) {
    torch::Tensor td_target;
    {
      torch::NoGradGuard no_grad;
      const auto next_q = std::get<0>(target->forward(next_states).max(1));
      td_target = rewards + kGamma * next_q * (1 - dones);
    }
    const auto q = online->forward(states).gather(1, actions).squeeze(1);
    auto loss = torch::nn::functional::smooth_l1_loss(q, td_target);
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(online->parameters(), 10.0);
    optimizer.step();
    benchmark::DoNotOptimize(loss.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations());
}

void predict(benchmark::State& state, std::vector<int> sizes, int batch) {
  torch::manual_seed(5);
  auto net = make_mlp(sizes);
  const auto x = torch::rand({batch, sizes.front()});
  torch::InferenceMode guard;
  for (auto _ : state) {
    const auto y = net->forward(x);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations());
}

// Same data through both optimizers; counts of values that differ in any bit.
int check_adam() {
  constexpr std::int64_t kCount = 100'003;
  constexpr int kSteps = 5;
  torch::manual_seed(7);
  const auto initial = torch::randn({kCount});
  std::vector<torch::Tensor> grads;
  for (int t = 0; t < kSteps; ++t) grads.push_back(torch::randn({kCount}) * 0.1);
  const double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;

  auto p = initial.clone().set_requires_grad(true);
  torch::optim::Adam torch_adam({p}, torch::optim::AdamOptions(lr).betas({beta1, beta2}).eps(eps).weight_decay(weight_decay));
  std::vector<float> ours(initial.data_ptr<float>(), initial.data_ptr<float>() + kCount);
  forkcast::agent::nn::Adam<float> adam(static_cast<std::size_t>(kCount), {lr, beta1, beta2, eps, weight_decay});
  for (int t = 0; t < kSteps; ++t) {
    p.mutable_grad() = grads[static_cast<std::size_t>(t)].clone();
    torch_adam.step();
    const float* g = grads[static_cast<std::size_t>(t)].data_ptr<float>();
    adam.step(ours, std::span<const float>(g, static_cast<std::size_t>(kCount)));
  }
  auto differ = [&](const float* a, const float* b) {
    long n = 0;
    for (std::int64_t i = 0; i < kCount; ++i) n += std::memcmp(a + i, b + i, sizeof(float)) != 0 ? 1 : 0;
    return n;
  };
  auto& state = static_cast<torch::optim::AdamParamState&>(*torch_adam.state().begin()->second);
  const long params = differ(p.data_ptr<float>(), ours.data());
  const long m = differ(state.exp_avg().data_ptr<float>(), adam.first_moment().data());
  const long v = differ(state.exp_avg_sq().data_ptr<float>(), adam.second_moment().data());
  std::printf("{\"check\": \"adam_bitwise\", \"values\": %ld, \"steps\": %d, \"param_mismatches\": %ld, "
              "\"exp_avg_mismatches\": %ld, \"exp_avg_sq_mismatches\": %ld}\n",
              static_cast<long>(kCount), kSteps, params, m, v);
  return params + m + v == 0 ? 0 : 1;
}

struct Net {
  const char* name;
  std::vector<int> sizes;
  int batch;
};

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  if (argc > 1 && std::strcmp(argv[1], "--check_adam") == 0) return check_adam();
  const Net train_nets[] = {{"cartpole", {4, 120, 84, 2}, 128}, {"mealsim", {96, 256, 256, 200}, 256}};
  for (const auto& net : train_nets) {
    const std::string name = std::string("BM_TrainStep/") + net.name + "_" + sizes_name(net.sizes) + "_b" +
                             std::to_string(net.batch) + "/libtorch";
    benchmark::RegisterBenchmark(name.c_str(), train_step, net.sizes, net.batch)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
  }
  const Net predict_nets[] = {{"cartpole", {4, 120, 84, 2}, 1},
                              {"cartpole256", {4, 256, 256, 2}, 1},
                              {"candidates240", {139, 128, 64, 1}, 240}};  // the MealSim scorer's shape
  for (const auto& net : predict_nets) {
    const std::string name = std::string("BM_Predict/") + net.name + "_" + sizes_name(net.sizes) + "_b" +
                             std::to_string(net.batch) + "/libtorch";
    benchmark::RegisterBenchmark(name.c_str(), predict, net.sizes, net.batch)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("torch_threads", std::to_string(torch::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
