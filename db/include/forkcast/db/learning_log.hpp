// What `forkcast learn` reads and keeps in PostgreSQL (docs/learning-loop.md): the decision
// log joined with what happened after each decision, the learner's watermark, and the lock
// that lets one learner run a cycle at a time.
//
//   LearnerLock lock = LearnerLock::try_acquire(url, "default");   // nullopt: another runs
//   LearningLog log(database.pool());
//   const Timestamp from = log.watermark("default").value_or(epoch);
//   log.scan({from, now - wait, wait}, [&](std::span<const JoinedDecision> batch) { ... });
//   log.advance_watermark("default", from, now - wait);            // compare-and-set
//
// The join, per decision d (decided_at in [from, to), oldest first, ties by event id):
//   - its feedback received before d.decided_at + reward_wait, summarised (several events
//     per decision: offered, accepted, eaten, rated); feedback that came later is ignored,
//     so a decision's outcome is fixed once the window has passed and a cycle re-run over
//     the same range sees the same data;
//   - the same user's next decision (the next state), when it came before d.decided_at +
//     next_wait; otherwise none (the transition ends there);
//   - the first meal logged against d (meal_log.event_id), whenever it was logged.
// Rows are read through a server-side cursor in batches of batch_size, in one read-only
// REPEATABLE READ transaction (one snapshot: a decision stored during the scan is either
// in it or not, never half), never one row at a time.
//
// Ownership: LearningLog borrows the pool (which must outlive it); LearnerLock owns a
// connection of its own for as long as it holds the lock. Thread-safe as the pool is.
// Errors (errors.hpp): DatabaseUnavailable when the database cannot be reached,
// std::invalid_argument naming the field for bad input, DatabaseError otherwise. An
// exception thrown by the sink ends the scan (the transaction is rolled back) and passes
// through unchanged.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/db/pool.hpp"
#include "forkcast/db/records.hpp"

namespace forkcast::db {

// What the feedback of one decision said, within the reward window.
struct FeedbackSummary {
  int events = 0;             // feedback rows counted
  bool accepted = false;      // an 'accepted' outcome
  bool eaten = false;         // an 'eaten' outcome
  bool rejected = false;      // a 'rejected' outcome
  bool skipped = false;       // a 'skipped' outcome
  std::optional<int> rating;  // the latest rating given, 1..5
  std::optional<double> reward;  // the sum of the rewards clients sent, when any did
  std::string meal_id;        // the meal of the first accepted or eaten outcome ("" if none)
};

struct JoinedDecision {
  Decision decision;
  FeedbackSummary feedback;
  // The same user's next decision within next_wait: its event id and time.
  std::optional<std::string> next_event_id;
  std::optional<Timestamp> next_decided_at;
  // The first meal logged against this decision (POST /v1/meals/log with its event id):
  // what the user ate at that slot, suggested or not, and how many servings.
  std::optional<std::string> logged_meal_id;
  double logged_servings = 0;
};

struct ScanRange {
  Timestamp from{};  // inclusive
  Timestamp to{};    // exclusive; > from
  std::chrono::microseconds reward_wait{std::chrono::hours(1)};  // feedback counted within this
  std::chrono::microseconds next_wait{std::chrono::hours(24)};   // the next decision within this
  int batch_size = 5'000;                                         // rows per FETCH, 1..100'000
};

struct ScanStats {
  std::int64_t decisions = 0;
  std::int64_t with_feedback = 0;
  std::int64_t with_next = 0;
  int batches = 0;
};

// What a finished cycle commits, all in one transaction (docs/learning-loop.md "Crash
// safety"): the watermark moved by compare-and-set, the model it trained (registered as a
// candidate, then promoted to production or marked rejected), its evaluation reports, and
// the cycle's row. Either all of it is in the database or none of it.
enum class CycleOutcome : std::uint8_t { promoted, rejected, no_model };
std::string_view cycle_outcome_name(CycleOutcome outcome) noexcept;

struct CycleCommit {
  std::string learner;
  std::optional<Timestamp> expected;  // the watermark the cycle started from (nullopt: none)
  Timestamp to{};                     // the new watermark
  CycleOutcome outcome = CycleOutcome::no_model;
  std::optional<NewModel> model;      // required unless outcome is no_model
  std::vector<NewEvalReport> reports; // their model_version is set to the model's
  std::string reason;                 // why this outcome, in words
  nlohmann::json stats = nlohmann::json::object();
};

struct CycleRecord {
  std::int64_t id = 0;
  std::string learner;
  std::optional<Timestamp> from;
  Timestamp to{};
  CycleOutcome outcome = CycleOutcome::no_model;
  std::optional<std::string> model_version;
  std::string reason;
  nlohmann::json stats;
  Timestamp finished_at{};
};

class LearningLog {
 public:
  explicit LearningLog(ConnectionPool& pool) : pool_(pool) {}

  // Streams the joined decisions of `range` to `sink`, batch by batch (each batch's span is
  // valid during the call only). Throws std::invalid_argument for a range with to <= from,
  // negative waits or a batch size out of range.
  ScanStats scan(const ScanRange& range, const std::function<void(std::span<const JoinedDecision>)>& sink);

  // The time of the newest decision in the log (nullopt: none): "now" for a learner whose
  // clock is the log's (simulated traffic carries its own time).
  std::optional<Timestamp> newest_decision();

  // The learner's watermark: every decision before it has been consumed by a finished cycle.
  // nullopt for a learner that never finished one. `learner`: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
  std::optional<Timestamp> watermark(std::string_view learner);
  // Moves the watermark from `expected` (nullopt: none yet) to `to` and counts a cycle, in
  // one transaction; false, changing nothing, when the stored watermark is not `expected`
  // (another learner moved it: this cycle's data were consumed twice or not at all, so its
  // result must be thrown away). Throws std::invalid_argument when `to` is before `expected`.
  bool advance_watermark(std::string_view learner, std::optional<Timestamp> expected, Timestamp to);

  // Commits a cycle as described at CycleCommit. nullopt, changing nothing, when the stored
  // watermark is not `expected` (another learner finished this range first). Throws
  // ConflictError("models.version") for a version already registered, std::invalid_argument
  // for a commit without a model where the outcome needs one (or with one where it does not),
  // `to` before `expected`, or a bad learner name.
  std::optional<CycleRecord> commit_cycle(const CycleCommit& commit);
  // The learner's finished cycles, oldest first.
  std::vector<CycleRecord> cycles(std::string_view learner);

 private:
  ConnectionPool& pool_;
};

// A PostgreSQL session-level advisory lock for one learner name, held on a connection of
// its own until the object is destroyed (or the process dies: the server then drops the
// session and the lock with it, so a killed learner never leaves the lock taken).
class LearnerLock {
 public:
  // nullopt when another session holds the lock. Throws DatabaseUnavailable when the
  // database cannot be reached, std::invalid_argument for a bad name.
  static std::optional<LearnerLock> try_acquire(const std::string& url, std::string_view learner);
  ~LearnerLock();
  LearnerLock(LearnerLock&&) noexcept;
  LearnerLock& operator=(LearnerLock&&) = delete;
  LearnerLock(const LearnerLock&) = delete;
  LearnerLock& operator=(const LearnerLock&) = delete;

  // True while the lock's connection is still up (if it broke, the server released the
  // lock, and a cycle in progress must not commit).
  bool held() const;

 private:
  struct Session;  // db/src/learning_log.cpp
  explicit LearnerLock(std::unique_ptr<Session> session);
  std::unique_ptr<Session> session_;
};

}  // namespace forkcast::db
