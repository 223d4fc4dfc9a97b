#include "metrics.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>

namespace forkcast::service {

namespace {
// Request latency buckets, seconds: the recommendation route answers in tens of
// microseconds, feedback in a few milliseconds (one group commit), advice in seconds.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}  // namespace

Metrics::Metrics(const std::vector<std::string_view>& route_names)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  requests_family_ = &BuildCounter()
                          .Name("forkcast_http_requests_total")
                          .Help("HTTP requests answered, by route (named for its method and path) and status")
                          .Register(*registry_);
  latency_family_ = &BuildHistogram()
                         .Name("forkcast_http_request_duration_seconds")
                         .Help("Time from a request's last byte read to its response handed to the socket")
                         .Register(*registry_);
  for (std::string_view name : route_names) {
    route_names_.emplace_back(name);
    std::array<prometheus::Counter*, kStatuses.size()> counters{};
    for (std::size_t i = 0; i < kStatuses.size(); ++i) {
      counters[i] = &requests_family_->Add({{"route", std::string(name)}, {"status", std::to_string(kStatuses[i])}});
    }
    requests_.push_back(counters);
    latency_.push_back(&latency_family_->Add({{"route", std::string(name)}}, kLatencyBuckets));
  }
  auto counter = [&](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(*registry_).Add({});
  };
  auto gauge = [&](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  decisions_logged_ = counter("forkcast_decisions_logged_total", "Decisions committed to the decision log");
  decisions_log_failed_ = counter("forkcast_decisions_log_failed_total",
                                  "Decisions that could not be logged (queue full or rejected by the database)");
  decisions_journal_failed_ = counter("forkcast_decisions_journal_failed_total",
                                      "Decisions logged but not written to the crash journal (disk full, I/O error)");
  decisions_replayed_ = counter("forkcast_decisions_replayed_total",
                                "Decisions found in the crash journal at startup and stored then");
  feedback_committed_ = counter("forkcast_feedback_committed_total", "Feedback writes acknowledged after COMMIT");
  feedback_duplicates_ = counter("forkcast_feedback_duplicates_total", "Feedback writes whose idempotency key was already stored");
  recommendations_ = counter("forkcast_recommendations_total", "Recommendations served");
  explored_ = counter("forkcast_recommendations_explored_total",
                      "Recommendations whose first meal was not the greedy one (exploration)");
  state_write_failures_ = counter("forkcast_user_state_write_failures_total",
                                  "User state writes that failed (retried with the user's next change)");
  rate_limited_ = counter("forkcast_rate_limited_total", "Requests refused with 429");
  database_restarts_ = counter("forkcast_database_restarts_total",
                               "Times serve started its own PostgreSQL again after it stopped running");
  database_restart_failures_ = counter("forkcast_database_restart_failures_total",
                                       "Attempts to start serve's own PostgreSQL again that failed");
  database_releases_ = counter("forkcast_database_connection_releases_total",
                               "Times the pool let go of its connections for a PostgreSQL shutdown in progress");
  epsilon_ = gauge("forkcast_exploration_epsilon", "Epsilon of the last recommendation served");
  decision_log_queue_ = gauge("forkcast_decision_log_queue", "Decisions waiting to be written");
  connections_ = gauge("forkcast_http_connections", "Open HTTP connections");
  advice_family_ = &BuildCounter()
                        .Name("forkcast_advice_total")
                        .Help("Advice answered, by source: model, or the reason template advice was used")
                        .Register(*registry_);
  model_family_ = &BuildGauge()
                       .Name("forkcast_model_info")
                       .Help("The serving policy model (1 for the version serving now)")
                       .Register(*registry_);
  model_swaps_family_ = &BuildCounter()
                             .Name("forkcast_model_swaps_total")
                             .Help("Serving-model swaps, by source: admin (this process's promote route) or registry "
                                   "(a promotion made by another process)")
                             .Register(*registry_);
  model_swap_failures_ = counter("forkcast_model_swap_failures_total",
                                 "Promotions made by another process that this one could not serve (the old model kept serving)");
}

void Metrics::record_request(int route, unsigned status, double seconds) {
  const std::size_t r = route < 0 ? route_names_.size() - 1 : static_cast<std::size_t>(route);
  const auto* it = std::find(kStatuses.begin(), kStatuses.end(), status);
  if (it != kStatuses.end()) {
    requests_[r][static_cast<std::size_t>(it - kStatuses.begin())]->Increment();
  } else {
    std::lock_guard lock(other_mutex_);
    requests_family_->Add({{"route", route_names_[r]}, {"status", std::to_string(status)}}).Increment();
  }
  latency_[r]->Observe(seconds);
}

prometheus::Counter& Metrics::advice(std::string_view source) {
  std::lock_guard lock(other_mutex_);
  return advice_family_->Add({{"source", std::string(source)}});
}

prometheus::Counter& Metrics::model_swaps(std::string_view source) {
  std::lock_guard lock(other_mutex_);
  return model_swaps_family_->Add({{"source", std::string(source)}});
}

void Metrics::set_model(const std::string& version) {
  std::lock_guard lock(model_mutex_);
  if (model_gauge_ != nullptr) model_gauge_->Set(0);
  model_gauge_ = &model_family_->Add({{"version", version}});
  model_gauge_->Set(1);
}

std::string Metrics::render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace forkcast::service
