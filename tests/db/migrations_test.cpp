// Migrations: embedded, applied once each in one transaction, recorded, and a database
// whose schema is newer than the binary (or whose applied migration changed) is refused.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "forkcast/db/database.hpp"
#include "forkcast/db/migrations.hpp"
#include "forkcast/db/repositories.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::TestInstance;

namespace {

int count_rows(const std::string& url, const std::string& table_exists_query) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  return tx.exec_params1(table_exists_query)[0].as<int>();
}

}  // namespace

TEST(Migrations, EmbeddedFilesAreNumberedAndHashed) {
  const auto& all = fdb::embedded_migrations();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().version, 1);
  EXPECT_EQ(all.front().name, "initial");
  EXPECT_EQ(all.front().sha256.size(), 64U);
  EXPECT_NE(all.front().sql.find("CREATE TABLE feedback"), std::string::npos);
}

TEST(Migrations, FreshDatabaseIsMigratedOnceAndRecorded) {
  TestInstance pg(/*migrate=*/false);
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1));
  EXPECT_EQ(fdb::schema_status(pool).database_version, 0);
  EXPECT_EQ(fdb::schema_status(pool).pending.size(), fdb::embedded_migrations().size());

  const auto applied = fdb::migrate(pool);
  EXPECT_EQ(applied.size(), fdb::embedded_migrations().size());
  EXPECT_TRUE(fdb::migrate(pool).empty()) << "a second run must find nothing to do";
  const auto status = fdb::schema_status(pool);
  EXPECT_EQ(status.database_version, status.binary_version);
  EXPECT_TRUE(status.pending.empty());
  EXPECT_EQ(count_rows(pg.url(), "SELECT count(*)::int FROM schema_migrations"),
            static_cast<int>(fdb::embedded_migrations().size()));
}

TEST(Migrations, RefusesADatabaseWhoseSchemaIsNewerThanTheBinary) {
  TestInstance pg;
  {
    pqxx::connection c(pg.url());
    pqxx::work tx(c);
    tx.exec_params("INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                   9999, "from_the_future", std::string(64, 'f'));
    tx.commit();
  }
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1));
  try {
    fdb::migrate(pool);
    FAIL() << "migrated a database that a newer binary had migrated";
  } catch (const fdb::SchemaError& e) {
    EXPECT_NE(std::string(e.what()).find("9999_from_the_future"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), "schema_mismatch");
  }
  EXPECT_THROW(fdb::schema_status(pool), fdb::SchemaError);
  EXPECT_THROW(fdb::Database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true}), fdb::SchemaError);
}

TEST(Migrations, RefusesAnAppliedMigrationWhoseFileChanged) {
  TestInstance pg;
  {
    pqxx::connection c(pg.url());
    pqxx::work tx(c);
    tx.exec_params("UPDATE schema_migrations SET sha256 = $1 WHERE version = 1",
                   std::string(64, '0'));
    tx.commit();
  }
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1));
  EXPECT_THROW(fdb::migrate(pool), fdb::SchemaError);
}

TEST(Migrations, AFailingMigrationLeavesNoTrace) {
  TestInstance pg(/*migrate=*/false);
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1));
  const std::vector<fdb::Migration> migrations = {
      {1, "good", "CREATE TABLE a (x int);", std::string(64, '1')},
      {2, "bad", "CREATE TABLE b (x int); INSERT INTO b VALUES (1); SELECT no_such_function();",
       std::string(64, '2')},
  };
  try {
    fdb::migrate(pool, migrations);
    FAIL();
  } catch (const fdb::DatabaseError& e) {
    EXPECT_NE(std::string(e.what()).find("0002_bad"), std::string::npos) << e.what();
  }
  EXPECT_EQ(count_rows(pg.url(), "SELECT count(*)::int FROM schema_migrations"), 1);
  EXPECT_EQ(count_rows(pg.url(), "SELECT (to_regclass('a') IS NOT NULL)::int"), 1);
  EXPECT_EQ(count_rows(pg.url(), "SELECT (to_regclass('b') IS NOT NULL)::int"), 0)
      << "the failed migration's first statement was kept";
  EXPECT_EQ(fdb::schema_status(pool, migrations).pending, std::vector<int>{2});
}

TEST(Migrations, DatabaseWithoutMigrateRefusesAnOldSchema) {
  TestInstance pg(/*migrate=*/false);
  EXPECT_THROW(fdb::Database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, /*migrate=*/false}),
               fdb::SchemaError);
  fdb::Database migrated(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  EXPECT_EQ(migrated.schema().database_version, migrated.schema().binary_version);
}

// 0002 turns the decisions' jsonb lists into typed arrays: a decision stored under 0001
// must read back the same through the repository afterwards.
TEST(Migrations, DecisionsStoredAsJsonbSurviveTheMoveToTypedArrays) {
  TestInstance pg(/*migrate=*/false);
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1));
  const auto& all = fdb::embedded_migrations();
  ASSERT_GE(all.size(), 2U);
  fdb::migrate(pool, std::span<const fdb::Migration>(all.data(), 1));
  std::string event_id;
  {
    pqxx::connection c(pg.url());
    pqxx::work tx(c);
    const auto user = tx.exec_params1(
        "INSERT INTO users (profile, token_sha256) VALUES ('{}', repeat('a', 64)) RETURNING id::text")[0].as<std::string>();
    event_id = tx.exec_params1(
        "INSERT INTO decisions (user_id, slot, model_version, policy, epsilon, candidates, scores, probabilities, "
        "chosen, ranked, state_features, candidate_features, candidate_feature_dim) VALUES ($1::uuid, 'lunch', 'v1', "
        "'epsilon_greedy', 0.1, '[\"a\", \"b\"]', '[1.5, -0.25]', '[0.95, 0.05]', 'a', '[\"a\"]', '[0.5, 2]', "
        "'[1, 2, 3, 4]', 2) RETURNING event_id::text",
        user)[0].as<std::string>();
    tx.commit();
  }
  EXPECT_EQ(fdb::migrate(pool, std::span<const fdb::Migration>(all.data(), 2)), std::vector<int>{2});
  fdb::ConnectionPool migrated(fdb::testing::pool_options(pg.url(), 1));
  fdb::DecisionRepository decisions(migrated);
  const auto d = decisions.find(event_id);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->logged.candidates, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(d->logged.scores, (std::vector<double>{1.5, -0.25}));
  EXPECT_EQ(d->logged.probabilities, (std::vector<double>{0.95, 0.05}));
  EXPECT_EQ(d->logged.ranked, (std::vector<std::string>{"a"}));
  EXPECT_EQ(d->logged.state_features, (std::vector<double>{0.5, 2}));
  EXPECT_EQ(d->logged.candidate_features, (std::vector<double>{1, 2, 3, 4}));
  // The new shape checks hold: a chosen meal outside the candidates is refused.
  pqxx::connection c(pg.url());
  pqxx::work tx(c);
  EXPECT_THROW(tx.exec_params("UPDATE decisions SET chosen = 'zzz' WHERE event_id = $1::uuid", event_id),
               pqxx::check_violation);
}
