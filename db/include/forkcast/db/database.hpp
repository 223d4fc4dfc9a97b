// Everything db/ offers, wired: the connection pool (with every repository statement), the
// repositories and the feedback group-commit writer. This is what the service holds; it
// runs no SQL of its own (ping() checks that the database answers).
//
//   db::LocalInstance local(db::instance_options(cfg.database));   // unless database.url
//   auto started = local.start();
//   db::Database database(db::database_options(cfg.database, local.url()));
//   database.users().create(...);
//   database.feedback_writer().submit(...);
//   if (!started.already_running) local.stop();                    // on exit
//
// Ownership: Database owns the pool, the repositories and the writer; references it hands
// out live as long as it does. Thread-safe as its parts are (all of them are).
#pragma once

#include <memory>
#include <string>

#include "forkcast/config/config.hpp"
#include "forkcast/db/feedback_writer.hpp"
#include "forkcast/db/migrations.hpp"
#include "forkcast/db/pool.hpp"
#include "forkcast/db/repositories.hpp"

namespace forkcast::db {

struct DatabaseOptions {
  std::string url;  // required
  int pool_size = 8;
  int checkout_timeout_ms = 2'000;
  int group_commit_window_ms = 2;
  // On construction: true applies pending migrations; false only checks that the schema
  // is exactly this binary's (SchemaError if it is older or newer).
  bool migrate = true;
};

// database.pool_size, checkout_timeout_ms and group_commit_window_ms with `url`.
DatabaseOptions database_options(const config::DatabaseConfig& config, std::string url);

// What `forkcast db status` shows about a server: its version and the settings that decide
// whether an acknowledged COMMIT survives a crash (all three must be "on").
struct ServerInfo {
  std::string server_version;
  std::string fsync;
  std::string full_page_writes;
  std::string synchronous_commit;
};
// Throws DatabaseUnavailable when the server cannot be reached.
ServerInfo server_info(ConnectionPool& pool);

class Database {
 public:
  // Connects, checks (or migrates) the schema. Throws DatabaseUnavailable when the server
  // cannot be reached within the checkout timeout, SchemaError on a schema mismatch.
  explicit Database(DatabaseOptions options);
  ~Database();

  // Checks that the database answers: runs `SELECT 1` on a pooled connection (one round
  // trip) and returns once the server replied. What the service's readiness probe calls.
  // Time: waits for a free connection at most checkout_timeout_ms; opening a connection is
  // bounded by libpq's connect_timeout (whole seconds, at least 2) and a refused connection
  // fails at once. The query itself has no timeout of its own: a server that accepted the
  // connection but never answers is not bounded here. Throws DatabaseUnavailable when no
  // connection became free in time, the server cannot be reached, it is shutting down or
  // the connection broke (the connection is replaced, so a ping after a restart succeeds
  // once the server is back); DatabaseError for any other failure.
  void ping();

  ConnectionPool& pool() noexcept { return *pool_; }
  UserRepository& users() noexcept { return users_; }
  UserStateRepository& user_state() noexcept { return user_state_; }
  DecisionRepository& decisions() noexcept { return decisions_; }
  FeedbackRepository& feedback() noexcept { return feedback_; }
  MealLogRepository& meal_log() noexcept { return meal_log_; }
  ModelRepository& models() noexcept { return models_; }
  TrainingRunRepository& training_runs() noexcept { return training_runs_; }
  EvalReportRepository& eval_reports() noexcept { return eval_reports_; }
  FeedbackWriter& feedback_writer() noexcept { return *feedback_writer_; }
  const SchemaStatus& schema() const noexcept { return schema_; }

 private:
  std::unique_ptr<ConnectionPool> pool_;  // first: everything below borrows it
  SchemaStatus schema_;
  UserRepository users_;
  UserStateRepository user_state_;
  DecisionRepository decisions_;
  FeedbackRepository feedback_;
  MealLogRepository meal_log_;
  ModelRepository models_;
  TrainingRunRepository training_runs_;
  EvalReportRepository eval_reports_;
  std::unique_ptr<FeedbackWriter> feedback_writer_;  // last: stopped first
};

}  // namespace forkcast::db
