// Single-thread CartPole-v1 throughput: environment steps per second, resets included
// (the loop an agent runs). Compared with a plain numpy CartPole by
// bench/env/run_env_bench.sh; results go to docs/performance.md.
#include <benchmark/benchmark.h>

#include "forkcast/env/cartpole.hpp"

namespace {

using forkcast::env::Action;
using forkcast::env::CartPoleEnv;

// Pushes towards the side the pole leans to: a cheap policy that reads the observation,
// so the step cannot be optimised away, and episodes last tens to hundreds of steps.
void BM_CartPoleStep(benchmark::State& state) {
  CartPoleEnv env;
  CartPoleEnv::Observation obs = env.reset(1);
  for (auto _ : state) {
    const Action action = obs[2] + obs[3] > 0.0F ? 1 : 0;
    const CartPoleEnv::Step step = env.step(action);
    obs = step.observation;
    if (step.terminated || step.truncated) [[unlikely]] {
      obs = env.reset();
    }
    benchmark::DoNotOptimize(obs);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CartPoleStep);

// Alternating pushes: short episodes, so resets (four draws from mt19937_64) weigh more.
void BM_CartPoleStepAlternating(benchmark::State& state) {
  CartPoleEnv env;
  env.reset(1);
  Action action = 0;
  for (auto _ : state) {
    const CartPoleEnv::Step step = env.step(action);
    action ^= 1;
    benchmark::DoNotOptimize(step);
    if (step.terminated || step.truncated) [[unlikely]] {
      env.reset();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CartPoleStepAlternating);

}  // namespace

BENCHMARK_MAIN();
