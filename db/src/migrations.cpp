#include "forkcast/db/migrations.hpp"

#include <algorithm>
#include <stdexcept>

#include "connection_pool.hpp"
#include "embedded_migrations.hpp"
#include "forkcast/db/errors.hpp"

namespace forkcast::db {
namespace {

// Bootstraps the bookkeeping table; every later change to the schema is a numbered file.
constexpr const char* kCreateMigrationsTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  sha256     text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";

// Any fixed number: the advisory lock key that serialises migrators.
constexpr std::int64_t kMigrationLockKey = 0x6d6967726174696f;  // "migratio"

struct Applied {
  int version = 0;
  std::string name;
  std::string sha256;
};

std::vector<Applied> read_applied(pqxx::transaction_base& tx) {
  std::vector<Applied> applied;
  if (!tx.exec_params1("SELECT to_regclass('schema_migrations') IS NOT NULL")[0].as<bool>())
    return applied;
  for (const auto& r :
       tx.exec_params("SELECT version, name, sha256 FROM schema_migrations ORDER BY version")) {
    applied.push_back({r[0].as<int>(), r[1].as<std::string>(), r[2].as<std::string>()});
  }
  return applied;
}

std::string label(int version, const std::string& name) {
  char number[16];
  std::snprintf(number, sizeof number, "%04d", version);
  return std::string(number) + "_" + name;
}

// Refuses a database this binary must not touch (header comment).
void check_applied(const std::vector<Applied>& applied, std::span<const Migration> migrations) {
  const int binary_version = migrations.empty() ? 0 : migrations.back().version;
  for (const auto& a : applied) {
    const auto known = std::find_if(migrations.begin(), migrations.end(),
                                    [&](const Migration& m) { return m.version == a.version; });
    if (known == migrations.end()) {
      throw SchemaError(
          "the database schema has migration " + label(a.version, a.name) +
          ", which this forkcast binary does not know (it knows up to version " +
          std::to_string(binary_version) +
          "): a newer forkcast migrated this database; run that version, or use another database");
    }
    if (known->sha256 != a.sha256) {
      throw SchemaError(
          "migration " + label(a.version, a.name) + " was applied with sha256 " + a.sha256 +
          " but this binary's file has " + known->sha256 +
          ": a released migration was edited; restore it and add a new migration instead");
    }
  }
}

SchemaStatus status_of(const std::vector<Applied>& applied, std::span<const Migration> migrations) {
  SchemaStatus s;
  s.binary_version = migrations.empty() ? 0 : migrations.back().version;
  for (const auto& a : applied) s.database_version = std::max(s.database_version, a.version);
  for (const auto& m : migrations) {
    const bool done = std::any_of(applied.begin(), applied.end(),
                                  [&](const Applied& a) { return a.version == m.version; });
    if (!done) s.pending.push_back(m.version);
  }
  return s;
}

void check_list(std::span<const Migration> migrations) {
  int previous = 0;
  for (const auto& m : migrations) {
    if (m.version <= previous) {
      throw std::invalid_argument("migrations: version " + std::to_string(m.version) +
                                  " does not increase (versions start at 1, strictly increasing)");
    }
    previous = m.version;
  }
}

bool means_disconnected(const std::string& state) {
  return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03";
}

}  // namespace

const std::vector<Migration>& embedded_migrations() {
  static const std::vector<Migration> all = [] {
    std::vector<Migration> out;
    for (const auto& f : detail::embedded_migration_files()) {
      out.push_back({f.version, f.name, std::string(reinterpret_cast<const char*>(f.bytes), f.size),
                     f.sha256});
    }
    return out;
  }();
  return all;
}

SchemaStatus schema_status(ConnectionPool& pool, std::span<const Migration> migrations) {
  check_list(migrations);
  return pool.internal().run([&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const auto applied = read_applied(tx);
    check_applied(applied, migrations);
    return status_of(applied, migrations);
  });
}

SchemaStatus schema_status(ConnectionPool& pool) {
  return schema_status(pool, embedded_migrations());
}

std::vector<int> migrate(ConnectionPool& pool, std::span<const Migration> migrations) {
  check_list(migrations);
  std::vector<int> applied_now;
  for (const auto& m : migrations) {
    pool.internal().run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      tx.exec0(kCreateMigrationsTable);
      // Read under the lock: a concurrent migrator may have applied this one meanwhile.
      const auto applied = read_applied(tx);
      check_applied(applied, migrations);
      if (std::any_of(applied.begin(), applied.end(),
                      [&](const Applied& a) { return a.version == m.version; })) {
        return;  // the transaction rolls back: nothing was written
      }
      try {
        tx.exec0(m.sql);
      } catch (const pqxx::sql_error& e) {
        if (means_disconnected(e.sqlstate())) throw;
        throw DatabaseError("migration " + label(m.version, m.name) +
                            " failed (nothing of it was applied): " + e.what());
      }
      tx.exec_params("INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                     m.version, m.name, m.sha256);
      tx.commit();
      applied_now.push_back(m.version);
    });
  }
  return applied_now;
}

std::vector<int> migrate(ConnectionPool& pool) { return migrate(pool, embedded_migrations()); }

}  // namespace forkcast::db
