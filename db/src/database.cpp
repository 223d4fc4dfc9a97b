#include "forkcast/db/database.hpp"

#include <spdlog/spdlog.h>

#include "connection_pool.hpp"

namespace forkcast::db {
namespace {

std::unique_ptr<ConnectionPool> make_pool(const DatabaseOptions& options) {
  PoolOptions pool;
  pool.url = options.url;
  pool.size = options.pool_size;
  pool.checkout_timeout_ms = options.checkout_timeout_ms;
  pool.statements = repository_statements();
  return std::make_unique<ConnectionPool>(std::move(pool));
}

SchemaStatus prepare_schema(ConnectionPool& pool, bool apply) {
  if (apply) {
    const auto applied = migrate(pool);
    for (int v : applied) spdlog::info("database: applied migration {}", v);
  }
  SchemaStatus status = schema_status(pool);
  if (!status.pending.empty()) {
    throw SchemaError("the database schema is at version " +
                      std::to_string(status.database_version) + ", this binary needs " +
                      std::to_string(status.binary_version) + ": run `forkcast db migrate`");
  }
  return status;
}

}  // namespace

DatabaseOptions database_options(const config::DatabaseConfig& config, std::string url) {
  DatabaseOptions options;
  options.url = std::move(url);
  options.pool_size = config.pool_size;
  options.checkout_timeout_ms = config.checkout_timeout_ms;
  options.group_commit_window_ms = config.group_commit_window_ms;
  return options;
}

ServerInfo server_info(ConnectionPool& pool) {
  return pool.internal().run([](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec_params1(R"sql(
SELECT current_setting('server_version'), current_setting('fsync'),
       current_setting('full_page_writes'), current_setting('synchronous_commit'))sql");
    return ServerInfo{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                      r[3].as<std::string>()};
  });
}

Database::Database(DatabaseOptions options)
    : pool_(make_pool(options)),
      schema_(prepare_schema(*pool_, options.migrate)),
      users_(*pool_),
      user_state_(*pool_),
      decisions_(*pool_),
      feedback_(*pool_),
      meal_log_(*pool_),
      models_(*pool_),
      training_runs_(*pool_),
      eval_reports_(*pool_),
      feedback_writer_(std::make_unique<FeedbackWriter>(
          *pool_,
          GroupCommitOptions{options.group_commit_window_ms, GroupCommitOptions{}.max_batch})) {}

Database::~Database() = default;

void Database::ping() {
  pool_->internal().run([](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec1("SELECT 1");
  });
}

}  // namespace forkcast::db
