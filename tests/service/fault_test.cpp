// Faults: PostgreSQL stops under a light client load. /readyz turns 503 within 2 s, write
// routes answer 503 with Retry-After, nothing crashes; once PostgreSQL is back the same
// process recovers, and every feedback it acknowledged (2xx) is in the feedback table.
#include <gtest/gtest.h>

#include <atomic>
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
  st::ServeProcess server({"FORKCAST_DATABASE__CHECKOUT_TIMEOUT_MS=1000"});
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
