// The connection pool: bounded blocking checkout, replacement of broken connections,
// fail-fast with DatabaseUnavailable while the database is down, recovery without a
// process restart. Time bounds are generous (an outage must not hang, not be fast to the
// millisecond); speed is measured in bench/, not here.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <future>
#include <thread>

#include "connection_pool.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/db/supervisor.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::TestInstance;
using fdb::testing::unique_suffix;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

fdb::NewUser new_user() { return {json{{"age", 30}}, fdb::token_sha256("t-" + unique_suffix())}; }

}  // namespace

TEST(ConnectionPool, CheckoutWaitsForAFreeConnectionThenTimesOut) {
  TestInstance pg;
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1, 300));
  auto held = std::make_optional(pool.internal().checkout());

  const auto start = Clock::now();
  try {
    pool.internal().checkout();
    FAIL() << "a second checkout from a pool of one succeeded";
  } catch (const fdb::DatabaseUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("no database connection became free"), std::string::npos);
  }
  const double waited = seconds_since(start);
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 5.0);
  EXPECT_EQ(pool.stats().checkout_timeouts, 1U);

  // A waiting checkout gets the connection as soon as it is returned.
  fdb::ConnectionPool patient(fdb::testing::pool_options(pg.url(), 1, 10'000));
  auto first = std::make_optional(patient.internal().checkout());
  auto waiter =
      std::async(std::launch::async, [&] { return patient.internal().checkout().connection().is_open(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  first.reset();
  EXPECT_TRUE(waiter.get());
}

TEST(ConnectionPool, RecoversAfterADatabaseRestartWithoutAFailedCall) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 3, 2'000, 2, true});
  const auto user =
      database.users().create(new_user());  // connections now hold prepared statements

  pg.instance().stop(fdb::StopMode::fast);
  pg.instance().start();

  // Every pooled connection is dead; checkout notices and reconnects, statements re-prepare.
  const auto again = database.users().find(user.id);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, user.id);
  database.users().create(new_user());
  EXPECT_GE(database.pool().stats().replaced, 1U);
}

TEST(ConnectionPool, FailsFastWhileTheDatabaseIsDownAndRecoversWhenItIsBack) {
  TestInstance pg;
  constexpr int kTimeoutMs = 1'000;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, kTimeoutMs, 2, true});
  const auto user = database.users().create(new_user());
  pg.instance().stop(fdb::StopMode::immediate);

  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    try {
      database.users().find(user.id);
      FAIL() << "a query succeeded with the database stopped";
    } catch (const fdb::DatabaseUnavailable& e) {
      EXPECT_EQ(e.code(), "database_unavailable");
    }
    EXPECT_LT(seconds_since(start), kTimeoutMs / 1000.0 + 2.0)
        << "call " << i << " did not fail fast";
  }
  // Writes through the group-commit writer fail the same way, never hang.
  fdb::NewFeedback f;
  f.event_id = "00000000-0000-0000-0000-000000000000";
  f.meal_id = "x";
  f.idempotency_key = "k-" + unique_suffix();
  const auto start = Clock::now();
  EXPECT_THROW(database.feedback_writer().submit(f), fdb::DatabaseUnavailable);
  EXPECT_LT(seconds_since(start), kTimeoutMs / 1000.0 + 2.0);

  pg.instance().start();
  EXPECT_EQ(database.users().find(user.id)->id, user.id);  // same process, same pool
  EXPECT_GE(database.pool().stats().connect_failures, 1U);
}

TEST(ConnectionPool, AConnectionKilledByTheServerIsReplaced) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 1, 2'000, 2, true});
  const auto user = database.users().create(new_user());
  const int backend = database.pool().internal().run([](pqxx::connection& c) { return c.backendpid(); });
  {
    pqxx::connection admin(pg.url());
    pqxx::nontransaction tx(admin);
    // With a timeout it waits until the backend has exited, so its goodbye has been sent.
    tx.exec_params("SELECT pg_terminate_backend($1, 10000)", backend);
  }
  // The server said goodbye on the idle connection; the next checkout replaces it.
  EXPECT_EQ(database.users().find(user.id)->id, user.id);
  EXPECT_NE(database.pool().internal().run([](pqxx::connection& c) { return c.backendpid(); }), backend);
}

TEST(ConnectionPool, ServerErrorsMapToTheErrorThatSaysWhatToDo) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 1, 2'000, 2, true});
  auto raise = [&](const char* sqlstate) {
    database.pool().internal().run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      tx.exec(std::string("DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '") + sqlstate + "'; END $$");
      return 0;
    });
  };
  // A full disk: retryable, but named apart (the service answers 503 storage_full).
  try {
    raise("53100");
    FAIL() << "no exception";
  } catch (const fdb::StorageFull& e) {
    EXPECT_EQ(e.code(), "storage_full");
    EXPECT_NE(std::string(e.what()).find("disk is full"), std::string::npos) << e.what();
  }
  // Out of memory (class 53, not the disk) is plain unavailability; a deadlock too.
  for (const char* state : {"53200", "40P01"}) {
    try {
      raise(state);
      FAIL() << state << ": no exception";
    } catch (const fdb::StorageFull&) {
      FAIL() << state << " taken for a full disk";
    } catch (const fdb::DatabaseUnavailable& e) {
      EXPECT_EQ(e.code(), "database_unavailable") << state;
    }
  }
  // The connection stays usable after each.
  EXPECT_EQ(database.pool().internal().run([](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT 7")[0].as<int>();
  }),
            7);
}

TEST(ConnectionPool, RejectsBadOptionsNamingThem) {
  EXPECT_THROW(fdb::ConnectionPool(fdb::PoolOptions{"", 1, 100, {}, ""}), std::invalid_argument);
  try {
    fdb::ConnectionPool(fdb::PoolOptions{"postgresql:///x", 0, 100, {}, ""});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("database.pool_size"), std::string::npos);
  }
}

TEST(ConnectionPool, UnreachableServerIsUnavailableAndThePasswordIsNotPrinted) {
  const int port = fdb::testing::free_loopback_port();  // nothing listens there
  fdb::ConnectionPool pool(fdb::PoolOptions{
      "postgresql://forkcast:hunter2@127.0.0.1:" + std::to_string(port) + "/forkcast",
      1,
      1'000,
      {},
      ""});
  const auto start = Clock::now();
  try {
    pool.internal().checkout();
    FAIL();
  } catch (const fdb::DatabaseUnavailable& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 3.0);
}

// release_connections (for a smart shutdown of the server): idle connections close at once,
// a busy one when it is given back, and the next checkout opens a fresh one.
TEST(ConnectionPool, ReleaseClosesIdleConnectionsNowAndBusyOnesOnReturn) {
  TestInstance pg;
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 3, 2'000));
  {
    auto a = pool.internal().checkout();
    auto b = pool.internal().checkout();
  }
  ASSERT_EQ(pool.stats().open, 2);
  auto busy = std::make_optional(pool.internal().checkout());
  pool.release_connections();
  EXPECT_EQ(pool.stats().open, 1);  // the idle one is closed; the busy one is still in use
  EXPECT_TRUE(busy->connection().is_open());
  busy.reset();
  EXPECT_EQ(pool.stats().open, 0);
  const auto connects = pool.stats().connects;
  EXPECT_TRUE(pool.internal().checkout().connection().is_open());
  EXPECT_EQ(pool.stats().connects, connects + 1);
}

// The supervisor (db/supervisor.hpp) starts a killed instance again and reports it.
TEST(InstanceSupervisor, StartsAKilledInstanceAgain) {
  TestInstance pg;
  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 2, 2'000));
  std::atomic<int> restarts{0};
  fdb::SupervisorOptions options;
  options.check_interval_ms = 100;
  options.on_restart = [&] { ++restarts; };
  fdb::InstanceSupervisor supervisor(pg.instance(), pool, options);
  const auto before = pg.instance().status();
  ASSERT_TRUE(before.running);
  ASSERT_TRUE(pg.instance().stop(fdb::StopMode::immediate));  // as a crash leaves it
  const auto start = Clock::now();
  while (restarts.load() == 0 && seconds_since(start) < 60) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(restarts.load(), 1);
  EXPECT_EQ(supervisor.stats().restarts, 1U);
  EXPECT_TRUE(pg.instance().status().accepting);
  EXPECT_TRUE(pool.internal().checkout().connection().is_open());  // the pool reconnects by itself
  fdb::SupervisorOptions bad;
  bad.check_interval_ms = 0;
  EXPECT_THROW(fdb::InstanceSupervisor(pg.instance(), pool, bad), std::invalid_argument);
}
