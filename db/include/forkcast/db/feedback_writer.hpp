// Group commit for feedback writes (DESIGN.md §4: "a feedback request is answered 2xx only
// after its COMMIT returned"). Every caller of submit() blocks; the writes of concurrent
// callers are gathered into a batch and stored in one transaction (one multi-row
// INSERT ... ON CONFLICT DO NOTHING), so N concurrent writes cost one commit and one WAL
// flush instead of N. Each caller returns only after its batch's COMMIT returned, with its
// own result or its own error.
//
// Who commits: no thread of its own. The first write of a batch waits for the window; the
// write that fills the batch, or the first one when the window ends, stores the batch on
// a pooled connection, then wakes the others. (A dedicated committer thread would add a
// thread wake-up to every batch's critical path, and a lone write would pay it too.)
// Batches that closed may be stored concurrently on different connections.
//
// When a batch closes: window_ms after its first write arrived, or earlier once it holds
// max_batch writes or as many writes as the last batch that waited out its whole window
// (the recently observed concurrency: with 8 steady writers a batch closes as soon as the 8
// are in, instead of idling to the end of the window). Every kProbeInterval one batch waits
// out its window regardless, so that the estimate can grow again. A write therefore waits at
// most window_ms plus one commit. window_ms = 0 disables batching: every write commits alone.
//
// Idempotency and errors are those of FeedbackRepository::record: a repeated key (in an
// earlier batch or the same one) reports duplicate = true, content that differs from the
// stored write throws ConflictError, an unknown event throws NotFoundError — to that caller
// only; the rest of its batch commits. A failure of the batch as a whole (database down,
// connection lost, even during COMMIT) throws DatabaseUnavailable to every caller in it:
// their writes may or may not have committed, and retrying with the same idempotency key is
// always safe. Invalid input throws std::invalid_argument from submit() before queueing.
//
// Ownership and threads: borrows the pool (which must outlive it and carry
// repository_statements()). submit() may be called from any number of threads; destroy the
// writer only after every submit() has returned.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "forkcast/db/pool.hpp"
#include "forkcast/db/records.hpp"

namespace forkcast::db {

struct GroupCommitOptions {
  int window_ms = 2;            // database.group_commit_window_ms, 0..1000
  std::size_t max_batch = 256;  // writes per transaction, >= 1
};

struct GroupCommitStats {
  std::uint64_t batches = 0;  // transactions attempted
  std::uint64_t writes = 0;   // submit() calls answered
  std::uint64_t largest_batch = 0;
  double storing_ms = 0;  // wall time spent storing batches (checkout to COMMIT), summed
};

class FeedbackWriter {
 public:
  static constexpr std::chrono::milliseconds kProbeInterval{100};

  // Throws std::invalid_argument for window_ms outside 0..1000 or max_batch 0.
  FeedbackWriter(ConnectionPool& pool, GroupCommitOptions options);
  ~FeedbackWriter();
  FeedbackWriter(const FeedbackWriter&) = delete;
  FeedbackWriter& operator=(const FeedbackWriter&) = delete;

  // Blocks until the write's batch committed (or failed); see the header comment.
  FeedbackResult submit(const NewFeedback& feedback);

  GroupCommitStats stats() const;

 private:
  struct Batch;
  std::size_t close_at(const Batch& batch) const;  // size that closes `batch` early; mutex_ held
  void close(Batch& batch);                        // mutex_ held
  void store(Batch& batch);                        // mutex_ not held

  ConnectionPool& pool_;
  GroupCommitOptions options_;
  mutable std::mutex mutex_;
  std::shared_ptr<Batch> open_;     // the batch new writes join
  std::size_t expected_batch_ = 0;  // size of the last batch that waited its whole window
  std::chrono::steady_clock::time_point next_probe_{};  // next batch to wait out its window
  GroupCommitStats stats_;
};

}  // namespace forkcast::db
