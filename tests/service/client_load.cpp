#include "client_load.hpp"

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "service_test_support.hpp"

namespace forkcast::service::testing {

using nlohmann::json;

ClientLoad::ClientLoad(int port, Options options) : port_(port), options_(options) {
  for (int i = 0; i < options_.clients; ++i) {
    const auto r = http_request(port_, "POST", "/v1/users", profile_body().dump(), {}, options_.timeout);
    if (!r || r->status != 201) throw std::runtime_error("ClientLoad: cannot create a user: " + (r ? r->body : "no reply"));
    const json body = json::parse(r->body);
    users_.push_back({body["id"], body["token"]});
  }
  for (std::size_t i = 0; i < users_.size(); ++i) threads_.emplace_back([this, i] { run_client(i); });
}

ClientLoad::~ClientLoad() { stop(); }

void ClientLoad::stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

ClientLoad::Tally ClientLoad::tally() const {
  std::lock_guard lock(mutex_);
  return tally_;
}

void ClientLoad::run_client(std::size_t index) {
  const User& user = users_[index];
  // Records one request's outcome; returns its parsed body when it was 2xx JSON.
  auto note = [&](const std::optional<RawConnection::Response>& r, std::chrono::steady_clock::time_point sent) {
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - sent);
    std::optional<json> body;
    if (r) body = json::parse(r->body, nullptr, false);
    std::lock_guard lock(mutex_);
    if (!r) {
      ++tally_.no_reply;
      return std::optional<json>{};
    }
    ++tally_.statuses[r->status];
    tally_.worst_latency = std::max(tally_.worst_latency, took);
    if (r->status < 200 || r->status >= 300) {
      ++tally_.non_2xx;
      const std::string code = body && body->is_object() && body->contains("error") ? body->at("error").value("code", "") : "";
      ++tally_.error_codes[code.empty() ? "(no error code)" : code];
      if ((r->status == 503 || r->status == 429) && r->headers.count("retry-after") == 0) ++tally_.missing_retry_after;
      return std::optional<json>{};
    }
    return body;
  };
  for (int i = 0; !stop_.load(); ++i) {
    auto sent = std::chrono::steady_clock::now();
    const auto rec = note(http_request(port_, "POST", "/v1/recommendations", json{{"user_id", user.id}, {"n", 2}}.dump(),
                                       user.token, options_.timeout),
                          sent);
    if (!rec || !rec->contains("event_id")) {
      std::this_thread::sleep_for(options_.pause * 2);
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      tally_.answered.push_back(rec->at("event_id"));
      tally_.model_versions.insert(rec->value("model_version", ""));
    }
    const std::string key = "load-" + user.id.substr(0, 8) + "-" + std::to_string(i);
    const json feedback = {{"event_id", rec->at("event_id")}, {"meal_id", rec->at("meals")[0]["meal_id"]},
                           {"outcome", i % 3 == 0 ? "rejected" : "accepted"}, {"idempotency_key", key}};
    sent = std::chrono::steady_clock::now();
    if (note(http_request(port_, "POST", "/v1/feedback", feedback.dump(), user.token, options_.timeout), sent)) {
      std::lock_guard lock(mutex_);
      tally_.acknowledged.push_back(key);
    }
    std::this_thread::sleep_for(options_.pause);
  }
}

}  // namespace forkcast::service::testing
