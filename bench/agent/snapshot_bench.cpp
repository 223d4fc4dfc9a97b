// Serving inference: PolicySnapshot scoring the candidates of one MealSim state, float32
// (factorized first layer) and int8, single thread — the number to compare with a
// framework's plain batched forward (bench_nn's BM_PredictCandidates, libtorch's peer).
// The label names the kernel that ran (avx512, avx2 or generic); FORKCAST_SCORER_ISA=avx2 or
// none caps it, to measure the narrower kernels on a wider CPU.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/training/dqn_training.hpp"
#include "forkcast/policy/snapshot.hpp"

namespace fp = forkcast::policy;
namespace ft = forkcast::training;
namespace fe = forkcast::env;

namespace {

struct Fixture {
  fe::Catalog catalog = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  fe::Population population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
  std::shared_ptr<const fp::PolicySnapshot> snapshot;
  std::vector<float> observation;
  Fixture() {
    // A network of the shipped MealSim shape; its weights do not matter for timing.
    auto o = ft::default_dqn_options("mealsim");
    o.total_steps = 200;
    o.learning_starts = 1'000;
    o.eval_every = 0;
    o.eval_episodes = 0;
    o.show_progress = false;
    o.data_dir = FORKCAST_SOURCE_DIR "/data";
    o.run_dir = std::filesystem::temp_directory_path() / "forkcast_bench_snapshot";
    snapshot = fp::PolicySnapshot::load(ft::train_dqn(o).model, catalog, "bench");
    fe::MealSim sim(catalog, population);
    sim.reset(1);
    observation.assign(sim.observation().begin(), sim.observation().end());
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

void BM_SnapshotScore(benchmark::State& state) {
  const auto& f = fixture();
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto precision = state.range(1) == 0 ? fp::Precision::float32 : fp::Precision::int8;
  std::vector<std::int32_t> candidates(n);
  for (std::size_t i = 0; i < n; ++i) candidates[i] = static_cast<std::int32_t>(i % f.catalog.size());
  std::vector<float> recency(n, 0.0F), scores(n);
  auto ws = f.snapshot->make_workspace();
  for (auto _ : state) {
    f.snapshot->score(f.observation, candidates, recency, scores, ws, precision);
    benchmark::DoNotOptimize(scores.data());
  }
  state.SetLabel(std::string(precision == fp::Precision::float32 ? "float32 " : "int8 ") +
                 f.snapshot->kernel(precision));
}
BENCHMARK(BM_SnapshotScore)->Args({240, 0})->Args({240, 1})->Args({100, 0})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
