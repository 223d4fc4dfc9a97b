// One learning cycle end to end (learning/cycle.hpp) against a real PostgreSQL: a decision
// log of simulated weeks, the bundled model in production; the cycle joins, trains, gates,
// writes the model and its report and commits it all with the watermark; a second cycle
// finds nothing new; a second learner is turned away; no production model is an error that
// says what to do.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "forkcast/db/database.hpp"
#include "forkcast/db/learning_log.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "forkcast/learning/cycle.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/snapshot.hpp"
#include "learning_test_support.hpp"
#include "pg_test_support.hpp"

namespace fl = forkcast::learning;
namespace fdb = forkcast::db;
namespace fe = forkcast::env;
namespace fev = forkcast::evaluation;
using forkcast::learning::testing::log_simulated_weeks;
using fdb::testing::TestInstance;
using fdb::testing::unique_suffix;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string kBundled = forkcast::learning::testing::kBundledModel;

const fe::Catalog& catalog() { return forkcast::learning::testing::shipped_catalog(); }

fl::CycleOptions options_for(const TestInstance& pg, const std::filesystem::path& dir) {
  fl::CycleOptions o;
  o.database_url = pg.url();
  auto& l = o.config.learning;
  l.learner = "test";
  l.clock = "log";
  l.reward_wait_s = 3600;
  l.next_wait_s = 6 * 3600;
  l.min_transitions = 200;
  l.updates = 60;
  l.batch_size = 16;
  l.gate_min_ess = 5;
  l.gate_bootstrap_resamples = 100;
  l.models_dir = (dir / "models").string();
  l.reports_dir = (dir / "reports").string();
  o.command = "cycle_test";
  return o;
}

class LearningCycle : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<fdb::Database>(fdb::DatabaseOptions{pg_.url(), 3, 5'000, 2, true});
    dir_ = std::filesystem::temp_directory_path() / ("forkcast-cycle-" + unique_suffix());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void register_bundled() {
    db_->models().register_model({"bundled", "dqn", forkcast::policy::sha256_file_hex(kBundled), kBundled, json::object()});
    db_->models().promote("bundled");
  }
  TestInstance pg_;
  std::unique_ptr<fdb::Database> db_;
  std::filesystem::path dir_;
};

}  // namespace

TEST_F(LearningCycle, ACycleLearnsFromTheLogAndCommitsItsModelReportAndWatermarkTogether) {
  register_bundled();
  log_simulated_weeks(*db_, catalog(), 24, 9001);
  const fl::CycleOptions options = options_for(pg_, dir_);
  const fl::CycleSummary s = fl::run_cycle(*db_, catalog(), options);
  ASSERT_TRUE(s.committed) << s.reason;
  ASSERT_TRUE(s.model_version);
  EXPECT_GT(s.stats["data"]["transitions"].get<int>(), 500);
  EXPECT_EQ(s.stats["data"]["skipped"]["unknown_meal"], 0);
  EXPECT_GT(s.stats["split"]["gate"].get<int>(), 0);
  EXPECT_GT(s.stats["split"]["train"].get<int>(), s.stats["split"]["gate"].get<int>());
  EXPECT_EQ(s.stats["training"]["updates"], 60);

  // The model file loads as the service would load it, and the registry has it with the
  // status the gate chose.
  ASSERT_TRUE(std::filesystem::exists(s.model_path));
  const auto model = db_->models().find(*s.model_version);
  ASSERT_TRUE(model);
  EXPECT_EQ(model->registered.sha256, forkcast::policy::sha256_file_hex(s.model_path));
  EXPECT_NO_THROW(forkcast::policy::PolicySnapshot::load(s.model_path, catalog(), *s.model_version));
  if (s.outcome == fdb::CycleOutcome::promoted) {
    EXPECT_EQ(db_->models().production()->registered.version, *s.model_version);
  } else {
    EXPECT_EQ(model->status, fdb::ModelStatus::rejected);
    EXPECT_EQ(db_->models().production()->registered.version, "bundled");
  }
  EXPECT_EQ(model->registered.metrics["parent"], "bundled");
  EXPECT_TRUE(std::filesystem::exists(s.report_dir / "report.json"));
  EXPECT_TRUE(std::filesystem::exists(s.report_dir / "report.html"));
  ASSERT_EQ(db_->eval_reports().list_for_model(*s.model_version).size(), 1U);

  fdb::LearningLog log(db_->pool());
  const auto cycles = log.cycles("test");
  ASSERT_EQ(cycles.size(), 1U);
  EXPECT_EQ(cycles[0].model_version, s.model_version);
  ASSERT_TRUE(log.watermark("test"));

  // Nothing new: the next cycle commits nothing and says so.
  const fl::CycleSummary again = fl::run_cycle(*db_, catalog(), options);
  EXPECT_FALSE(again.committed);
  EXPECT_EQ(again.reason.rfind("nothing new", 0), 0U) << again.reason;
  EXPECT_EQ(log.cycles("test").size(), 1U);
}

TEST_F(LearningCycle, TooFewTransitionsWaitWithoutMovingTheWatermark) {
  register_bundled();
  log_simulated_weeks(*db_, catalog(), 2, 77);
  fl::CycleOptions options = options_for(pg_, dir_);
  options.config.learning.min_transitions = 100'000;
  const fl::CycleSummary s = fl::run_cycle(*db_, catalog(), options);
  EXPECT_FALSE(s.committed);
  EXPECT_EQ(s.reason.rfind("waiting for data: ", 0), 0U) << s.reason;
  EXPECT_FALSE(fdb::LearningLog(db_->pool()).watermark("test"));
}

TEST_F(LearningCycle, ASecondLearnerIsTurnedAwayAndNoProductionModelSaysWhatToDo) {
  const fl::CycleOptions options = options_for(pg_, dir_);
  try {
    (void)fl::run_cycle(*db_, catalog(), options);
    FAIL() << "ran without a production model";
  } catch (const fl::CycleError& e) {
    EXPECT_NE(std::string(e.what()).find("promote one first"), std::string::npos) << e.what();
  }
  register_bundled();
  auto held = fdb::LearnerLock::try_acquire(pg_.url(), "test");
  ASSERT_TRUE(held);
  EXPECT_THROW((void)fl::run_cycle(*db_, catalog(), options), fl::LearnerBusy);
}
