#include "decision_log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "forkcast/db/errors.hpp"
#include "metrics.hpp"

namespace forkcast::service {

namespace {
constexpr std::size_t kMaxBatch = 512;
constexpr auto kRetryMin = std::chrono::milliseconds(50);
constexpr auto kRetryMax = std::chrono::milliseconds(1000);
}  // namespace

DecisionLog::DecisionLog(db::DecisionRepository& repository, std::size_t capacity, Metrics& metrics)
    : repository_(repository), capacity_(capacity), metrics_(metrics), writer_([this] { run(); }) {}

DecisionLog::~DecisionLog() { stop(std::chrono::steady_clock::now() + std::chrono::seconds(2)); }

std::uint64_t DecisionLog::enqueue(db::Decision decision) {
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
  std::vector<db::Decision> batch;
  auto backoff = kRetryMin;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() || (stopping_ && std::chrono::steady_clock::now() >= stop_deadline_)) return;
      const std::size_t n = std::min(queue_.size(), kMaxBatch);
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
    }
    try {
      store(batch);
      backoff = kRetryMin;
    } catch (const db::DatabaseUnavailable& e) {
      // Keep the batch at the head of the queue and retry: the database may come back.
      spdlog::warn("decision log: database unavailable ({}); retrying in {} ms", e.what(), backoff.count());
      std::unique_lock lock(mutex_);
      work_cv_.wait_for(lock, backoff, [&] { return stopping_ && std::chrono::steady_clock::now() >= stop_deadline_; });
      backoff = std::min(backoff * 2, kRetryMax);
      continue;
    }
    std::lock_guard lock(mutex_);
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(batch.size()));
    handled_through_ += batch.size();
    metrics_.decision_log_queue().Set(static_cast<double>(queue_.size()));
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
