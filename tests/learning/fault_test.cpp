// The learner under faults (learning/cycle.hpp "Crash safety"), as the real `forkcast learn
// --once` process against a real PostgreSQL:
//   - SIGKILL at five points of a cycle: nothing registered, no cycle row, the watermark
//     unmoved; the next run learns from exactly the transitions a cycle over the same range
//     has (none lost, none counted twice);
//   - PostgreSQL restarted during a cycle: the cycle fails with a clear error and commits
//     nothing; the next one succeeds.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "forkcast/db/database.hpp"
#include "forkcast/db/learning_log.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/learning/logged_dataset.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "learning_test_support.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
namespace fl = forkcast::learning;
namespace fe = forkcast::env;
using fdb::testing::TestInstance;
using fdb::testing::unique_suffix;
using forkcast::learning::testing::log_simulated_weeks;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string kBundled = forkcast::learning::testing::kBundledModel;

const fe::Catalog& catalog() { return forkcast::learning::testing::shipped_catalog(); }

// `forkcast learn --once` as a child process with the test's settings; its output goes to
// `log`. The caller waits for it or kills it.
pid_t start_learner(const std::string& url, const std::filesystem::path& dir, int updates, const std::filesystem::path& log) {
  std::vector<std::string> env = {"FORKCAST_DATABASE__URL=" + url,
                                  "FORKCAST_LEARNING__LEARNER=faults",
                                  "FORKCAST_LEARNING__CLOCK=log",
                                  "FORKCAST_LEARNING__REWARD_WAIT_S=3600",
                                  "FORKCAST_LEARNING__NEXT_WAIT_S=21600",
                                  "FORKCAST_LEARNING__MIN_TRANSITIONS=100",
                                  "FORKCAST_LEARNING__UPDATES=" + std::to_string(updates),
                                  "FORKCAST_LEARNING__BATCH_SIZE=16",
                                  "FORKCAST_LEARNING__GATE_MIN_ESS=5",
                                  "FORKCAST_LEARNING__GATE_BOOTSTRAP_RESAMPLES=100",
                                  "FORKCAST_LEARNING__MODELS_DIR=" + (dir / "models").string(),
                                  "FORKCAST_LEARNING__REPORTS_DIR=" + (dir / "reports").string(),
                                  "PATH=/usr/bin:/bin"};
  const pid_t pid = fork();
  if (pid == 0) {
    std::FILE* out = std::fopen(log.c_str(), "w");
    if (out) {
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
    }
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    char exe[] = FORKCAST_EXE;
    char learn[] = "learn";
    char once[] = "--once";
    char* argv[] = {exe, learn, once, nullptr};
    execve(exe, argv, envp.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class LearnerFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<fdb::Database>(fdb::DatabaseOptions{pg_.url(), 3, 5'000, 2, true});
    dir_ = std::filesystem::temp_directory_path() / ("forkcast-learner-faults-" + unique_suffix());
    std::filesystem::create_directories(dir_);
    db_->models().register_model({"bundled", "dqn", forkcast::policy::sha256_file_hex(kBundled), kBundled, json::object()});
    db_->models().promote("bundled");
    decisions_ = log_simulated_weeks(*db_, catalog(), 40, 515);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Nothing of a cycle is in the database: only the bundled model, no cycle, no watermark.
  void expect_nothing_committed(const std::string& context) {
    fdb::LearningLog log(db_->pool());
    EXPECT_EQ(db_->models().list().size(), 1U) << context;
    EXPECT_TRUE(log.cycles("faults").empty()) << context;
    EXPECT_FALSE(log.watermark("faults")) << context;
    EXPECT_EQ(db_->models().production()->registered.version, "bundled") << context;
  }

  // The transitions a cycle over [epoch, newest - 6 h) learns from, built in this process.
  std::int64_t expected_transitions() {
    fdb::LearningLog log(db_->pool());
    const fdb::Timestamp to = *log.newest_decision() + 1us - 6h;
    fl::DatasetBuilder builder(catalog(), {}, {.gamma = 0.9, .until = to});
    log.scan({fdb::Timestamp{}, to + 6h, 1h, 6h, 5'000},
             [&](std::span<const fdb::JoinedDecision> batch) { builder.add(batch); });
    return builder.stats().transitions;
  }

  TestInstance pg_;
  std::unique_ptr<fdb::Database> db_;
  std::filesystem::path dir_;
  std::int64_t decisions_ = 0;
};

}  // namespace

TEST_F(LearnerFaults, ALearnerKilledAnywhereInACycleLeavesNothingAndTheNextRunLearnsEveryTransitionOnce) {
  ASSERT_GT(decisions_, 1'000);
  // Five points of one cycle: starting (config, catalog, lock), joining, early and late in
  // the update, and around the gate and the files (the update of 4 000 steps takes seconds).
  for (const auto delay : {50ms, 300ms, 900ms, 2000ms, 3500ms}) {
    const pid_t pid = start_learner(pg_.url(), dir_, 4'000, dir_ / "killed.log");
    std::this_thread::sleep_for(delay);
    kill(pid, SIGKILL);
    EXPECT_EQ(wait_exit(pid), -SIGKILL) << "the learner finished before " << delay.count() << " ms; make the cycle longer:\n"
                                        << read(dir_ / "killed.log");
    expect_nothing_committed("killed after " + std::to_string(delay.count()) + " ms");
  }
  // The lock died with each killed learner: the next one runs to the end.
  const pid_t pid = start_learner(pg_.url(), dir_, 50, dir_ / "final.log");
  ASSERT_EQ(wait_exit(pid), 0) << read(dir_ / "final.log");
  const std::string out = read(dir_ / "final.log");
  const auto line = out.find("{\"committed\"");
  ASSERT_NE(line, std::string::npos) << out;
  const json result = json::parse(out.substr(line, out.find('\n', line) - line));
  EXPECT_TRUE(result["committed"].get<bool>()) << out;
  EXPECT_EQ(result["stats"]["data"]["transitions"].get<std::int64_t>(), expected_transitions());
  fdb::LearningLog log(db_->pool());
  ASSERT_EQ(log.cycles("faults").size(), 1U);
  EXPECT_EQ(db_->models().list().size(), 2U);
}

TEST_F(LearnerFaults, APostgresRestartDuringACycleFailsItCleanlyAndTheNextCycleSucceeds) {
  const pid_t pid = start_learner(pg_.url(), dir_, 600, dir_ / "restart.log");
  // Restart once the update has begun: after the scan, before the commit.
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (read(dir_ / "restart.log").find("learn: train") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  if (read(dir_ / "restart.log").find("learn: train") == std::string::npos) {
    kill(pid, SIGKILL);
    wait_exit(pid);
    FAIL() << "the learner never reached its update:\n" << read(dir_ / "restart.log");
  }
  pg_.instance().stop(fdb::StopMode::fast);
  pg_.instance().start();
  const int code = wait_exit(pid);
  const std::string out = read(dir_ / "restart.log");
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("nothing committed"), std::string::npos) << out;  // says what failed, and what it means
  db_ = std::make_unique<fdb::Database>(fdb::DatabaseOptions{pg_.url(), 3, 5'000, 2, true});
  expect_nothing_committed("after the restart");
  const pid_t again = start_learner(pg_.url(), dir_, 50, dir_ / "again.log");
  ASSERT_EQ(wait_exit(again), 0) << read(dir_ / "again.log");
  EXPECT_EQ(fdb::LearningLog(db_->pool()).cycles("faults").size(), 1U);
}
