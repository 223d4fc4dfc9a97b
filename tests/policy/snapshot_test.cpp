// PolicySnapshot: loads a trained MealSim model, scores like the network, refuses a model
// of another catalog, and allocates nothing per request once its workspace exists.
#include "forkcast/policy/snapshot.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <filesystem>
#include <fstream>
#include <new>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/training/dqn_training.hpp"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// Counting allocator for this test binary: the hot-path test reads the counter around score().
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace fp = forkcast::policy;
namespace ft = forkcast::training;
namespace fe = forkcast::env;
namespace fs = std::filesystem;

namespace {

const fs::path kData = FORKCAST_SOURCE_DIR "/data";

fs::path small_model() {
  static const fs::path model = [] {
    auto o = ft::default_dqn_options("mealsim");
    o.total_steps = 3'000;
    o.learning_starts = 500;
    o.eval_every = 0;
    o.eval_episodes = 0;
    o.show_progress = false;
    o.data_dir = kData;
    o.run_dir = fs::temp_directory_path() / "forkcast_snapshot_model";
    fs::remove_all(o.run_dir);
    return ft::train_dqn(o).model;
  }();
  return model;
}

void check_snapshot_scores(const std::string& cap);

}  // namespace

// Every kernel this CPU can run (the fused AVX-512 and AVX2 ones, capped with
// FORKCAST_SCORER_ISA, and the generic Eigen path) scores like the network: float32 like
// Mlp::predict, int8 like QuantizedMlp::predict on full rows, both within rounding.
TEST(PolicySnapshot, ScoresLikeTheNetworkWithoutAllocating) {
  for (const char* cap : {"avx512", "avx2", "none"}) {
    SCOPED_TRACE(cap);
    ::setenv("FORKCAST_SCORER_ISA", cap, 1);
    check_snapshot_scores(cap);
  }
  ::unsetenv("FORKCAST_SCORER_ISA");
}

namespace {

void check_snapshot_scores(const std::string& cap) {
  const auto catalog = fe::Catalog::load(kData);
  const auto population = fe::Population::load(kData / "population.yaml");
  const auto snapshot = fp::PolicySnapshot::load(small_model(), catalog, "v1");
  const std::string kernel = snapshot->kernel(fp::Precision::float32);
  EXPECT_EQ(kernel, snapshot->kernel(fp::Precision::int8));
  if (cap == "none") {
    EXPECT_EQ(kernel, "generic");
  }
  if (cap == "avx2") {
    EXPECT_NE(kernel, "avx512");
  }
  std::printf("[ kernel ] cap %s: %s\n", cap.c_str(), kernel.c_str());
  const forkcast::agent::nn::QuantizedMlp int8_network(snapshot->network());
  forkcast::agent::nn::Matrix<float> int8_expected;
  EXPECT_EQ(snapshot->version(), "v1");
  EXPECT_EQ(snapshot->sha256().size(), 64U);
  auto ws = snapshot->make_workspace();
  fe::MealSim sim(catalog, population);
  std::vector<std::int32_t> candidates;
  std::vector<float> recency, scores, int8_scores;
  candidates.reserve(fp::kMaxCandidates);
  recency.reserve(fp::kMaxCandidates);
  scores.reserve(fp::kMaxCandidates);
  int8_scores.reserve(fp::kMaxCandidates);
  forkcast::agent::nn::Matrix<float> rows, expected;
  forkcast::agent::nn::Workspace<float> nws;
  long hot_path_allocations = 0;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    sim.reset(seed);
    while (!sim.done()) {
      candidates.clear();
      recency.clear();
      for (std::size_t m = 0; m < sim.action_mask().size(); ++m) {
        if (!sim.action_mask()[m]) continue;
        candidates.push_back(static_cast<std::int32_t>(m));
        recency.push_back(static_cast<float>(sim.meal_recency(static_cast<fe::Action>(m))));
      }
      scores.resize(candidates.size());
      int8_scores.resize(candidates.size());
      if (seed == 0 && sim.step_index() == 0) {
        // Warm-up: the first call sizes the int8 path's scratch once.
        snapshot->score(sim.observation(), candidates, recency, int8_scores, ws, fp::Precision::int8);
      }
      const long before = g_allocations.load();
      snapshot->score(sim.observation(), candidates, recency, scores, ws);
      snapshot->score(sim.observation(), candidates, recency, int8_scores, ws, fp::Precision::int8);
      hot_path_allocations += g_allocations.load() - before;
      // Reference: the network's own predict on the same rows.
      rows.resize(static_cast<Eigen::Index>(candidates.size()), fe::kCandidateInputSize);
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        fe::write_candidate_input(catalog, sim.observation(), candidates[c], recency[c],
                                  rows.row(static_cast<Eigen::Index>(c)).data());
      }
      snapshot->network().predict(rows, expected, nws);
      int8_network.predict(rows, int8_expected, nws);
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        const float e = expected(static_cast<Eigen::Index>(c), 0);
        const float q = int8_expected(static_cast<Eigen::Index>(c), 0);
        ASSERT_NEAR(scores[c], e, 1e-4F + 1e-5F * std::abs(e));
        // The int8 network, not float: the same quantized weights, another summation order.
        ASSERT_NEAR(int8_scores[c], q, 1e-4F + 1e-5F * std::abs(q));
        ASSERT_NEAR(int8_scores[c], e, 0.05F + 0.05F * std::abs(scores[c]));
      }
      sim.step(candidates.front());
    }
  }
  EXPECT_EQ(hot_path_allocations, 0);
}

}  // namespace

TEST(PolicySnapshot, RefusesAModelOfAnotherCatalog) {
  const auto mini = fe::Catalog::load(FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini");
  try {
    fp::PolicySnapshot::load(small_model(), mini, "v1");
    FAIL() << "a model of another catalog loaded";
  } catch (const fp::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("not for this catalog"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fp::PolicySnapshot::load("/nonexistent/model.safetensors", mini, "v1"), fp::CheckpointError);
}
