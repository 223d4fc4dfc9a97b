// Faults: PostgreSQL stops under a light client load. /readyz turns 503 within 2 s, write
// routes answer 503 with Retry-After, nothing crashes; once PostgreSQL is back the same
// process recovers, and every feedback it acknowledged (2xx) is in the feedback table.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "forkcast/db/database.hpp"
#include "service_test_support.hpp"

namespace st = forkcast::service::testing;
using nlohmann::json;
using namespace std::chrono_literals;

TEST(ServiceFault, PostgresStopsUnderLoadAndComesBack) {
  // Supervision off: this test measures the service through an outage that lasts (serve
  // would otherwise start its instance again at once; ServeKeepsItsOwnDatabaseUp tests that).
  st::ServeProcess server({"FORKCAST_DATABASE__CHECKOUT_TIMEOUT_MS=1000", "FORKCAST_DATABASE__SUPERVISE=false"});
  const int port = server.port();
  const pid_t pid = server.pid();
  constexpr int kClients = 4;
  struct Client {
    std::string id, token;
  };
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) {
    const auto r = st::http_request(port, "POST", "/v1/users", st::profile_body().dump());
    ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no reply");
    const json body = json::parse(r->body);
    clients.push_back({body["id"], body["token"]});
  }

  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<std::string> acknowledged;  // idempotency keys answered 2xx
  std::map<unsigned, int> statuses;        // of every request of the load
  int missing_retry_after = 0, no_reply = 0;
  std::vector<std::thread> threads;
  struct Joiner {  // an ASSERT returning early must not leave running threads behind
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{stop, threads};
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      const Client& c = clients[static_cast<std::size_t>(t)];
      for (int i = 0; !stop.load(); ++i) {
        auto note = [&](const std::optional<st::RawConnection::Response>& r) {
          std::lock_guard lock(mutex);
          if (!r) {
            ++no_reply;
            return;
          }
          ++statuses[r->status];
          if (r->status == 503 && r->headers.count("retry-after") == 0) ++missing_retry_after;
        };
        const auto rec = st::http_request(port, "POST", "/v1/recommendations", json{{"user_id", c.id}, {"n", 2}}.dump(),
                                          c.token, 10s);
        note(rec);
        if (!rec || rec->status != 200) {
          std::this_thread::sleep_for(50ms);
          continue;
        }
        const json body = json::parse(rec->body);
        const std::string key = "fault-" + std::to_string(t) + "-" + std::to_string(i);
        const json fb = {{"event_id", body["event_id"]}, {"meal_id", body["meals"][0]["meal_id"]},
                         {"outcome", i % 3 == 0 ? "rejected" : "accepted"}, {"idempotency_key", key}};
        const auto r = st::http_request(port, "POST", "/v1/feedback", fb.dump(), c.token, 10s);
        note(r);
        if (r && (r->status == 200 || r->status == 201)) {
          std::lock_guard lock(mutex);
          acknowledged.push_back(key);
        }
        std::this_thread::sleep_for(20ms);
      }
    });
  }

  // A readiness probe every 100 ms, as an orchestrator would poll (so /readyz's cached
  // answer is fresh when the database goes away).
  threads.emplace_back([&] {
    while (!stop.load()) {
      st::http_request(port, "GET", "/readyz", {}, {}, 3s);
      std::this_thread::sleep_for(100ms);
    }
  });

  std::this_thread::sleep_for(2s);
  const std::size_t acknowledged_before = [&] {
    std::lock_guard lock(mutex);
    return acknowledged.size();
  }();
  // Stop PostgreSQL like a crash (no checkpoint).
  const auto stop_result = st::run_forkcast("db stop --immediate", server.db_env());
  ASSERT_EQ(stop_result.exit_code, 0) << stop_result.output;
  const auto stopped_at = std::chrono::steady_clock::now();
  const auto not_ready = st::wait_for_status(port, "/readyz", 503, 5s);
  const auto not_ready_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stopped_at).count();
  ASSERT_TRUE(not_ready) << "/readyz never turned 503";
  EXPECT_EQ(not_ready->headers.count("retry-after"), 1U);
  EXPECT_EQ(json::parse(not_ready->body)["database"], "unavailable");
  EXPECT_LE(not_ready_ms, 2000) << "/readyz turned 503 only after " << not_ready_ms << " ms";

  // Write routes: 503 with Retry-After (not 500, not a hang). A recommendation for a user
  // in the cache is still served (from memory; its decision waits in the log's queue), and
  // feedback on it is refused until the decision can be stored.
  const Client& c0 = clients[0];
  const auto rec = st::http_request(port, "POST", "/v1/recommendations", json{{"user_id", c0.id}}.dump(), c0.token, 10s);
  ASSERT_TRUE(rec);
  ASSERT_EQ(rec->status, 200U) << rec->body;
  const json rec_body = json::parse(rec->body);
  const std::string meal0 = rec_body["meals"][0]["meal_id"];
  const std::vector<std::tuple<std::string, std::string, json, std::string>> writes = {
      {"POST", "/v1/users", st::profile_body(), ""},
      {"PATCH", "/v1/users/" + c0.id, {{"age", 40}}, c0.token},
      {"POST", "/v1/feedback", {{"event_id", rec_body["event_id"]}, {"meal_id", meal0}, {"outcome", "accepted"},
                                {"idempotency_key", "fault-outage"}}, c0.token},
      {"POST", "/v1/meals/log", {{"user_id", c0.id}, {"meal_id", meal0}, {"idempotency_key", "fault-log"}}, c0.token},
  };
  for (const auto& [method, target, body, token] : writes) {
    const auto r = st::http_request(port, method, target, body.dump(), token, 10s);
    ASSERT_TRUE(r) << method << " " << target;
    EXPECT_EQ(r->status, 503U) << method << " " << target << ": " << r->body;
    EXPECT_EQ(r->headers.count("retry-after"), 1U) << method << " " << target;
  }
  std::this_thread::sleep_for(2s);  // the load keeps going against the outage
  EXPECT_TRUE(server.running()) << server.log();

  const auto start_result = st::run_forkcast("db start", server.db_env());
  ASSERT_EQ(start_result.exit_code, 0) << start_result.output;
  const auto started_at = std::chrono::steady_clock::now();
  const bool ready = st::wait_for_status(port, "/readyz", 200, 30s).has_value();
  const auto ready_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_at).count();
  EXPECT_TRUE(ready) << server.log();
  std::this_thread::sleep_for(3s);  // load after recovery
  stop = true;
  for (auto& t : threads) t.join();

  // Recovered without a restart: same process, writes work again.
  EXPECT_TRUE(server.running());
  EXPECT_EQ(server.pid(), pid);
  const auto after = st::http_request(port, "POST", "/v1/users", st::profile_body().dump(), {}, 10s);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 201U) << after->body;

  std::printf("load statuses:");
  for (const auto& [status, count] : statuses) std::printf(" %u x%d", status, count);
  std::printf("; no reply %d; acknowledged feedback %zu (%zu before the stop); /readyz 503 after %lld ms, "
              "200 again %lld ms after the restart\n",
              no_reply, acknowledged.size(), acknowledged_before, static_cast<long long>(not_ready_ms),
              static_cast<long long>(ready_ms));
  EXPECT_EQ(statuses.count(500), 0U) << "internal errors under the outage";
  EXPECT_EQ(missing_retry_after, 0);
  EXPECT_EQ(no_reply, 0);
  EXPECT_GT(acknowledged_before, 0U);
  EXPECT_GT(statuses[503], 0) << "the load never saw the outage";

  // Every acknowledged feedback is durable.
  forkcast::db::DatabaseOptions options;
  options.url = server.database_url();
  options.pool_size = 1;
  forkcast::db::Database database(options);
  int missing = 0;
  for (const auto& key : acknowledged) {
    if (!database.feedback().find_by_key(key)) {
      ++missing;
      ADD_FAILURE() << "acknowledged feedback " << key << " is not in the feedback table";
    }
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(server.terminate(15s), 0) << server.log();
}

namespace {

// The postmaster's pid from <data_dir>/postmaster.pid (its first line), 0 when absent.
pid_t postmaster_pid(const std::filesystem::path& data_dir) {
  std::ifstream in(data_dir / "postmaster.pid");
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(in ? pid : 0);
}

bool process_exists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// The value of a counter in GET /metrics ("name value" lines), -1 when missing.
double metric(int port, const std::string& name) {
  const auto r = st::http_request(port, "GET", "/metrics");
  if (!r) return -1;
  std::istringstream lines(r->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// Polls /readyz until it answers 200; the time it took, or nullopt after `limit`.
std::optional<std::chrono::milliseconds> time_to_ready(int port, std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    const auto r = st::http_request(port, "GET", "/readyz", {}, {}, 2s);
    if (r && r->status == 200) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    }
    std::this_thread::sleep_for(100ms);
  }
  return std::nullopt;
}

}  // namespace

// Review (issue 21): after its postmaster was SIGKILLed, `serve` (which had started it) stayed
// 503 until somebody ran `forkcast db start`; and a SIGTERM to the postmaster (a smart
// shutdown) never completed while the pool held connections. Now serve supervises its own
// instance: it starts it again, and lets go of its connections when it shuts down.
TEST(ServiceFault, ServeKeepsItsOwnDatabaseUp) {
  st::ServeProcess server;
  const int port = server.port();
  const std::string token_body = st::profile_body().dump();
  ASSERT_TRUE(st::http_request(port, "POST", "/v1/users", token_body));  // the pool holds connections now
  const pid_t first = postmaster_pid(server.data_dir());
  ASSERT_GT(first, 0);

  // SIGKILL: a crash. The service brings the instance back by itself.
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  while (process_exists(first)) std::this_thread::sleep_for(20ms);
  const auto after_kill = time_to_ready(port, 60s);
  ASSERT_TRUE(after_kill) << "serve never restarted its database after SIGKILL\n" << server.log();
  const pid_t second = postmaster_pid(server.data_dir());
  EXPECT_NE(second, first);
  EXPECT_TRUE(process_exists(second));
  EXPECT_GE(metric(port, "forkcast_database_restarts_total"), 1.0);
  const auto created = st::http_request(port, "POST", "/v1/users", token_body);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201U) << created->body;

  // SIGTERM: a smart shutdown waits for the clients; serve lets go of its connections, the
  // postmaster exits, and serve starts it again.
  ASSERT_EQ(::kill(second, SIGTERM), 0);
  const auto shutdown_start = std::chrono::steady_clock::now();
  while (process_exists(second) && std::chrono::steady_clock::now() - shutdown_start < 30s) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(process_exists(second)) << "the smart shutdown never completed: the pool kept its connections";
  const auto shutdown_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - shutdown_start);
  const auto after_term = time_to_ready(port, 60s);
  ASSERT_TRUE(after_term) << server.log();
  EXPECT_GE(metric(port, "forkcast_database_connection_releases_total"), 1.0);
  EXPECT_GE(metric(port, "forkcast_database_restarts_total"), 2.0);
  std::printf("SIGKILL of the postmaster: ready again after %lld ms; SIGTERM: shut down in %lld ms, ready again after %lld ms\n",
              static_cast<long long>(after_kill->count()), static_cast<long long>(shutdown_ms.count()),
              static_cast<long long>(after_term->count()));
}
