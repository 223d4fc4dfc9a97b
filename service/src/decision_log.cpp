#include "decision_log.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "forkcast/db/errors.hpp"
#include "metrics.hpp"

namespace forkcast::service {

namespace {
constexpr std::size_t kMaxBatch = 512;
constexpr auto kRetryMin = std::chrono::milliseconds(50);
constexpr auto kRetryMax = std::chrono::milliseconds(1000);
}  // namespace

namespace {
// float32 carries ~7 significant digits; 6 keep the stored JSON short (grisu would print 17).
double six_digits(double x) {
  if (x == 0.0 || !std::isfinite(x)) return x;
  const double scale = std::pow(10.0, 5 - static_cast<int>(std::floor(std::log10(std::fabs(x)))));
  return std::round(x * scale) / scale;
}
}  // namespace

db::Decision to_stored(const PendingDecision& p, const env::Catalog& catalog) {
  db::Decision d;
  d.event_id = p.event_id;
  db::NewDecision& n = d.logged;
  n.user_id = p.user_id;
  n.decided_at = p.decided_at;
  n.slot = static_cast<db::Slot>(p.slot);
  n.model_version = p.model_version;
  n.policy = "epsilon_greedy";
  n.epsilon = p.epsilon;
  n.candidates.reserve(p.candidates.size());
  n.scores.reserve(p.candidates.size());
  for (std::size_t i = 0; i < p.candidates.size(); ++i) {
    n.candidates.push_back(catalog.meals()[static_cast<std::size_t>(p.candidates[i])].id);
    n.scores.push_back(six_digits(p.scores[i]));
  }
  n.probabilities = p.probabilities;  // exact: they must sum to 1
  n.chosen = n.candidates[p.chosen];
  for (const std::size_t r : p.ranked) n.ranked.push_back(n.candidates[r]);
  n.state_features.reserve(p.observation.size());
  for (const float x : p.observation) n.state_features.push_back(six_digits(x));
  n.context = {{"draw_seed", p.draw_seed}, {"step", p.step}, {"greedy", n.candidates[p.greedy]}, {"n", p.n}};
  return d;
}

DecisionLog::DecisionLog(db::DecisionRepository& repository, const env::Catalog& catalog, std::size_t capacity,
                         Metrics& metrics)
    : repository_(repository), catalog_(catalog), capacity_(capacity), metrics_(metrics), writer_([this] { run(); }) {}

DecisionLog::~DecisionLog() { stop(std::chrono::steady_clock::now() + std::chrono::seconds(2)); }

std::uint64_t DecisionLog::enqueue(PendingDecision decision) {
  std::lock_guard lock(mutex_);
  if (queue_.size() >= capacity_ || stopping_) {
    metrics_.decisions_log_failed().Increment();
    return 0;
  }
  queue_.push_back(std::move(decision));
  metrics_.decision_log_queue().Set(static_cast<double>(queue_.size()));
  work_cv_.notify_one();
  return next_sequence_++;
}

bool DecisionLog::wait_stored(std::uint64_t sequence, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  return done_cv_.wait_until(lock, deadline, [&] { return handled_through_ >= sequence; });
}

std::size_t DecisionLog::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void DecisionLog::stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    if (!writer_.joinable()) return;
    stopping_ = true;
    stop_deadline_ = deadline;
  }
  work_cv_.notify_all();
  writer_.join();
  std::lock_guard lock(mutex_);
  if (!queue_.empty()) {
    spdlog::error("decision log: {} decisions could not be stored before shutdown", queue_.size());
    metrics_.decisions_log_failed().Increment(static_cast<double>(queue_.size()));
  }
}

void DecisionLog::run() {
  // The writer yields the CPU to request threads: under a burst the queue absorbs the
  // decisions and the writer catches up when the burst ends (Linux: per-thread nice).
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  std::vector<PendingDecision> pending;  // taken off the queue, not yet stored
  std::vector<db::Decision> batch;       // their rows
  auto backoff = kRetryMin;
  for (;;) {
    if (pending.empty()) {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() || (stopping_ && std::chrono::steady_clock::now() >= stop_deadline_)) return;
      const std::size_t n = std::min(queue_.size(), kMaxBatch);
      pending.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      metrics_.decision_log_queue().Set(static_cast<double>(queue_.size()));
      // Rows are built here, off the request path and outside the lock.
      lock.unlock();
      batch.clear();
      for (const auto& p : pending) batch.push_back(to_stored(p, catalog_));
    }
    try {
      store(batch);
      backoff = kRetryMin;
    } catch (const db::DatabaseUnavailable& e) {
      // Keep the batch and retry: the database may come back. Decisions wait in the
      // queue meanwhile (which fills; then responses say "failed").
      spdlog::warn("decision log: database unavailable ({}); retrying in {} ms", e.what(), backoff.count());
      std::unique_lock lock(mutex_);
      if (stopping_ && std::chrono::steady_clock::now() >= stop_deadline_) {
        spdlog::error("decision log: {} decisions could not be stored before shutdown", pending.size());
        metrics_.decisions_log_failed().Increment(static_cast<double>(pending.size()));
        return;
      }
      work_cv_.wait_for(lock, backoff, [&] { return stopping_ && std::chrono::steady_clock::now() >= stop_deadline_; });
      backoff = std::min(backoff * 2, kRetryMax);
      continue;
    }
    std::lock_guard lock(mutex_);
    handled_through_ += pending.size();
    pending.clear();
    done_cv_.notify_all();
  }
}

void DecisionLog::store(std::vector<db::Decision>& batch) {
  try {
    repository_.record_batch(batch);
    metrics_.decisions_logged().Increment(static_cast<double>(batch.size()));
    return;
  } catch (const db::DatabaseUnavailable&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::warn("decision log: batch of {} refused ({}); storing one at a time", batch.size(), e.what());
  }
  for (auto& decision : batch) {
    try {
      repository_.record_batch(std::span<const db::Decision>(&decision, 1));
      metrics_.decisions_logged().Increment();
    } catch (const db::DatabaseUnavailable&) {
      throw;  // the whole batch is retried; stored ones are skipped by their event id
    } catch (const std::exception& e) {
      spdlog::error("decision log: decision {} dropped: {}", decision.event_id, e.what());
      metrics_.decisions_log_failed().Increment();
    }
  }
}

}  // namespace forkcast::service
