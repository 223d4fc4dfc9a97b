// Durability harness (tests/db/durability_test.cpp, bench/db/durability_trials.sh): sends
// feedback through the group-commit writer at full speed from several threads and prints
// each acknowledged idempotency key on stdout, one write(2) per line, only after submit()
// returned. The test kills this process (or the postmaster) with SIGKILL mid-stream and
// then checks that every printed key is in the database.
//
// Usage: db_feedback_writer --url URL --event EVENT_ID --prefix PREFIX
//                           [--threads 8] [--window-ms 2] [--max-seconds 60]
// It stops by itself after --max-seconds. Exit: 0 time is up, 2 bad usage, 3 unexpected error.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "forkcast/db/feedback_writer.hpp"
#include "forkcast/db/repositories.hpp"

namespace fdb = forkcast::db;

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"--threads", "8"}, {"--window-ms", "2"}, {"--max-seconds", "60"}};
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  if (args.count("--url") == 0 || args.count("--event") == 0 || args.count("--prefix") == 0) {
    std::fprintf(
        stderr,
        "usage: %s --url URL --event EVENT_ID --prefix PREFIX [--threads N] [--window-ms MS] "
        "[--max-seconds S]\n",
        argv[0]);
    return 2;
  }
  const int threads = std::stoi(args["--threads"]);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(std::stoi(args["--max-seconds"]));

  fdb::PoolOptions pool_options;
  pool_options.url = args["--url"];
  pool_options.size = 2;
  pool_options.checkout_timeout_ms = 1'000;
  pool_options.statements = fdb::repository_statements();
  fdb::ConnectionPool pool(pool_options);
  fdb::FeedbackWriter writer(pool, {std::stoi(args["--window-ms"]), 256});

  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      fdb::NewFeedback f;
      f.event_id = args["--event"];
      f.meal_id = "durability";
      f.outcome = fdb::Outcome::accepted;
      for (long i = 0; std::chrono::steady_clock::now() < deadline && !failed; ++i) {
        f.idempotency_key = args["--prefix"] + std::to_string(t) + "-" + std::to_string(i);
        try {
          writer.submit(f);
        } catch (const fdb::DatabaseUnavailable&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));  // down: not acknowledged
          continue;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "db_feedback_writer: %s\n", e.what());
          failed = true;
          return;
        }
        // Acknowledged: the COMMIT returned. One write() per line keeps lines whole.
        const std::string line = f.idempotency_key + "\n";
        if (write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          failed = true;
          return;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return failed ? 3 : 0;
}
