#include "decision_log.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "decision_journal.hpp"
#include "forkcast/db/errors.hpp"
#include "journal_record.hpp"
#include "metrics.hpp"

namespace forkcast::service {

namespace {
constexpr std::size_t kMaxBatch = 512;
// After the first decision of a batch arrives the writer waits this long (or for kMaxBatch)
// before storing: bigger batches, and one wake-up of the writer per batch.
constexpr auto kGatherWindow = std::chrono::milliseconds(2);
constexpr std::size_t kMaxSpare = 2048;  // recycled PendingDecisions kept
constexpr auto kRetryMin = std::chrono::milliseconds(50);
constexpr auto kRetryMax = std::chrono::milliseconds(1000);
}  // namespace

DecisionLog::DecisionLog(db::DecisionRepository& repository, const env::Catalog& catalog, std::size_t capacity,
                         Metrics& metrics, DecisionJournal* journal)
    : repository_(repository),
      meal_ids_(meal_ids_of(catalog)),
      journal_(journal),
      capacity_(capacity),
      metrics_(metrics),
      writer_([this] { run_writer(); }),
      storer_([this] { run_storer(); }) {}

DecisionLog::~DecisionLog() { stop(std::chrono::steady_clock::now() + std::chrono::seconds(2)); }

PendingDecision DecisionLog::acquire() {
  std::lock_guard lock(mutex_);
  if (spare_.empty()) return {};
  PendingDecision recycled = std::move(spare_.back());
  spare_.pop_back();
  return recycled;
}

Enqueued DecisionLog::enqueue(PendingDecision decision) {
  // Encoded before the decision moves into the queue, into a per-thread buffer that keeps
  // its capacity: journaling allocates nothing once warm.
  thread_local std::string frame;
  if (journal_ != nullptr) {
    frame.clear();
    journal::append_decision_frame(decision, frame);
  }
  Enqueued result;
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() + writing_ >= capacity_ || stopping_) {
      metrics_.decisions_log_failed().Increment();
      return result;
    }
    queue_.push_back(std::move(decision));
    metrics_.decision_log_queue().Set(static_cast<double>(queue_.size() + writing_));
    // Wake the writer only when it may be asleep on an empty queue, or when a batch is full.
    if (queue_.size() == 1 || queue_.size() == kMaxBatch) work_cv_.notify_one();
    result.sequence = next_sequence_++;
  }
  // Outside the log's lock (the writer and storer need it); the journal has its own. If the
  // storer stores this decision before the append lands, the frame just outlives its need.
  if (journal_ != nullptr) {
    result.journaled = journal_->append(result.sequence, frame);
    if (!result.journaled) metrics_.decisions_journal_failed().Increment();
  }
  return result;
}

bool DecisionLog::wait_stored(std::uint64_t sequence, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (handled_through_ >= sequence) return true;
  flush_now_ = true;  // somebody waits: do not hold the batch for the gather window
  work_cv_.notify_one();
  return done_cv_.wait_until(lock, deadline, [&] { return handled_through_ >= sequence; });
}

std::uint64_t DecisionLog::last_enqueued() const {
  std::lock_guard lock(mutex_);
  return next_sequence_ - 1;
}

std::size_t DecisionLog::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + writing_;
}

void DecisionLog::stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    if (!writer_.joinable()) return;
    stopping_ = true;
    stop_deadline_ = deadline;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  writer_.join();
  storer_.join();
  std::lock_guard lock(mutex_);
  if (!queue_.empty()) {
    spdlog::error("decision log: {} decisions could not be stored before shutdown", queue_.size());
    metrics_.decisions_log_failed().Increment(static_cast<double>(queue_.size()));
  }
  if (journal_ == nullptr) return;
  if (handled_through_ + 1 == next_sequence_) {
    journal_->release_all();  // everything is stored: a clean shutdown leaves no journal
  } else {
    spdlog::warn("decision log: the journal in {} keeps the {} decisions not stored, for the next start",
                 journal_->directory().string(), next_sequence_ - 1 - handled_through_);
  }
}

bool DecisionLog::past_stop_deadline() const { return stopping_ && std::chrono::steady_clock::now() >= stop_deadline_; }

DecisionLog::ReadyBatch DecisionLog::prepare(std::span<const PendingDecision> decisions) {
  ReadyBatch batch;
  batch.count = decisions.size();
  batch.rows.reserve(decisions.size());
  for (const auto& p : decisions) batch.rows.push_back(to_stored(p, meal_ids_));
  try {
    batch.encoded = db::DecisionRepository::encode_batch(batch.rows);
    return batch;
  } catch (const std::exception& e) {
    spdlog::warn("decision log: batch of {} refused ({}); checking one at a time", batch.rows.size(), e.what());
  }
  std::vector<db::Decision> valid;
  for (auto& row : batch.rows) {
    try {
      db::DecisionRepository::encode_batch(std::span<const db::Decision>(&row, 1));
      valid.push_back(std::move(row));
    } catch (const std::exception& e) {
      spdlog::error("decision log: decision {} dropped: {}", row.event_id, e.what());
      metrics_.decisions_log_failed().Increment();
    }
  }
  batch.rows = std::move(valid);
  batch.encoded = db::DecisionRepository::encode_batch(batch.rows);
  return batch;
}

void DecisionLog::run_writer() {
  // The writer yields the CPU to request threads: under a burst the queue absorbs the
  // decisions and the writer catches up when the burst ends (Linux: per-thread nice).
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  std::vector<PendingDecision> taken;  // swapped out of the queue, prepared in chunks
  std::size_t next_chunk = 0;          // first decision of `taken` not yet prepared
  for (;;) {
    if (next_chunk == taken.size()) {
      std::unique_lock lock(mutex_);
      // Give the prepared decisions' objects back for reuse (their buffers keep capacity).
      for (auto& p : taken) {
        if (spare_.size() >= kMaxSpare) break;
        spare_.push_back(std::move(p));
      }
      taken.clear();
      next_chunk = 0;
      work_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (!stopping_ && !flush_now_ && queue_.size() < kMaxBatch) {
        work_cv_.wait_for(lock, kGatherWindow, [&] { return queue_.size() >= kMaxBatch || stopping_ || flush_now_; });
      }
      flush_now_ = false;
      if (queue_.empty() || past_stop_deadline()) {
        writer_done_ = true;
        ready_cv_.notify_all();
        return;
      }
      std::swap(taken, queue_);
      writing_ += taken.size();
    }
    // Rows are built and encoded here, off the request path and outside the lock.
    const std::size_t n = std::min(taken.size() - next_chunk, kMaxBatch);
    ReadyBatch batch = prepare(std::span<const PendingDecision>(taken.data() + next_chunk, n));
    next_chunk += n;
    std::unique_lock lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_.size() < kMaxReady || past_stop_deadline(); });
    if (past_stop_deadline()) {  // shutting down and out of time: the storer takes nothing more
      const std::size_t lost = batch.rows.size() + (taken.size() - next_chunk);
      spdlog::error("decision log: {} decisions could not be stored before shutdown", lost);
      metrics_.decisions_log_failed().Increment(static_cast<double>(lost));
      writer_done_ = true;
      ready_cv_.notify_all();
      return;
    }
    ready_.push_back(std::move(batch));
    ready_cv_.notify_all();
  }
}

void DecisionLog::run_storer() {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  auto backoff = kRetryMin;
  for (;;) {
    ReadyBatch batch;
    {
      std::unique_lock lock(mutex_);
      ready_cv_.wait(lock, [&] { return !ready_.empty() || writer_done_; });
      if (ready_.empty()) return;
      batch = std::move(ready_.front());
      ready_.pop_front();
    }
    ready_cv_.notify_all();  // room for the writer
    for (;;) {
      try {
        store(batch);
        backoff = kRetryMin;
        break;
      } catch (const db::DatabaseUnavailable& e) {
        // Keep the batch and retry: the database may come back. Decisions wait in the
        // queue meanwhile (which fills; then responses say "failed").
        spdlog::warn("decision log: database unavailable ({}); retrying in {} ms", e.what(), backoff.count());
        std::unique_lock lock(mutex_);
        if (past_stop_deadline()) {
          std::size_t lost = batch.rows.size();
          for (const auto& r : ready_) lost += r.rows.size();
          ready_.clear();
          spdlog::error("decision log: {} decisions could not be stored before shutdown", lost);
          metrics_.decisions_log_failed().Increment(static_cast<double>(lost));
          ready_cv_.notify_all();
          return;
        }
        // On ready_cv_, not work_cv_: enqueue's notify_one is meant for the writer.
        ready_cv_.wait_for(lock, backoff, [&] { return past_stop_deadline(); });
        backoff = std::min(backoff * 2, kRetryMax);
      }
    }
    std::uint64_t handled = 0;
    {
      std::lock_guard lock(mutex_);
      handled_through_ += batch.count;
      handled = handled_through_;
      writing_ -= batch.count;
      metrics_.decision_log_queue().Set(static_cast<double>(queue_.size() + writing_));
    }
    done_cv_.notify_all();
    if (journal_ != nullptr) journal_->release_through(handled);
  }
}

void DecisionLog::store(const ReadyBatch& batch) {
  try {
    repository_.record_batch(batch.encoded);
    metrics_.decisions_logged().Increment(static_cast<double>(batch.rows.size()));
    return;
  } catch (const db::DatabaseUnavailable&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::warn("decision log: batch of {} refused ({}); storing one at a time", batch.rows.size(), e.what());
  }
  for (const auto& decision : batch.rows) {
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
