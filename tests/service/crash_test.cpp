// Fault suite (label faults), issue 21 finding 3: `forkcast serve` is SIGKILLed under a load
// of recommendations and feedback, then started again on the same directories. Every
// recommendation it answered (200) must be in the decision log afterwards, every feedback it
// acknowledged (2xx) in the feedback table, and feedback on a decision answered just before
// the crash must be accepted after the restart (before the decision journal, 1-5 answered
// decisions per kill were lost and their feedback got a permanent 404).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "forkcast/db/database.hpp"
#include "service_test_support.hpp"

namespace st = forkcast::service::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct Answered {
  std::string event_id, meal_id, user_id, token;
  bool has_feedback = false;
};

}  // namespace

TEST(ServiceCrash, AnsweredDecisionsAndAcknowledgedFeedbackSurviveSigkill) {
  constexpr int kTrials = 5;
  constexpr int kClients = 4;            // recommendation, then feedback on every other one
  constexpr int kFastClients = 32;       // recommendations only, on keep-alive connections
  st::ServeProcess server;
  const int port = server.port();
  struct Client {
    std::string id, token;
  };
  std::vector<Client> clients;
  for (int i = 0; i < kClients + kFastClients; ++i) {
    const auto r = st::http_request(port, "POST", "/v1/users", st::profile_body().dump());
    ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no reply");
    const json body = json::parse(r->body);
    clients.push_back({body["id"], body["token"]});
  }
  forkcast::db::DatabaseOptions options;
  options.url = server.database_url();
  options.pool_size = 1;

  std::size_t total_answered = 0, total_acknowledged = 0, total_lost_decisions = 0, total_lost_feedback = 0;
  long long worst_recovery_ms = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::vector<Answered> answered;
    std::vector<std::string> acknowledged;  // idempotency keys answered 2xx
    std::vector<std::thread> threads;
    for (int t = 0; t < kClients; ++t) {
      threads.emplace_back([&, t] {
        const Client& c = clients[static_cast<std::size_t>(t)];
        for (int i = 0; !stop.load(); ++i) {
          const auto rec = st::http_request(port, "POST", "/v1/recommendations", json{{"user_id", c.id}, {"n", 2}}.dump(),
                                            c.token, 5s);
          if (!rec || rec->status != 200) return;  // the server is gone
          const json body = json::parse(rec->body);
          Answered a{body["event_id"], body["meals"][0]["meal_id"], c.id, c.token};
          // Feedback on every other decision, so that some answered decisions have none yet.
          if (i % 2 == 0) {
            const std::string key = "crash-" + std::to_string(trial) + "-" + std::to_string(t) + "-" + std::to_string(i);
            const json fb = {{"event_id", a.event_id}, {"meal_id", a.meal_id}, {"outcome", "accepted"}, {"idempotency_key", key}};
            const auto r = st::http_request(port, "POST", "/v1/feedback", fb.dump(), c.token, 5s);
            if (r && (r->status == 200 || r->status == 201)) {
              a.has_feedback = true;
              std::lock_guard lock(mutex);
              acknowledged.push_back(key);
            }
          }
          std::lock_guard lock(mutex);
          answered.push_back(std::move(a));
        }
      });
    }
    // Keep-alive clients that only ask: the service answers them as fast as it can, so that
    // decisions are answered right up to the kill (the log stores them ~2-5 ms later).
    for (int t = kClients; t < kClients + kFastClients; ++t) {
      threads.emplace_back([&, t] {
        const Client& c = clients[static_cast<std::size_t>(t)];
        st::RawConnection connection(port);
        const std::string body = json{{"user_id", c.id}}.dump();
        const std::string request = "POST /v1/recommendations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
                                    c.token + "\r\nContent-Type: application/json\r\nContent-Length: " +
                                    std::to_string(body.size()) + "\r\n\r\n" + body;
        while (!stop.load()) {
          if (!connection.send(request)) return;
          const auto r = connection.read_response(5s);
          if (!r || r->status != 200) return;
          const json answer = json::parse(r->body);
          std::lock_guard lock(mutex);
          answered.push_back({answer["event_id"], answer["meals"][0]["meal_id"], c.id, c.token});
        }
      });
    }
    std::this_thread::sleep_for(1500ms + std::chrono::milliseconds(137 * trial));  // kill at varying moments
    server.kill_hard();
    stop = true;
    for (auto& t : threads) t.join();
    ASSERT_GT(answered.size(), 10U) << "trial " << trial << ": the load hardly ran\n" << server.log();

    const auto restart_at = std::chrono::steady_clock::now();
    server.restart();
    const long long recovery_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - restart_at).count();
    worst_recovery_ms = std::max(worst_recovery_ms, recovery_ms);

    forkcast::db::Database database(options);
    std::size_t lost_decisions = 0, lost_feedback = 0;
    for (const auto& a : answered) {
      if (!database.decisions().find(a.event_id)) {
        ++lost_decisions;
        ADD_FAILURE() << "trial " << trial << ": answered decision " << a.event_id << " is not in the decision log";
      }
    }
    for (const auto& key : acknowledged) {
      if (!database.feedback().find_by_key(key)) {
        ++lost_feedback;
        ADD_FAILURE() << "trial " << trial << ": acknowledged feedback " << key << " is not stored";
      }
    }
    // Feedback on the last decisions answered before the crash is accepted now.
    int late_feedback = 0;
    for (auto it = answered.rbegin(); it != answered.rend() && late_feedback < 8; ++it) {
      if (it->has_feedback) continue;
      const json fb = {{"event_id", it->event_id}, {"meal_id", it->meal_id}, {"outcome", "rejected"},
                       {"idempotency_key", "late-" + it->event_id}};
      const auto r = st::http_request(port, "POST", "/v1/feedback", fb.dump(), it->token, 10s);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 201U) << "trial " << trial << ": feedback on " << it->event_id << ": " << r->body;
      ++late_feedback;
    }
    std::printf("trial %d: %zu answered, %zu acknowledged; lost %zu decisions, %zu feedback; ready %lld ms after restart\n",
                trial, answered.size(), acknowledged.size(), lost_decisions, lost_feedback, recovery_ms);
    total_answered += answered.size();
    total_acknowledged += acknowledged.size();
    total_lost_decisions += lost_decisions;
    total_lost_feedback += lost_feedback;
  }
  std::printf("%d SIGKILL trials: %zu answered, %zu acknowledged; lost %zu decisions, %zu feedback; worst recovery %lld ms\n",
              kTrials, total_answered, total_acknowledged, total_lost_decisions, total_lost_feedback, worst_recovery_ms);
  const std::string log = server.log();
  EXPECT_NE(log.find("decision journal:"), std::string::npos) << "no replay was logged:\n" << log;
  EXPECT_EQ(server.terminate(15s), 0) << server.log();
}
