#include "forkcast/db/feedback_writer.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "connection_pool.hpp"
#include "feedback_batch.hpp"

namespace forkcast::db {

struct FeedbackWriter::Batch {
  std::vector<NewFeedback> writes;                // appended to only while the batch is open
  std::vector<detail::FeedbackOutcome> outcomes;  // set once, when done
  std::chrono::steady_clock::time_point first_arrival;
  bool probe = false;   // waits out its window to measure concurrency
  bool closed = false;  // no more writes; someone is storing it (mutex_)
  bool done = false;    // outcomes are set (mutex_)
  // Two conditions so that closing a batch wakes only its first writer (waiting for the
  // window), not every writer in it twice. Both are waited on under mutex_.
  std::condition_variable closed_cv;
  std::condition_variable done_cv;
};

FeedbackWriter::FeedbackWriter(ConnectionPool& pool, GroupCommitOptions options)
    : pool_(pool), options_(options) {
  if (options_.window_ms < 0 || options_.window_ms > 1000) {
    throw std::invalid_argument("database.group_commit_window_ms: " +
                                std::to_string(options_.window_ms) + " is out of range 0..1000");
  }
  if (options_.max_batch < 1) throw std::invalid_argument("max_batch: must be at least 1");
}

FeedbackWriter::~FeedbackWriter() = default;

std::size_t FeedbackWriter::close_at(const Batch& batch) const {
  if (options_.window_ms == 0) return 1;
  if (batch.probe || expected_batch_ == 0) return options_.max_batch;
  return std::min(expected_batch_, options_.max_batch);
}

void FeedbackWriter::close(Batch& batch) {
  batch.closed = true;
  if (open_.get() == &batch) open_.reset();  // the next write starts a new batch
}

void FeedbackWriter::store(Batch& batch) {
  std::vector<detail::FeedbackOutcome> outcomes;
  const auto from = std::chrono::steady_clock::now();
  try {
    outcomes = pool_.internal().run(
        [&](pqxx::connection& c) { return detail::write_feedback_batch(c, batch.writes); });
  } catch (...) {
    // The batch as a whole failed (database down, connection lost, COMMIT in doubt): every
    // caller in it gets the error, none an acknowledgement.
    outcomes.assign(batch.writes.size(), std::current_exception());
  }
  const auto to = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ++stats_.batches;
  stats_.writes += batch.writes.size();
  stats_.largest_batch = std::max<std::uint64_t>(stats_.largest_batch, batch.writes.size());
  stats_.storing_ms += std::chrono::duration<double, std::milli>(to - from).count();
  batch.outcomes = std::move(outcomes);
  batch.done = true;
  batch.done_cv.notify_all();
}

FeedbackResult FeedbackWriter::submit(const NewFeedback& feedback) {
  detail::validate_feedback(feedback);
  std::unique_lock lock(mutex_);
  if (!open_) {
    open_ = std::make_shared<Batch>();
    open_->first_arrival = std::chrono::steady_clock::now();
    // Now and then a batch ignores the estimate and waits out its window, so the estimate
    // follows the writers up as well as down (an estimate of 1 would otherwise never grow).
    if (open_->first_arrival >= next_probe_) {
      open_->probe = true;
      next_probe_ = open_->first_arrival + kProbeInterval;
    }
  }
  const std::shared_ptr<Batch> batch = open_;
  const std::size_t index = batch->writes.size();
  batch->writes.push_back(feedback);

  bool store_here = false;
  if (batch->writes.size() >= close_at(*batch)) {
    // This write fills the batch: store it now, without waking anyone first.
    close(*batch);
    batch->closed_cv.notify_one();  // the first writer stops waiting for the window
    store_here = true;
  } else if (index == 0) {
    const auto deadline = batch->first_arrival + std::chrono::milliseconds(options_.window_ms);
    if (!batch->closed_cv.wait_until(lock, deadline, [&] { return batch->closed; })) {
      // The window ended first: this is what the writers' concurrency looks like now.
      expected_batch_ = batch->writes.size();
      close(*batch);
      store_here = true;
    }
  }
  if (store_here) {
    lock.unlock();
    store(*batch);
    lock.lock();
  } else {
    batch->done_cv.wait(lock, [&] { return batch->done; });
  }
  detail::FeedbackOutcome outcome = std::move(batch->outcomes[index]);
  lock.unlock();
  if (auto* result = std::get_if<FeedbackResult>(&outcome)) return *result;
  std::rethrow_exception(std::get<std::exception_ptr>(outcome));
}

GroupCommitStats FeedbackWriter::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace forkcast::db
