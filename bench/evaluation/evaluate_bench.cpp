// `forkcast evaluate` cost, single thread: the budget is 4 policies x 1000 users x 1
// seed in under 60 s on the 2-core reference machine. The four baselines are evaluated
// (the planning oracle, which scores every allowed meal with a look-ahead, is the
// expensive one); the timed region holds what the command does after loading the catalog:
// building the policies (the popularity estimate included), simulating, the bootstrap
// statistics and rendering report.json, report.html and report.md.
// bench/evaluation/run_evaluate_bench.sh times the whole command line as well.
#include <benchmark/benchmark.h>

#include "forkcast/evaluation/evaluation.hpp"
#include "forkcast/evaluation/policy_loader.hpp"
#include "forkcast/evaluation/report.hpp"

namespace fe = forkcast::env;
namespace fev = forkcast::evaluation;

namespace {

struct World {
  fe::Catalog catalog = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  fe::Population population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
};

const World& world() {
  static const World w;
  return w;
}

// One policy alone: where the time goes.
void BM_EvaluateOnePolicy1000Users(benchmark::State& state, const char* name) {
  fev::PolicyLoadContext context;
  context.catalog = &world().catalog;
  context.population = &world().population;
  auto p = fev::load_meal_policy(name, context);
  std::vector<fe::MealPolicy*> raw = {p.policy.get()};
  std::vector<std::string> names = {p.label};
  fev::EvaluationOptions o;
  o.users = 1000;
  for (auto _ : state) {
    auto r = fev::evaluate_policies(raw, names, world().catalog, world().population, {}, o);
    benchmark::DoNotOptimize(r.policies.front().weeks);
  }
  state.counters["weeks/s"] = benchmark::Counter(1000.0 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_EvaluateOnePolicy1000Users, random, "random")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EvaluateOnePolicy1000Users, popularity, "popularity")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EvaluateOnePolicy1000Users, myopic_oracle, "myopic-oracle")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EvaluateOnePolicy1000Users, planning_oracle, "planning-oracle")->Unit(benchmark::kMillisecond);

// The case: 4 policies x 1000 users x 1 seed, reports rendered.
void BM_Evaluate4Policies1000Users(benchmark::State& state) {
  fev::PolicyLoadContext context;
  context.catalog = &world().catalog;
  context.population = &world().population;
  fev::ReportContext rc;
  rc.catalog_sha256 = world().catalog.content_hash();
  rc.catalog_meals = world().catalog.size();
  for (const auto& a : world().population.archetypes()) rc.archetype_names.push_back(a.name);
  fev::EvaluationOptions o;
  o.users = 1000;
  o.seeds = 1;
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::vector<fev::LoadedPolicy> loaded;
    for (const char* name : {"random", "popularity", "myopic-oracle", "planning-oracle"}) {
      loaded.push_back(fev::load_meal_policy(name, context));
    }
    std::vector<fe::MealPolicy*> raw;
    std::vector<std::string> names;
    for (auto& p : loaded) {
      raw.push_back(p.policy.get());
      names.push_back(p.label);
    }
    const auto result = fev::evaluate_policies(raw, names, world().catalog, world().population, {}, o);
    const auto report = fev::build_report_json(rc, loaded, result, nullptr);
    bytes = report.dump(2).size() + fev::render_report_html(report).size() + fev::render_report_markdown(report).size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["report_bytes"] = static_cast<double>(bytes);
  state.counters["budget_s"] = 60;
}
BENCHMARK(BM_Evaluate4Policies1000Users)->Unit(benchmark::kSecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
