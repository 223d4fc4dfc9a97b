// --policy names and checkpoint files: built-ins, the format registry, refusals by name.
#include "forkcast/evaluation/policy_loader.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "forkcast/agent/mealsim_discretizer.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/evaluation/served_policy.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "shipped_world.hpp"

namespace fp = forkcast::policy;
namespace fev = forkcast::evaluation;
namespace fe = forkcast::env;
namespace fs = std::filesystem;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }
const fe::Population& population() { return forkcast::test::shipped_population(); }

fev::PolicyLoadContext load_context() {
  fev::PolicyLoadContext c;
  c.catalog = &catalog();
  c.population = &population();
  c.popularity_users = 200;
  return c;
}

fs::path temp_dir() {
  const auto dir = fs::temp_directory_path() / "forkcast_policy_loader_test";
  fs::create_directories(dir);
  return dir;
}

// A tabular MealSim checkpoint whose greedy choice is the allowed meal of highest index.
fp::Checkpoint tabular_checkpoint(const std::string& env_spec) {
  const int states = forkcast::agent::MealSimDiscretizer::kNumStates;
  const int actions = static_cast<int>(catalog().size());
  std::vector<double> q(static_cast<std::size_t>(states) * static_cast<std::size_t>(actions));
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<double>(i % static_cast<std::size_t>(actions));
  fp::Checkpoint c;
  c.tensors.push_back(fp::Tensor::from_span<double>("q_table", {states, actions}, q));
  c.metadata = {{"format", "forkcast.tabular.v1"},
                {"env", "mealsim"},
                {"env_spec", env_spec},
                {"episode", "1000"},
                {"seed", "3"},
                {"config", R"({"learning_rate":0.02,"gamma":0.8,"episodes":1000})"},
                {"rng_state", "1 2 3"},
                {"git_revision", "abc"}};
  return c;
}

std::string good_spec() { return "MealSim catalog " + catalog().content_hash(); }

fs::path save(const std::string& name, const fp::Checkpoint& c) {
  const auto path = temp_dir() / name;
  fp::save_safetensors(path, c);
  return path;
}

template <class E>
std::string error_of(const std::string& spec) {
  try {
    fev::load_meal_policy(spec, load_context());
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(PolicyLoader, BuiltInsLoadAndSayWhetherLogsCanEvaluateThem) {
  for (const auto& name : fev::builtin_policy_names()) {
    const auto p = fev::load_meal_policy(name, load_context());
    EXPECT_EQ(p.label, name);
    EXPECT_EQ(p.kind, "built-in");
    ASSERT_TRUE(p.policy);
    EXPECT_FALSE(p.description.empty());
    if (p.reads_hidden_state || name.starts_with("belief-")) {
      // Oracles read what logs lack; belief policies replay whole weeks, not single decisions.
      EXPECT_FALSE(p.ope_target) << name;
      EXPECT_FALSE(p.ope_unavailable.empty()) << name;
    } else {
      EXPECT_TRUE(p.ope_target) << name;
    }
  }
  EXPECT_FALSE(fev::load_meal_policy("belief-planner", load_context()).reads_hidden_state);
  EXPECT_NE(fev::load_meal_policy("belief-planner:32", load_context()).description.find("(32 simulated users"),
            std::string::npos);
  for (const char* bad : {"belief-planner:0", "belief-planner:", "belief-myopic:12x", "belief-planner:99999"}) {
    try {
      fev::load_meal_policy(bad, load_context());
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("N particles in 1..4096"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fev::load_meal_policy("myopic-oracle", load_context()).reads_hidden_state);
}

TEST(PolicyLoader, UnknownNameListsTheBuiltIns) {
  const auto msg = error_of<std::invalid_argument>("randm");
  EXPECT_NE(msg.find("randm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("planning-oracle"), std::string::npos) << msg;
}

TEST(PolicyLoader, MissingCheckpointIsRefusedNamingTheFile) {
  const auto path = (temp_dir() / "does-not-exist.safetensors").string();
  const auto msg = error_of<fp::CheckpointError>(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("no such checkpoint"), std::string::npos) << msg;
}

TEST(PolicyLoader, CorruptedCheckpointIsRefusedNamingTheFile) {
  const auto path = temp_dir() / "corrupt.safetensors";
  std::ofstream(path, std::ios::binary) << "\x10\x00\x00\x00\x00\x00\x00\x00{not json at all";
  const auto msg = error_of<fp::CheckpointError>(path.string());
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  // A truncated copy of a valid checkpoint.
  const auto good = save("good_for_truncation.safetensors", tabular_checkpoint(good_spec()));
  const auto truncated = temp_dir() / "truncated.safetensors";
  fs::copy_file(good, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, fs::file_size(good) / 2);
  const auto msg2 = error_of<fp::CheckpointError>(truncated.string());
  EXPECT_NE(msg2.find(truncated.string()), std::string::npos) << msg2;
}

TEST(PolicyLoader, CatalogMismatchNamesTheFileAndBothHashes) {
  const std::string other = std::string(64, 'a');
  const auto path = save("other_catalog.safetensors", tabular_checkpoint("MealSim catalog " + other));
  const auto msg = error_of<fp::CheckpointError>(path.string());
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find(other), std::string::npos) << msg;
  EXPECT_NE(msg.find(catalog().content_hash()), std::string::npos) << msg;
}

TEST(PolicyLoader, OtherEnvironmentAndUnknownFormatAreRefused) {
  auto taxi = tabular_checkpoint("Taxi-v3");
  taxi.metadata["env"] = "taxi";
  const auto taxi_path = save("taxi.safetensors", taxi);
  EXPECT_NE(error_of<fp::CheckpointError>(taxi_path.string()).find("taxi"), std::string::npos);

  auto future = tabular_checkpoint(good_spec());
  future.metadata["format"] = "forkcast.future.v9";
  const auto future_path = save("future.safetensors", future);
  const auto msg = error_of<fp::CheckpointError>(future_path.string());
  EXPECT_NE(msg.find("forkcast.future.v9"), std::string::npos) << msg;
  EXPECT_NE(msg.find("forkcast.tabular.v1"), std::string::npos) << msg;  // what this build knows

  auto no_format = tabular_checkpoint(good_spec());
  no_format.metadata.erase("format");
  const auto no_format_path = save("no_format.safetensors", no_format);
  EXPECT_NE(error_of<fp::CheckpointError>(no_format_path.string()).find("\"format\""), std::string::npos);
}

TEST(PolicyLoader, WrongTableShapeIsRefused) {
  auto c = tabular_checkpoint(good_spec());
  std::vector<double> q(10 * 6, 0.0);
  c.tensors = {fp::Tensor::from_span<double>("q_table", {10, 6}, q)};
  const auto path = save("small_table.safetensors", c);
  const auto msg = error_of<fp::CheckpointError>(path.string());
  EXPECT_NE(msg.find("q_table"), std::string::npos) << msg;
}

TEST(PolicyLoader, TabularCheckpointActsGreedilyInSimulationAndFromLogs) {
  const auto path = save("tabular.safetensors", tabular_checkpoint(good_spec()));
  auto p = fev::load_meal_policy(path.string(), load_context());
  EXPECT_EQ(p.kind, "checkpoint");
  ASSERT_TRUE(p.checkpoint);
  EXPECT_EQ(p.checkpoint->format, "forkcast.tabular.v1");
  EXPECT_EQ(p.checkpoint->sha256.size(), 64U);
  EXPECT_FALSE(p.checkpoint->metadata.contains("rng_state"));  // resume state stays out of reports
  EXPECT_EQ(p.checkpoint->metadata.at("git_revision"), "abc");
  ASSERT_TRUE(p.ope_target);

  fe::MealSim sim(catalog(), population());
  sim.reset(42);
  std::mt19937_64 rng(0);
  const auto action = p.policy->act(sim, rng);
  const auto mask = sim.action_mask();
  ASSERT_TRUE(mask[static_cast<std::size_t>(action)]);
  for (std::size_t m = static_cast<std::size_t>(action) + 1; m < mask.size(); ++m) EXPECT_FALSE(mask[m]);

  fev::LoggedDecision d;
  const auto obs = sim.observation();
  d.state_features.assign(obs.begin(), obs.end());
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) d.candidates.push_back(static_cast<std::int32_t>(m));
  }
  std::vector<double> pmf(d.candidates.size());
  p.ope_target->pmf(d, pmf);
  EXPECT_EQ(pmf.back(), 1.0);  // the highest-index candidate
  EXPECT_EQ(std::accumulate(pmf.begin(), pmf.end(), 0.0), 1.0);
}

TEST(PolicyLoader, NewFormatsRegisterInOnePlace) {
  auto formats = fev::builtin_checkpoint_formats();
  EXPECT_THROW(formats.add("forkcast.tabular.v1", nullptr), std::invalid_argument);
  bool called = false;
  formats.add("forkcast.test.v1", [&](const fp::Checkpoint& c, const fs::path&, const fev::PolicyLoadContext&) {
    called = true;
    EXPECT_EQ(c.metadata.at("format"), "forkcast.test.v1");
    fev::LoadedPolicy p;
    p.label = "test-agent";
    p.policy = std::make_unique<fe::RandomPolicy>();
    return p;
  });
  auto c = tabular_checkpoint(good_spec());
  c.metadata["format"] = "forkcast.test.v1";
  const auto path = save("test_format.safetensors", c);
  const auto p = fev::load_meal_policy(path.string(), load_context(), formats);
  EXPECT_TRUE(called);
  EXPECT_EQ(p.label, "test-agent");
  EXPECT_EQ(p.kind, "checkpoint");
  EXPECT_FALSE(p.ope_unavailable.empty());  // no target given: said so
  // The common checks run before any factory: a mismatched catalog never reaches it.
  called = false;
  c.metadata["env_spec"] = "MealSim catalog 0000";
  const auto bad = save("test_format_bad.safetensors", c);
  EXPECT_THROW(fev::load_meal_policy(bad.string(), load_context(), formats), fp::CheckpointError);
  EXPECT_FALSE(called);
}

TEST(PolicyLoader, LabelsAreMadeUnique) {
  std::vector<fev::LoadedPolicy> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(fev::load_meal_policy("random", load_context()));
  ps.push_back(fev::load_meal_policy("myopic-oracle", load_context()));
  fev::make_labels_unique(ps);
  EXPECT_EQ(ps[0].label, "random");
  EXPECT_EQ(ps[1].label, "random#2");
  EXPECT_EQ(ps[2].label, "random#3");
  EXPECT_EQ(ps[3].label, "myopic-oracle");
}

TEST(PolicyLoader, ServedLoadsTheModelAsTheServiceDoesAndExploresByItsSchedule) {
  const std::string model = FORKCAST_SOURCE_DIR "/models/policies/mealsim-dqn-default.safetensors";
  if (!fs::exists(model)) GTEST_SKIP() << "the bundled model is not in this checkout";
  auto context = load_context();
  context.exploration.serving_epsilon_max = 1.0;  // every suggestion uniform among the allowed
  context.exploration.serving_epsilon_min = 1.0;
  auto p = fev::load_meal_policy("served:" + model, context);
  EXPECT_EQ(p.label, "served[policies/mealsim-dqn-default]");
  EXPECT_EQ(p.spec, "served:" + model);
  EXPECT_EQ(p.kind, "checkpoint");
  EXPECT_FALSE(p.ope_target);
  EXPECT_FALSE(p.ope_unavailable.empty());
  EXPECT_NE(dynamic_cast<fev::ServedMealPolicy*>(p.policy.get()), nullptr);

  // With epsilon 1 the draw, not the score, picks: other seeds give other allowed meals.
  fe::MealSim sim(catalog(), population());
  sim.reset(42);
  std::set<fe::Action> picked;
  for (std::uint64_t s = 0; s < 32; ++s) {
    std::mt19937_64 rng(s);
    const auto action = p.policy->act(sim, rng);
    ASSERT_TRUE(sim.action_mask()[static_cast<std::size_t>(action)]);
    picked.insert(action);
  }
  EXPECT_GT(picked.size(), 8U);

  // What `forkcast serve` refuses, served: refuses too, naming the file.
  const auto tabular = save("served_tabular.safetensors", tabular_checkpoint(good_spec()));
  EXPECT_NE(error_of<fp::CheckpointError>("served:" + tabular.string()).find(tabular.string()), std::string::npos);
  EXPECT_NE(error_of<std::invalid_argument>("served:").find("served:<model file>"), std::string::npos);
}
