// MealSim throughput, single thread: steps per second with the full shipped catalog,
// the policy cost kept minimal (first allowed meal after a rotating offset) so the
// number measures the simulator, and with the random baseline for reference.
#include <benchmark/benchmark.h>

#include "forkcast/env/baselines.hpp"

namespace fe = forkcast::env;

namespace {

struct World {
  fe::Catalog catalog = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  fe::Population population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
};

const World& world() {
  static const World w;
  return w;
}

void BM_MealSimStep(benchmark::State& state) {
  fe::MealSim sim(world().catalog, world().population);
  std::uint64_t seed = 1;
  sim.reset(seed);
  std::size_t offset = 0;
  for (auto _ : state) {
    const auto mask = sim.action_mask();
    std::size_t a = (offset += 7) % mask.size();
    while (!mask[a]) a = (a + 1) % mask.size();
    const auto r = sim.step(static_cast<fe::Action>(a));
    benchmark::DoNotOptimize(r.reward);
    if (sim.done()) sim.reset(++seed);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["meals"] = static_cast<double>(world().catalog.size());
}
BENCHMARK(BM_MealSimStep);

void BM_MealSimStepRandomPolicy(benchmark::State& state) {
  fe::MealSim sim(world().catalog, world().population);
  fe::RandomPolicy policy;
  std::mt19937_64 rng(3);
  std::uint64_t seed = 1;
  sim.reset(seed);
  for (auto _ : state) {
    const auto r = sim.step(policy.act(sim, rng));
    benchmark::DoNotOptimize(r.reward);
    if (sim.done()) sim.reset(++seed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MealSimStepRandomPolicy);

void BM_MealSimReset(benchmark::State& state) {
  fe::MealSim sim(world().catalog, world().population);
  std::uint64_t seed = 1;
  for (auto _ : state) {
    sim.reset(++seed);
    benchmark::DoNotOptimize(sim.observation().data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MealSimReset);

}  // namespace

BENCHMARK_MAIN();
