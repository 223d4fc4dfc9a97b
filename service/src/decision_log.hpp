// The asynchronous decision log: a recommendation is answered without waiting for its
// decision row. Two threads form a pipeline: the writer builds and encodes batches of queued
// decisions (DecisionRepository::encode_batch) while the storer stores the previous one (one
// statement and one COMMIT per batch), so both cores work while the log catches up.
// Nothing is dropped silently:
//   - a full queue refuses the decision (enqueue returns 0): the response says so in a
//     header and forkcast_decisions_log_failed_total counts it;
//   - while the database is unreachable the storer keeps the batch and retries with
//     backoff (decisions wait in the queue, which then fills);
//   - a batch that fails its checks (writer) or that the database rejects for its content
//     (storer) is retried one decision at a time, so only the bad decision is lost — logged
//     and counted.
// Crash safety: with a DecisionJournal (decision_journal.hpp) every queued decision is also
// appended to a local file before enqueue returns, and released once stored; a process
// killed before the log caught up leaves the journal for the next one to replay.
// Feedback on a decision first waits until that decision is stored (wait_stored), so the
// feedback row's foreign key always finds it.
//
// Cost on the request path: the writer is woken once per batch, not per decision (a
// decision queued into a non-empty queue notifies nobody; the writer gathers for
// kGatherWindow after the first one), and PendingDecision objects are recycled (acquire()),
// so queueing a decision allocates nothing once the service is warm.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "forkcast/db/repositories.hpp"
#include "forkcast/env/catalog.hpp"
#include "pending_decision.hpp"

namespace forkcast::service {

class DecisionJournal;
class Metrics;

// What became of a decision handed to enqueue().
struct Enqueued {
  std::uint64_t sequence = 0;  // > 0: queued for storing; 0: refused (queue full, shutting down)
  bool journaled = false;      // also in the crash journal (survives a crash of the process)
};

class DecisionLog {
 public:
  // `journal` (may be null: no crash safety) must outlive the log; the log releases what it
  // stored and, after a shutdown that stored everything, empties it.
  DecisionLog(db::DecisionRepository& repository, const env::Catalog& catalog, std::size_t capacity, Metrics& metrics,
              DecisionJournal* journal = nullptr);
  ~DecisionLog();  // stops both threads after a last attempt to drain (see stop)

  // A PendingDecision to fill and enqueue: a recycled one whose vectors and strings keep
  // their capacity (contents unspecified: assign every field), or a new one.
  PendingDecision acquire();
  // Queues a decision (event_id and decided_at set) and journals it. Never blocks on the
  // database; the journal's append is one write(2).
  Enqueued enqueue(PendingDecision decision);
  // Waits until decision `sequence` has been stored or given up on (true when stored or
  // dropped, false at the deadline).
  bool wait_stored(std::uint64_t sequence, std::chrono::steady_clock::time_point deadline);
  // Waits until everything queued so far is handled (or the deadline), then stops both threads.
  void stop(std::chrono::steady_clock::time_point deadline);

  // Decisions queued or being written, not yet stored.
  std::size_t queued() const;
  // The sequence number of the last decision enqueued so far (0 if none): waiting for it
  // with wait_stored() waits for everything accepted before this call.
  std::uint64_t last_enqueued() const;

 private:
  // A batch on its way from the writer to the storer: `count` queued decisions (sequence
  // numbers), of which `rows` are valid (the others were dropped, logged and counted).
  struct ReadyBatch {
    std::size_t count = 0;
    std::vector<db::Decision> rows;
    db::EncodedDecisionBatch encoded;
  };
  static constexpr std::size_t kMaxReady = 2;  // encoded batches waiting for the storer

  void run_writer();
  void run_storer();
  bool past_stop_deadline() const;  // with mutex_ held
  ReadyBatch prepare(std::span<const PendingDecision> decisions);
  void store(const ReadyBatch& batch);

  db::DecisionRepository& repository_;
  const std::vector<std::string> meal_ids_;  // the catalog's, in index order
  DecisionJournal* const journal_;
  const std::size_t capacity_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // the writer waits for decisions
  std::condition_variable done_cv_;   // callers wait for progress
  std::condition_variable ready_cv_;  // the storer waits for batches, the writer for room
  std::vector<PendingDecision> queue_;  // swapped out whole by the writer
  std::vector<PendingDecision> spare_; // stored decisions kept for acquire()
  std::size_t writing_ = 0;            // taken by the writer, not yet stored or dropped
  std::deque<ReadyBatch> ready_;       // encoded, waiting for the storer (<= kMaxReady)
  bool writer_done_ = false;
  bool flush_now_ = false;             // a caller waits in wait_stored: skip the gather window
  std::uint64_t next_sequence_ = 1;   // of the next enqueued decision
  std::uint64_t handled_through_ = 0;  // every sequence <= this is stored or dropped
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
  std::thread writer_, storer_;  // last: started once everything above is constructed
};

}  // namespace forkcast::service
