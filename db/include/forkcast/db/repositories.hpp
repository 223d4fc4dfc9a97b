// Repositories: one small class per table group, each a thin typed layer over prepared
// statements (all SQL is parameterised; tests/db/sql_lint_test.cpp greps for string-built
// SQL). Each method is one transaction on one pooled connection.
//
// Ownership: a repository borrows the pool; the pool must outlive it and must have been
// built with repository_statements() (Database does both). Repositories hold no other
// state, so one instance may be shared by every thread.
//
// Errors (errors.hpp): std::invalid_argument naming the field and the value for input no
// database could hold, before any SQL runs; DatabaseUnavailable when the database cannot be
// reached within the pool's checkout timeout; ConflictError / NotFoundError as documented on
// each method; DatabaseError for anything else. A lookup by a malformed id is "not found",
// not an error, so that a client-supplied id never reaches the server unchecked.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/db/pool.hpp"
#include "forkcast/db/records.hpp"

namespace forkcast::db {

// Every statement the repositories and the feedback writer use, for PoolOptions::statements.
std::vector<PreparedStatement> repository_statements();

// True for a canonical UUID text (8-4-4-4-12 hex digits, any case).
bool is_uuid(std::string_view text) noexcept;

class UserRepository {
 public:
  explicit UserRepository(ConnectionPool& pool) : pool_(pool) {}
  // ConflictError("users.token_sha256") when another user has the same token hash.
  User create(const NewUser& user);
  std::optional<User> find(std::string_view id);
  std::optional<User> find_by_token_sha256(std::string_view token_sha256);
  // Replaces the profile. NotFoundError("users.id") for an unknown user.
  User update_profile(std::string_view id, const nlohmann::json& profile);

 private:
  ConnectionPool& pool_;
};

class UserStateRepository {
 public:
  explicit UserStateRepository(ConnectionPool& pool) : pool_(pool) {}
  // Writes the user's state for `day`. expected_version: empty writes unconditionally;
  // 0 requires that no state exists yet for that day; n requires the stored version to be n.
  // Returns the stored row (version + 1). ConflictError("user_state.version") when the
  // expectation fails (another request wrote first: re-read and retry), NotFoundError
  // ("users.id") for an unknown user.
  UserState put(std::string_view user_id, std::chrono::year_month_day day,
                const nlohmann::json& state, std::optional<std::int64_t> expected_version = {});
  std::optional<UserState> get(std::string_view user_id, std::chrono::year_month_day day);
  std::optional<UserState> latest(std::string_view user_id);  // the most recent day

 private:
  ConnectionPool& pool_;
};

// A batch of decisions checked and encoded for DecisionRepository::record_batch, so that a
// writer can encode the next batch while the previous one is being stored.
class EncodedDecisionBatch {
 public:
  std::size_t size() const noexcept { return count_; }

 private:
  friend class DecisionRepository;
  std::size_t count_ = 0;
  std::vector<std::string> arrays_;  // the statement's parameters, PostgreSQL binary arrays
};

class DecisionRepository {
 public:
  explicit DecisionRepository(ConnectionPool& pool) : pool_(pool) {}
  // Checks the decision (sizes agree, probabilities are a pmf, chosen is a candidate with
  // probability > 0, ...) and stores it with a new event id. NotFoundError("users.id").
  Decision record(const NewDecision& decision);
  // Stores decisions whose event ids (canonical UUIDs) and decided_at the caller set, all in
  // one transaction: the service's asynchronous decision log. Each is checked as record()
  // checks it, before any SQL runs. An event id already stored is skipped (a retried batch
  // stores nothing twice). Returns how many were stored now. NotFoundError("users.id") if a
  // decision names an unknown user (then nothing is stored).
  std::size_t record_batch(std::span<const Decision> decisions);
  // The two halves of record_batch: encode_batch checks every decision (std::invalid_argument
  // naming the field, no SQL run) and touches no connection; record_batch(encoded) stores.
  static EncodedDecisionBatch encode_batch(std::span<const Decision> decisions);
  std::size_t record_batch(const EncodedDecisionBatch& batch);
  std::optional<Decision> find(std::string_view event_id);
  // How many decisions are stored for the user (0 for an unknown or malformed id).
  std::int64_t count_for_user(std::string_view user_id);
  // Newest first.
  std::vector<Decision> list_for_user(std::string_view user_id, int limit = 100);
  // decided_at in [from, to), oldest first: what off-policy evaluation reads.
  std::vector<Decision> list_between(Timestamp from, Timestamp to, int limit = 100'000);

 private:
  ConnectionPool& pool_;
};

class FeedbackRepository {
 public:
  explicit FeedbackRepository(ConnectionPool& pool) : pool_(pool) {}
  // One transaction for this one write (FeedbackWriter batches many into one). Idempotent:
  // a key already recorded with the same content returns its id with duplicate = true;
  // with different content it throws ConflictError("feedback.idempotency_key").
  // NotFoundError("decisions.event_id") for an unknown event.
  FeedbackResult record(const NewFeedback& feedback);
  std::optional<Feedback> find_by_key(std::string_view idempotency_key);
  std::vector<Feedback> list_for_event(std::string_view event_id);  // oldest first

 private:
  ConnectionPool& pool_;
};

class MealLogRepository {
 public:
  explicit MealLogRepository(ConnectionPool& pool) : pool_(pool) {}
  // Idempotent when an idempotency key is given (as FeedbackRepository::record, but a
  // repeat returns the stored entry whatever its content). NotFoundError("users.id") or
  // ("decisions.event_id").
  MealLogResult add(const NewMealLogEntry& entry);
  // eaten_at in [from, to), oldest first.
  std::vector<MealLogEntry> list_for_user(std::string_view user_id, Timestamp from, Timestamp to);

 private:
  ConnectionPool& pool_;
};

// The model registry. The schema allows one production model at a time (a partial unique
// index), so no sequence of calls, from any number of processes, can leave two.
class ModelRepository {
 public:
  explicit ModelRepository(ConnectionPool& pool) : pool_(pool) {}
  // Registers a candidate. ConflictError("models.version") if the version exists.
  Model register_model(const NewModel& model);
  std::optional<Model> find(std::string_view version);
  std::vector<Model> list();  // newest first
  std::optional<Model> production();
  // Makes `version` the production model and retires the previous one, atomically; a
  // retired model may be promoted again (rollback). NotFoundError("models.version").
  Model promote(std::string_view version);
  // NotFoundError("models.version").
  Model retire(std::string_view version);

 private:
  ConnectionPool& pool_;
};

class TrainingRunRepository {
 public:
  explicit TrainingRunRepository(ConnectionPool& pool) : pool_(pool) {}
  // ConflictError("training_runs.id") for a run id already recorded.
  TrainingRun start(const NewTrainingRun& run);
  // Records the end of a run. NotFoundError("training_runs.id").
  TrainingRun finish(std::string_view id, RunStatus status, const nlohmann::json& metrics,
                     std::optional<std::string> checkpoint_path = {},
                     std::optional<std::string> model_version = {});
  std::optional<TrainingRun> find(std::string_view id);
  std::vector<TrainingRun> list(int limit = 100);  // newest first

 private:
  ConnectionPool& pool_;
};

class EvalReportRepository {
 public:
  explicit EvalReportRepository(ConnectionPool& pool) : pool_(pool) {}
  EvalReport add(const NewEvalReport& report);
  std::optional<EvalReport> find(std::int64_t id);
  std::vector<EvalReport> list_for_model(std::string_view model_version);  // newest first

 private:
  ConnectionPool& pool_;
};

}  // namespace forkcast::db
