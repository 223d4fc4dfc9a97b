// Acknowledged feedback writes per second: group commit (FeedbackWriter) against one
// transaction per write (FeedbackRepository::record), with N client threads that each wait
// for their acknowledgement before sending the next write (as HTTP handlers do). Both paths
// run the same SQL statement; the only difference is how many writes share a COMMIT. A third
// mode, BEGIN/INSERT/COMMIT per write, shows what a first implementation would cost.
//
//   bench_db_feedback [--url URL] [--threads 8] [--seconds 5] [--rounds 5] [--window-ms 2]
//                     [--events 512] [--modes single,naive,group] [--json FILE]
//
// --events: how many decisions the writes refer to, spread so that concurrent writes refer to
// different ones, as real feedback does (each answers its own recommendation). With 1, every
// write's foreign-key check locks the same decisions row (FOR KEY SHARE), and concurrent
// per-write transactions then share that lock through multixacts, which batches avoid: a
// cost of the benchmark, not of the workload. --modes picks which modes run.
//
// --seconds is the measured time per mode, split into --rounds rounds in which the two modes
// alternate, so that load from other programs, which comes and goes, weighs on both alike.
// Without --url it starts its own PostgreSQL (db::LocalInstance, fsync and synchronous_commit
// on) in a temporary directory on a free loopback port and stops it at the end.
// bench/db/feedback_throughput.sh runs it and prints the ratio; docs/performance.md (Database section)
// quotes the output.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
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
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "connection_pool.hpp"
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

// CPU seconds used so far by this process and by the PostgreSQL server's processes (the
// children of `postmaster`, read from /proc; 0 when the server is not ours). Unlike
// throughput it hardly depends on what else the machine runs.
double cpu_seconds(std::int64_t postmaster) {
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  double total = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                 static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  if (postmaster <= 0) return total;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream in(entry.path() / "stat");
    std::string line;
    if (!in || !std::getline(in, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string state;
    long long ppid = 0;
    fields >> state >> ppid;
    const bool server = ppid == postmaster || std::atoll(line.c_str()) == postmaster;
    if (!server) continue;
    std::string skip;
    for (int i = 0; i < 9; ++i) fields >> skip;  // fields 6..14 of stat; then utime, stime
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    fields >> utime >> stime;
    total += static_cast<double>(utime + stime) / tick;
  }
  return total;
}

// One mode's measurements, accumulated over the rounds.
struct Result {
  std::string mode;
  int threads = 0;
  double seconds = 0;              // measured time, summed over rounds
  std::vector<double> latency_ms;  // one per write acknowledged inside a measured window
  double cpu_seconds = 0;          // client and server CPU over the measured rounds
  long writes_all = 0;             // every acknowledged write, warm-up included (for CPU/write)

  double writes_per_second() const { return static_cast<double>(latency_ms.size()) / seconds; }
  double percentile(double q) {
    if (latency_ms.empty()) return 0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(latency_ms.size() - 1));
    std::nth_element(latency_ms.begin(), latency_ms.begin() + static_cast<std::ptrdiff_t>(k),
                     latency_ms.end());
    return latency_ms[k];
  }
};

// Runs `write(thread, i)` from r.threads threads for a 200 ms warm-up plus `seconds` and adds
// to `r` the writes acknowledged inside the measured window (sent after the warm-up,
// acknowledged before its end), with their latencies.
template <typename Write>
void measure(Result& r, double seconds, std::int64_t postmaster, Write write) {
  const double cpu_before = cpu_seconds(postmaster);
  std::atomic<long> writes_all{0};
  const auto measure_from = Clock::now() + std::chrono::milliseconds(200);
  const auto stop_at = measure_from + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(seconds));
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(r.threads));
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < r.threads; ++t) {
    workers.emplace_back([&, t] {
      auto& mine = latencies[static_cast<std::size_t>(t)];
      for (long i = 0;; ++i) {
        const auto sent = Clock::now();
        if (sent >= stop_at) break;
        try {
          write(t, i);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s: %s\n", r.mode.c_str(), e.what());
          failed = true;
          return;
        }
        const auto acknowledged = Clock::now();
        ++writes_all;
        if (sent >= measure_from && acknowledged <= stop_at) {
          mine.push_back(std::chrono::duration<double, std::milli>(acknowledged - sent).count());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  if (failed) throw std::runtime_error(r.mode + " failed");
  for (auto& l : latencies) r.latency_ms.insert(r.latency_ms.end(), l.begin(), l.end());
  r.seconds += seconds;
  r.cpu_seconds += cpu_seconds(postmaster) - cpu_before;
  r.writes_all += writes_all;
}

void print(Result& r, const std::string& extra) {
  if (r.latency_ms.empty()) return;  // not run
  std::printf("%-26s %7d %12.0f %9.2f %9.2f %13.3f  %s\n", r.mode.c_str(), r.threads,
              r.writes_per_second(), r.percentile(0.50), r.percentile(0.99),
              1000.0 * r.cpu_seconds / static_cast<double>(std::max(1L, r.writes_all)),
              extra.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"--threads", "8"}, {"--seconds", "5"},     {"--rounds", "5"},
      {"--window-ms", "2"}, {"--events", "512"}, {"--modes", "single,naive,group"}};
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  spdlog::set_level(spdlog::level::warn);  // stdout is the report
  const int threads = std::stoi(args["--threads"]);
  const double seconds = std::stod(args["--seconds"]);
  const int rounds = std::max(1, std::stoi(args["--rounds"]));
  const int window_ms = std::stoi(args["--window-ms"]);
  const int events = std::max(1, std::stoi(args["--events"]));
  const std::string modes = "," + args["--modes"] + ",";
  const auto runs = [&](const char* mode) {
    return modes.find("," + std::string(mode) + ",") != std::string::npos;
  };

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
  const std::int64_t postmaster = local ? local->status().pid : 0;
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
    std::vector<std::string> event_ids;
    for (int e = 0; e < events; ++e) event_ids.push_back(database.decisions().record(d).event_id);
    const std::string run =
        std::to_string(getpid()) + "-" + std::to_string(Clock::now().time_since_epoch().count());
    auto feedback = [&](const std::string& mode, int t, long i) {
      fdb::NewFeedback f;
      f.event_id = event_ids[static_cast<std::size_t>(
          (static_cast<long>(t) * 7919 + i) % static_cast<long>(event_ids.size()))];
      f.meal_id = "bench";
      f.outcome = fdb::Outcome::accepted;
      f.reward = 1.0;
      f.idempotency_key =
          "bench-" + run + "-" + mode + "-" + std::to_string(t) + "-" + std::to_string(i);
      return f;
    };

    std::printf(
        "PostgreSQL %s, fsync=%s synchronous_commit=%s; %d client threads; %d rounds of %.1f s "
        "per mode, the modes alternating\n",
        info.server_version.c_str(), info.fsync.c_str(), info.synchronous_commit.c_str(), threads,
        rounds, seconds / rounds);
    std::printf("%-26s %7s %12s %9s %9s %13s\n", "mode", "threads", "writes/s", "p50 ms", "p99 ms",
                "CPU ms/write");

    fdb::FeedbackWriter writer(database.pool(), {window_ms, 256});
    // The baseline: FeedbackRepository::record, the same statement as a batch of one, sent
    // outside a transaction block, so one round trip per write.
    Result single{"one transaction per write", threads, 0, {}};
    // For reference, what a first implementation would write: BEGIN; INSERT; COMMIT.
    Result naive{"BEGIN/INSERT/COMMIT", threads, 0, {}};
    Result group{"group commit (" + std::to_string(window_ms) + " ms)", threads, 0, {}};
    for (int round = 0; round < rounds; ++round) {
      const std::string tag = std::to_string(round);
      if (runs("single"))
        measure(single, seconds / rounds, postmaster,
                [&](int t, long i) { database.feedback().record(feedback("single" + tag, t, i)); });
      if (runs("naive"))
        measure(naive, seconds / rounds, postmaster, [&](int t, long i) {
        const auto f = feedback("naive" + tag, t, i);
        database.pool().internal().run([&](pqxx::connection& c) {
          pqxx::work tx(c);
          tx.exec_params1(R"sql(
INSERT INTO feedback (event_id, meal_id, outcome, reward, idempotency_key)
VALUES ($1::uuid, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)sql",
                          f.event_id, f.meal_id, std::string(fdb::outcome_name(f.outcome)),
                          *f.reward, f.idempotency_key);
          tx.commit();
        });
      });
      if (runs("group"))
        measure(group, seconds / rounds, postmaster,
              [&](int t, long i) { writer.submit(feedback("group" + tag, t, i)); });
    }
    print(single, "");
    print(naive, "");
    const auto stats = writer.stats();
    const double batches = static_cast<double>(std::max<std::uint64_t>(1, stats.batches));
    char extra[160];
    std::snprintf(extra, sizeof extra,
                  "%.1f writes per COMMIT (largest %llu), %.2f ms storing a batch",
                  static_cast<double>(stats.writes) / batches,
                  static_cast<unsigned long long>(stats.largest_batch), stats.storing_ms / batches);
    print(group, extra);
    const double ratio = group.writes_per_second() / single.writes_per_second();
    if (runs("group") && runs("single")) {
      std::printf("ratio group commit / one transaction per write: %.1fx (target >= 5x)\n", ratio);
    }
    if (runs("group") && runs("naive")) {
      std::printf("ratio group commit / BEGIN/INSERT/COMMIT per write: %.1fx\n",
                  group.writes_per_second() / naive.writes_per_second());
    }
    if (postmaster > 0 && runs("group") && runs("single")) {
      const double cpu_single = single.cpu_seconds / static_cast<double>(single.writes_all);
      const double cpu_group = group.cpu_seconds / static_cast<double>(group.writes_all);
      std::printf("CPU per acknowledged write, one transaction per write / group commit: %.1fx\n",
                  cpu_single / cpu_group);
    }

    if (!args["--json"].empty()) {
      std::ofstream out(args["--json"]);
      for (Result* r : {&single, &naive, &group}) {
        out << "{\"mode\": \"" << r->mode << "\", \"threads\": " << r->threads
            << ", \"writes_per_second\": " << r->writes_per_second()
            << ", \"p50_ms\": " << r->percentile(0.50) << ", \"p99_ms\": " << r->percentile(0.99)
            << "}\n";
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
