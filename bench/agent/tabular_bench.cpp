// Tabular Q-learning speed on Taxi-v3, single thread:
//   BM_QUpdateTaxi      Q-updates per second, environment excluded (transitions drawn
//                       beforehand from Taxi's own table);
//   BM_TaxiTrainCourse  a whole training run with the Deep RL course settings (25 000
//                       episodes, env included), the number bench/peers/taxi_qlearning.py
//                       measures for Python + numpy.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "forkcast/agent/tabular_q.hpp"
#include "forkcast/env/taxi.hpp"
#include "forkcast/training/tabular_training.hpp"

namespace {

namespace fa = forkcast::agent;
namespace fe = forkcast::env;

void BM_QUpdateTaxi(benchmark::State& state) {
  constexpr std::size_t kTransitions = 1 << 16;
  std::vector<fa::Transition> transitions(kTransitions);
  std::mt19937_64 rng(1);
  for (auto& t : transitions) {
    t.state = std::uniform_int_distribution<std::int32_t>(0, fe::TaxiEnv::kNumStates - 1)(rng);
    t.action = std::uniform_int_distribution<std::int32_t>(0, fe::TaxiEnv::kNumActions - 1)(rng);
    const auto& tr = fe::TaxiEnv::transition(t.state, t.action);
    t.reward = tr.reward;
    t.next_state = tr.next_state;
    t.terminated = tr.terminated;
  }
  fa::TabularQ q({fe::TaxiEnv::kNumStates, fe::TaxiEnv::kNumActions, 0.7, 0.95, 0.0});
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(q.update(transitions[i]));
    i = (i + 1) & (kTransitions - 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QUpdateTaxi);

void BM_TaxiTrainCourse(benchmark::State& state) {
  forkcast::training::TabularTrainOptions o;
  o.env = "taxi";
  o.episodes = 25'000;
  o.max_steps = 99;
  o.learning_rate = 0.7;
  o.gamma = 0.95;
  o.epsilon_decay = 0.005;
  o.checkpoint_every = o.episodes;  // one checkpoint at the end, as a real run writes
  o.eval_episodes = 0;
  o.show_progress = false;
  o.run_dir = std::filesystem::temp_directory_path() / "forkcast_bench_taxi";
  std::int64_t steps = 0;
  for (auto _ : state) {
    steps += forkcast::training::train_tabular(o).total_steps;
    ++o.seed;
  }
  state.SetItemsProcessed(steps);
  state.counters["updates_per_run"] = benchmark::Counter(static_cast<double>(steps) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_TaxiTrainCourse)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
