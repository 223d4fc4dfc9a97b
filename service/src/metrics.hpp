// Prometheus metrics (prometheus-cpp core for the families and the text format). Counters
// and histograms of the hot routes are created once up front, so recording a request is
// a few atomic adds rather than a label lookup.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace forkcast::service {

class Metrics {
 public:
  // `route_names`: the metrics label of every route (routes() order), plus "unmatched".
  explicit Metrics(const std::vector<std::string_view>& route_names);

  // One finished request: route index (routes() order; -1 for none), status, seconds.
  void record_request(int route, unsigned status, double seconds);

  prometheus::Counter& decisions_logged() { return *decisions_logged_; }
  prometheus::Counter& decisions_log_failed() { return *decisions_log_failed_; }
  prometheus::Counter& decisions_journal_failed() { return *decisions_journal_failed_; }
  prometheus::Counter& decisions_replayed() { return *decisions_replayed_; }
  prometheus::Counter& feedback_committed() { return *feedback_committed_; }
  prometheus::Counter& feedback_duplicates() { return *feedback_duplicates_; }
  prometheus::Counter& recommendations() { return *recommendations_; }
  prometheus::Counter& explored() { return *explored_; }
  prometheus::Counter& state_write_failures() { return *state_write_failures_; }
  prometheus::Counter& rate_limited() { return *rate_limited_; }
  // The self-managed database's supervision (db/supervisor.hpp): restarts, failed attempts,
  // pool connections released for a shutdown in progress.
  prometheus::Counter& database_restarts() { return *database_restarts_; }
  prometheus::Counter& database_restart_failures() { return *database_restart_failures_; }
  prometheus::Counter& database_releases() { return *database_releases_; }
  prometheus::Gauge& epsilon() { return *epsilon_; }
  prometheus::Gauge& decision_log_queue() { return *decision_log_queue_; }
  prometheus::Gauge& connections() { return *connections_; }
  prometheus::Counter& advice(std::string_view source);  // "model" or a fallback reason
  // Serving-model swaps by source: "admin" (this process's promote route) or "registry" (a
  // promotion made by another process, followed); and registry promotions not servable.
  prometheus::Counter& model_swaps(std::string_view source);
  prometheus::Counter& model_swap_failures() { return *model_swap_failures_; }
  void set_model(const std::string& version);

  // The Prometheus text exposition format (version 0.0.4).
  std::string render() const;

 private:
  static constexpr std::array<unsigned, 13> kStatuses = {200, 201, 204, 400, 401, 403, 404,
                                                          405, 409, 413, 429, 500, 503};
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_family_;
  prometheus::Family<prometheus::Histogram>* latency_family_;
  prometheus::Family<prometheus::Counter>* advice_family_;
  prometheus::Family<prometheus::Gauge>* model_family_;
  prometheus::Family<prometheus::Counter>* model_swaps_family_;
  std::vector<std::string> route_names_;
  std::vector<std::array<prometheus::Counter*, kStatuses.size()>> requests_;  // per route
  std::vector<prometheus::Histogram*> latency_;                             // per route
  std::mutex other_mutex_;  // rare statuses
  prometheus::Counter* decisions_logged_;
  prometheus::Counter* decisions_log_failed_;
  prometheus::Counter* decisions_journal_failed_;
  prometheus::Counter* decisions_replayed_;
  prometheus::Counter* feedback_committed_;
  prometheus::Counter* feedback_duplicates_;
  prometheus::Counter* recommendations_;
  prometheus::Counter* explored_;
  prometheus::Counter* state_write_failures_;
  prometheus::Counter* rate_limited_;
  prometheus::Counter* database_restarts_;
  prometheus::Counter* database_restart_failures_;
  prometheus::Counter* database_releases_;
  prometheus::Counter* model_swap_failures_;
  prometheus::Gauge* epsilon_;
  prometheus::Gauge* decision_log_queue_;
  prometheus::Gauge* connections_;
  std::mutex model_mutex_;
  prometheus::Gauge* model_gauge_ = nullptr;
};

}  // namespace forkcast::service
