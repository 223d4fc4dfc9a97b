// Durability: every feedback write that was acknowledged survives a SIGKILL of the writer
// process mid-stream (followed by an immediate, checkpoint-less restart of PostgreSQL), and
// a SIGKILL of the postmaster itself (followed by crash recovery). The harness
// (db_feedback_writer) writes from 8 threads at full speed and prints each acknowledged
// key; the test kills, restarts and looks every printed key up.
//
// FORKCAST_DURABILITY_TRIALS sets the trials per kind (default 2, as CI runs them);
// bench/db/durability_trials.sh runs 20 of each and collects the "[durability]" lines.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>

#include "forkcast/db/database.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::TestInstance;
using fdb::testing::unique_suffix;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Mid-stream: after 200..599 acknowledgements, a different point in each trial (fixed, so
// runs are repeatable in what they try; when the kill lands within a batch is up to timing).
int acks_before_kill(int trial) { return 200 + (trial * 137) % 400; }
constexpr auto kStartupLimit = std::chrono::seconds(60);

enum class Kill { writer, postmaster };

int trials_per_kind() {
  const char* env = std::getenv("FORKCAST_DURABILITY_TRIALS");
  const int n = env != nullptr ? std::atoi(env) : 2;
  return n > 0 ? n : 2;
}

struct Writer {
  pid_t pid = -1;
  int out = -1;  // read end of its stdout
  std::string pending;
  std::vector<std::string> acknowledged;

  // Appends complete lines read so far; returns false at end of file.
  bool read_some(int timeout_ms) {
    pollfd p{out, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return true;
    char buffer[65536];
    const ssize_t n = read(out, buffer, sizeof buffer);
    if (n <= 0) return false;
    pending.append(buffer, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      acknowledged.push_back(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
    return true;
  }
};

Writer spawn_writer(const std::string& url, const std::string& event, const std::string& prefix) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const std::string exe = FORKCAST_DB_WRITER_EXE;
  std::vector<std::string> args = {exe,    "--url",     url, "--event",       event, "--prefix",
                                   prefix, "--threads", "8", "--max-seconds", "120"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  if (pid < 0) throw std::runtime_error("fork failed");
  return Writer{pid, fds[0], "", {}};
}

std::set<std::string> stored_keys(const std::string& url, const std::string& prefix) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  std::set<std::string> keys;
  for (const auto& r : tx.exec_params(
           "SELECT idempotency_key FROM feedback WHERE starts_with(idempotency_key, $1)", prefix)) {
    keys.insert(r[0].as<std::string>());
  }
  return keys;
}

struct Totals {
  int trials = 0;
  long acknowledged = 0;
  long lost = 0;
};

void run_trial(TestInstance& pg, const std::string& event, Kill kind, int trial, Totals& totals) {
  const int kill_after = acks_before_kill(trial);
  const std::string prefix = "dur-" + unique_suffix() + "-";
  Writer w = spawn_writer(pg.url(), event, prefix);
  const auto started = Clock::now();
  while (static_cast<int>(w.acknowledged.size()) < kill_after &&
         Clock::now() - started < kStartupLimit) {
    if (!w.read_some(100)) break;
  }
  if (static_cast<int>(w.acknowledged.size()) < kill_after) {
    kill(w.pid, SIGKILL);
    waitpid(w.pid, nullptr, 0);
    close(w.out);
    FAIL() << "the writer did not get going (" << w.acknowledged.size() << " acknowledged writes)";
  }

  if (kind == Kill::postmaster) {
    const auto status = pg.instance().status();
    ASSERT_TRUE(status.running);
    kill(static_cast<pid_t>(status.pid), SIGKILL);
    // Let the writer run into the dead server (its calls fail, nothing is acknowledged).
    const auto until = Clock::now() + std::chrono::milliseconds(200);
    while (Clock::now() < until) w.read_some(20);
  }
  kill(w.pid, SIGKILL);
  int wstatus = 0;
  waitpid(w.pid, &wstatus, 0);
  while (w.read_some(1000)) {
  }
  close(w.out);

  if (kind == Kill::writer) pg.instance().stop(fdb::StopMode::immediate);  // a crash: no checkpoint
  pg.instance().start();                                                   // replays the WAL

  const auto stored = stored_keys(pg.url(), prefix);
  long lost = 0;
  for (const auto& key : w.acknowledged) lost += stored.count(key) == 0 ? 1 : 0;
  EXPECT_EQ(lost, 0) << lost << " of " << w.acknowledged.size()
                     << " acknowledged writes are missing";
  ++totals.trials;
  totals.acknowledged += static_cast<long>(w.acknowledged.size());
  totals.lost += lost;
}

std::string make_event(const std::string& url) {
  fdb::Database database(fdb::DatabaseOptions{url, 1, 2'000, 2, true});
  const auto user =
      database.users().create({json::object(), fdb::token_sha256("dur-" + unique_suffix())});
  fdb::NewDecision d;
  d.user_id = user.id;
  d.model_version = "durability";
  d.policy = "greedy";
  d.candidates = {"durability"};
  d.scores = {0};
  d.probabilities = {1};
  d.chosen = "durability";
  return database.decisions().record(d).event_id;
}

void run_kind(Kill kind, const char* name) {
  TestInstance pg;
  const std::string event = make_event(pg.url());
  Totals totals;
  for (int i = 0; i < trials_per_kind(); ++i) {
    run_trial(pg, event, kind, i, totals);
    if (::testing::Test::HasFatalFailure()) break;
  }
  std::printf("[durability] %s SIGKILL: %d trials, %ld acknowledged writes, %ld lost\n", name,
              totals.trials, totals.acknowledged, totals.lost);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("trials", totals.trials);
  ::testing::Test::RecordProperty("lost", static_cast<int>(totals.lost));
}

}  // namespace

TEST(Durability, EveryAcknowledgedWriteSurvivesASigkilledWriter) {
  run_kind(Kill::writer, "writer");
}

TEST(Durability, EveryAcknowledgedWriteSurvivesASigkilledPostmaster) {
  run_kind(Kill::postmaster, "postmaster");
}
