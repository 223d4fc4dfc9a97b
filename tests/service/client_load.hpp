// ClientLoad: the recommendation + feedback traffic the fault tests run against a real
// `forkcast serve` while they break something. Each client is one user that asks for a
// recommendation, gives feedback on its first meal and pauses; the load records what a
// careful client would have to trust afterwards: every answered decision (200) and every
// acknowledged feedback (2xx), plus every status seen, so that a test can check that
// nothing it was told had happened is missing, and that every refusal said why.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace forkcast::service::testing {

class ClientLoad {
 public:
  struct Options {
    int clients = 4;
    std::chrono::milliseconds pause{20};        // after each recommendation + feedback
    std::chrono::milliseconds timeout{10'000};  // per request
  };
  // Creates the users (throws std::runtime_error if the server refuses), then starts.
  ClientLoad(int port, Options options);
  ~ClientLoad();  // stops and joins
  ClientLoad(const ClientLoad&) = delete;
  ClientLoad& operator=(const ClientLoad&) = delete;

  void stop();

  struct Tally {
    std::map<unsigned, int> statuses;         // of every request
    std::map<std::string, int> error_codes;   // body.error.code of every non-2xx
    std::set<std::string> model_versions;     // of every answered recommendation
    std::vector<std::string> answered;        // event ids of recommendations answered 200
    std::vector<std::string> acknowledged;    // idempotency keys of feedback answered 2xx
    int no_reply = 0;                         // a request with no response within the timeout
    int missing_retry_after = 0;              // a 503 or 429 without Retry-After
    int non_2xx = 0;
    std::chrono::microseconds worst_latency{0};
  };
  Tally tally() const;  // a copy, consistent at the moment of the call

 private:
  void run_client(std::size_t index);

  struct User {
    std::string id, token;
  };
  int port_;
  Options options_;
  std::vector<User> users_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  Tally tally_;
  std::vector<std::thread> threads_;
};

}  // namespace forkcast::service::testing
