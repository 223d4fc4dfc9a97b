// Acknowledged feedback writes per second: group commit (FeedbackWriter) against one
// transaction per write (FeedbackRepository::record), with N client threads that each wait
// for their acknowledgement before sending the next write (as HTTP handlers do). Both paths
// run the same SQL statement; the only difference is how many writes share a COMMIT.
//
//   bench_db_feedback [--url URL] [--threads 8] [--seconds 5] [--window-ms 2] [--json FILE]
//
// Without --url it starts its own PostgreSQL (db::LocalInstance, fsync and synchronous_commit
// on) in a temporary directory on a free loopback port and stops it at the end.
// bench/db/feedback_throughput.sh runs it and prints the ratio; docs/performance-db.md
// quotes the output.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "forkcast/db/database.hpp"
#include "forkcast/db/instance.hpp"

namespace fdb = forkcast::db;
using Clock = std::chrono::steady_clock;

namespace {

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  close(fd);
  return ntohs(addr.sin_port);
}

struct Result {
  std::string mode;
  int threads = 0;
  double seconds = 0;
  long writes = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double writes_per_second() const { return static_cast<double>(writes) / seconds; }
};

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

// Runs `write(thread, i)` from `threads` threads for warmup + `seconds`; counts and times
// only the writes acknowledged inside the measured window.
template <typename Write>
Result measure(const std::string& mode, int threads, double seconds, Write write) {
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::milliseconds(500);
  const auto stop_at = measure_from + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(seconds));
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto& mine = latencies[static_cast<std::size_t>(t)];
      mine.reserve(200'000);
      for (long i = 0;; ++i) {
        const auto sent = Clock::now();
        if (sent >= stop_at) break;
        try {
          write(t, i);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s: %s\n", mode.c_str(), e.what());
          failed = true;
          return;
        }
        const auto acknowledged = Clock::now();
        if (sent >= measure_from && acknowledged <= stop_at) {
          mine.push_back(std::chrono::duration<double, std::milli>(acknowledged - sent).count());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  if (failed) throw std::runtime_error(mode + " failed");
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  Result r{mode, threads, seconds, static_cast<long>(all.size()), 0, 0};
  r.p50_ms = percentile(all, 0.50);
  r.p99_ms = percentile(all, 0.99);
  return r;
}

void print(const Result& r, const std::string& extra) {
  std::printf("%-26s %7d %12.0f %9.2f %9.2f  %s\n", r.mode.c_str(), r.threads,
              r.writes_per_second(), r.p50_ms, r.p99_ms, extra.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"--threads", "8"}, {"--seconds", "5"}, {"--window-ms", "2"}};
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  const int threads = std::stoi(args["--threads"]);
  const double seconds = std::stod(args["--seconds"]);
  const int window_ms = std::stoi(args["--window-ms"]);

  std::optional<fdb::LocalInstance> local;
  std::filesystem::path temp;
  std::string url = args["--url"];
  if (url.empty()) {
    char dir[] = "/tmp/forkcast-bench-db-XXXXXX";
    if (mkdtemp(dir) == nullptr) return 1;
    chmod(dir, 0755);  // the PostgreSQL service user must get through when we are root
    temp = dir;
    fdb::InstanceOptions options;
    options.data_dir = temp / "pgdata";
    options.port = free_port();
    local.emplace(options);
    url = local->start().status.url;
  }
  int rc = 0;
  try {
    fdb::Database database(fdb::DatabaseOptions{url, threads, 10'000, window_ms, true});
    const auto info = fdb::server_info(database.pool());
    const auto user = database.users().create(
        {nlohmann::json::object(), fdb::token_sha256(std::to_string(getpid()))});
    fdb::NewDecision d;
    d.user_id = user.id;
    d.model_version = "bench";
    d.policy = "greedy";
    d.candidates = {"bench"};
    d.scores = {0};
    d.probabilities = {1};
    d.chosen = "bench";
    const std::string event = database.decisions().record(d).event_id;
    const std::string run =
        std::to_string(getpid()) + "-" + std::to_string(Clock::now().time_since_epoch().count());
    auto feedback = [&](const std::string& mode, int t, long i) {
      fdb::NewFeedback f;
      f.event_id = event;
      f.meal_id = "bench";
      f.outcome = fdb::Outcome::accepted;
      f.reward = 1.0;
      f.idempotency_key =
          "bench-" + run + "-" + mode + "-" + std::to_string(t) + "-" + std::to_string(i);
      return f;
    };

    std::printf(
        "PostgreSQL %s, fsync=%s synchronous_commit=%s; %d client threads, %.1f s per mode\n",
        info.server_version.c_str(), info.fsync.c_str(), info.synchronous_commit.c_str(), threads,
        seconds);
    std::printf("%-26s %7s %12s %9s %9s\n", "mode", "threads", "writes/s", "p50 ms", "p99 ms");

    fdb::FeedbackWriter writer(database.pool(), {window_ms, 256});
    const bool group_first = args["--order"] == "group-first";
    auto run_group = [&] {
      return measure("group commit (" + std::to_string(window_ms) + " ms)", threads, seconds,
                     [&](int t, long i) { writer.submit(feedback("group", t, i)); });
    };
    Result group;
    if (group_first) group = run_group();
    const Result single =
        measure("one transaction per write", threads, seconds,
                [&](int t, long i) { database.feedback().record(feedback("single", t, i)); });
    print(single, "");
    if (!group_first) group = run_group();
    const auto stats = writer.stats();
    char extra[160];
    const double batches = static_cast<double>(std::max<std::uint64_t>(1, stats.batches));
    std::snprintf(extra, sizeof extra,
                  "%.1f writes per COMMIT (largest %llu), %.2f ms storing a batch",
                  static_cast<double>(stats.writes) / batches,
                  static_cast<unsigned long long>(stats.largest_batch), stats.storing_ms / batches);
    print(group, extra);
    const double ratio = group.writes_per_second() / single.writes_per_second();
    std::printf("ratio group commit / one transaction per write: %.1fx (target >= 5x)\n", ratio);

    if (!args["--json"].empty()) {
      std::ofstream out(args["--json"]);
      for (const Result* r : {&single, static_cast<const Result*>(&group)}) {
        out << "{\"mode\": \"" << r->mode << "\", \"threads\": " << r->threads
            << ", \"writes_per_second\": " << r->writes_per_second()
            << ", \"p50_ms\": " << r->p50_ms << ", \"p99_ms\": " << r->p99_ms << "}\n";
      }
      out << "{\"ratio\": " << ratio << "}\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_db_feedback: %s\n", e.what());
    rc = 1;
  }
  if (local) {
    local->stop();
    std::error_code ec;
    std::filesystem::remove_all(temp, ec);
  }
  return rc;
}
