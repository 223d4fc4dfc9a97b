// The registry watch (db/registry_watch.hpp): a promotion made on another connection is
// reported through LISTEN/NOTIFY long before the periodic check; a notification missed
// while the watch was disconnected is caught on reconnect; a callback that refuses a
// version is asked again; a database restart is survived. Latencies are bounded
// generously (the promise is "within about a second", checked at 2 s).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <functional>
#include <iostream>
#include <optional>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "connection_pool.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/db/registry_watch.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::TestInstance;
using fdb::testing::unique_suffix;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// What the watch reported, in order, with when.
class Reports {
 public:
  fdb::RegistryWatch::OnProduction callback() {
    return [this](const std::string& version) {
      std::lock_guard lock(mutex_);
      versions_.push_back(version);
      times_.push_back(Clock::now());
      return accept_.load();
    };
  }
  void set_accept(bool value) { accept_ = value; }
  std::vector<std::string> versions() const {
    std::lock_guard lock(mutex_);
    return versions_;
  }
  // Waits until `version` has been reported `times` times in all; when it was, or nullopt.
  std::optional<Clock::time_point> wait_for(const std::string& version, int times = 1,
                                            std::chrono::milliseconds timeout = 5s) const {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(mutex_);
        int seen = 0;
        for (std::size_t i = 0; i < versions_.size(); ++i) {
          if (versions_[i] == version && ++seen == times) return times_[i];
        }
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> versions_;
  std::vector<Clock::time_point> times_;
  std::atomic<bool> accept_{true};
};

fdb::NewModel model_named(const std::string& version) {
  fdb::NewModel m;
  m.version = version;
  m.kind = "dqn";
  m.sha256 = std::string(64, 'a');
  m.path = "models/" + version + ".safetensors";
  return m;
}

std::string register_model(fdb::Database& database, const std::string& prefix) {
  const std::string version = prefix + "-" + unique_suffix();
  database.models().register_model(model_named(version));
  return version;
}

fdb::RegistryWatchOptions watch_options(const std::string& url, int check_interval_ms,
                                        const std::string& application_name = "forkcast-registry-watch") {
  fdb::RegistryWatchOptions o;
  o.url = url;
  o.check_interval_ms = check_interval_ms;
  o.reconnect_initial_ms = 20;
  o.reconnect_max_ms = 200;
  o.application_name = application_name;
  return o;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

TEST(RegistryWatch, APromotionElsewhereIsReportedByNotificationNotByTheTimer) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  const std::string first = register_model(database, "first");
  database.models().promote(first);

  Reports reports;
  // A check interval of an hour: only a notification can explain a quick report.
  fdb::RegistryWatch watch(watch_options(pg.url(), 3'600'000), first, reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch.stats().connected && watch.stats().checks >= 1; }));
  EXPECT_TRUE(reports.versions().empty()) << "the version already served was reported again";

  std::vector<double> latencies_ms;
  for (int i = 0; i < 5; ++i) {
    const std::string next = register_model(database, "next" + std::to_string(i));
    const auto promoted = Clock::now();
    database.models().promote(next);
    const auto reported = reports.wait_for(next, 1, 2s);
    ASSERT_TRUE(reported) << next << " was not reported within 2 s";
    latencies_ms.push_back(ms_between(promoted, *reported));
  }
  for (double ms : latencies_ms) EXPECT_LT(ms, 2'000.0);
  const auto stats = watch.stats();
  EXPECT_GE(stats.notifications, 5U);
  EXPECT_EQ(stats.reported, 5U);
  EXPECT_EQ(stats.rejected, 0U);
  EXPECT_EQ(stats.connects, 1U);
  std::cout << "promotion -> report latency (ms):";
  for (double ms : latencies_ms) std::cout << ' ' << ms;
  std::cout << '\n';
}

TEST(RegistryWatch, ReportsOnlyTheLatestOfPromotionsInABurstAndNothingForRetirement) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  const std::string a = register_model(database, "a");
  database.models().promote(a);
  Reports reports;
  fdb::RegistryWatch watch(watch_options(pg.url(), 50), a, reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch.stats().checks >= 1; }));

  // Promoting the serving version again notifies, but nothing changed: no report.
  database.models().promote(a);
  ASSERT_TRUE(wait_until([&] { return watch.stats().notifications >= 1; }));
  // Retiring production leaves no production model: the watch keeps what it has.
  database.models().retire(a);
  const auto checks = watch.stats().checks;
  ASSERT_TRUE(wait_until([&] { return watch.stats().checks >= checks + 2; }));
  EXPECT_TRUE(reports.versions().empty());

  const std::string b = register_model(database, "b");
  database.models().promote(b);
  ASSERT_TRUE(reports.wait_for(b));
  // Reported once, however many checks and notifications follow.
  const auto after = watch.stats().checks;
  ASSERT_TRUE(wait_until([&] { return watch.stats().checks >= after + 3; }));
  EXPECT_EQ(reports.versions(), std::vector<std::string>{b});
}

TEST(RegistryWatch, APromotionMadeWhileDisconnectedIsFoundOnReconnect) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  const std::string first = register_model(database, "first");
  database.models().promote(first);
  const std::string name = "forkcast-watch-" + unique_suffix();
  Reports reports;
  fdb::RegistryWatch watch(watch_options(pg.url(), 3'600'000, name), first, reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch.stats().connected; }));

  // Stop the server: the watch loses its connection; promote while it is down (no listener
  // can hear that notification); start the server. Only the check on reconnect can find it.
  pg.instance().stop(fdb::StopMode::fast);
  ASSERT_TRUE(wait_until([&] { return !watch.stats().connected; }));
  pg.instance().start();
  // Promote on a connection of our own before the watch is back (its backoff is <= 200 ms,
  // so it may already be back: then the notification is the route; both must work).
  const std::string second = register_model(database, "second");
  database.models().promote(second);
  ASSERT_TRUE(reports.wait_for(second, 1, 5s)) << "not found after the restart";
  EXPECT_GE(watch.stats().connects, 2U);

  // A terminated backend (an operator, a proxy restart) is the same: reconnect, check.
  {
    pqxx::connection admin(pg.url());
    pqxx::nontransaction tx(admin);
    tx.exec_params("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1", name);
  }
  ASSERT_TRUE(wait_until([&] { return watch.stats().connects >= 3 && watch.stats().connected; }));
  const std::string third = register_model(database, "third");
  database.models().promote(third);
  EXPECT_TRUE(reports.wait_for(third, 1, 2s));
}

TEST(RegistryWatch, ReleasingTheConnectionLetsASmartShutdownCompleteAndTheWatchComesBack) {
  TestInstance pg;
  const std::string first = [&] {
    fdb::Database database(fdb::DatabaseOptions{pg.url(), 1, 2'000, 2, true});
    const std::string v = register_model(database, "first");
    database.models().promote(v);
    return v;
  }();  // no pool left open: the watch is the only client
  Reports reports;
  fdb::RegistryWatch watch(watch_options(pg.url(), 200), first, reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch.stats().connected; }));
  const auto status = pg.instance().status();
  ASSERT_TRUE(status.running);
  ASSERT_EQ(::kill(status.pid, SIGTERM), 0);  // a smart shutdown: it waits for its clients
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(pg.instance().status().running) << "the shutdown did not wait for the watch: the test proves nothing";
  watch.release_connection();
  EXPECT_TRUE(wait_until([&] { return !pg.instance().status().running; }, 10s))
      << "the smart shutdown did not complete after the watch let go";
  EXPECT_EQ(watch.stats().releases, 1U);
  pg.instance().start();
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 1, 2'000, 2, true});
  const std::string second = register_model(database, "second");
  database.models().promote(second);
  EXPECT_TRUE(reports.wait_for(second, 1, 5s)) << "the watch did not come back after the restart";
}

TEST(RegistryWatch, TheTimerFindsAPromotionWhoseNotificationNeverCame) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  const std::string first = register_model(database, "first");
  database.models().promote(first);
  Reports reports;
  fdb::RegistryWatch watch(watch_options(pg.url(), 200), first, reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch.stats().connected; }));
  // A promotion with the announcing trigger off (as by a client of an older schema).
  const std::string quiet = register_model(database, "quiet");
  {
    pqxx::connection admin(pg.url());
    pqxx::work tx(admin);
    tx.exec("ALTER TABLE models DISABLE TRIGGER models_announce_promotion");
    tx.exec_params("UPDATE models SET status = 'retired' WHERE status = 'production'");
    tx.exec_params("UPDATE models SET status = 'production', promoted_at = now() WHERE version = $1", quiet);
    tx.exec("ALTER TABLE models ENABLE TRIGGER models_announce_promotion");
    tx.commit();
  }
  const auto found = reports.wait_for(quiet, 1, 2s);
  ASSERT_TRUE(found) << "the periodic check did not find the promotion";
  EXPECT_EQ(watch.stats().notifications, 0U);
}

TEST(RegistryWatch, AVersionTheOwnerRefusedIsOfferedAgainUntilTaken) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  Reports reports;
  reports.set_accept(false);
  // No production model yet and nothing known: the first promotion is the first report.
  fdb::RegistryWatch watch(watch_options(pg.url(), 50), "", reports.callback());
  const std::string v = register_model(database, "v");
  database.models().promote(v);
  ASSERT_TRUE(reports.wait_for(v, 3, 3s)) << "a refused version was not offered again";
  reports.set_accept(true);
  const auto stats_before = watch.stats();
  EXPECT_GE(stats_before.rejected, 3U);
  // Once taken, never again.
  ASSERT_TRUE(wait_until([&] {
    const auto s = watch.stats();
    return s.reported - s.rejected == 1;
  }));
  const auto reported = watch.stats().reported;
  const auto checks = watch.stats().checks;
  ASSERT_TRUE(wait_until([&] { return watch.stats().checks >= checks + 3; }));
  EXPECT_EQ(watch.stats().reported, reported);
}

TEST(RegistryWatch, ACallbackThatThrowsCountsAsRefusedAndTheWatchGoesOn) {
  TestInstance pg;
  fdb::Database database(fdb::DatabaseOptions{pg.url(), 2, 2'000, 2, true});
  std::atomic<int> calls{0};
  fdb::RegistryWatch watch(watch_options(pg.url(), 50), "", [&](const std::string&) -> bool {
    if (++calls < 3) throw std::runtime_error("cannot load");
    return true;
  });
  const std::string v = register_model(database, "v");
  database.models().promote(v);
  ASSERT_TRUE(wait_until([&] { return calls.load() >= 3; }));
  ASSERT_TRUE(wait_until([&] { return watch.stats().reported == 3; }));
  EXPECT_EQ(watch.stats().rejected, 2U);
}

TEST(RegistryWatch, ADatabaseThatIsNotThereIsRetriedNotThrown) {
  const int port = fdb::testing::free_loopback_port();
  const std::string url = "postgresql://forkcast@127.0.0.1:" + std::to_string(port) + "/forkcast";
  Reports reports;
  fdb::RegistryWatch watch(watch_options(url, 50), "", reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch.stats().connect_failures >= 3; }));
  EXPECT_FALSE(watch.stats().connected);
  EXPECT_TRUE(reports.versions().empty());
}  // the destructor stops a thread that is backing off

TEST(RegistryWatch, StopsQuickly) {
  TestInstance pg;
  Reports reports;
  auto watch = std::make_unique<fdb::RegistryWatch>(watch_options(pg.url(), 3'600'000), "", reports.callback());
  ASSERT_TRUE(wait_until([&] { return watch->stats().connected; }));
  const auto start = Clock::now();
  watch.reset();
  EXPECT_LT(ms_between(start, Clock::now()), 1'000.0);
}

TEST(RegistryWatch, RejectsBadOptionsNamingThem) {
  const auto callback = [](const std::string&) { return true; };
  auto expect_error = [&](fdb::RegistryWatchOptions o, const std::string& field) {
    try {
      fdb::RegistryWatch watch(std::move(o), "", callback);
      ADD_FAILURE() << "accepted bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  fdb::RegistryWatchOptions ok = watch_options("postgresql://127.0.0.1:1/x", 1'000);
  auto o = ok;
  o.url.clear();
  expect_error(o, "url");
  o = ok;
  o.check_interval_ms = 5;
  expect_error(o, "check_interval_ms");
  o = ok;
  o.reconnect_initial_ms = 0;
  expect_error(o, "reconnect_initial_ms");
  o = ok;
  o.reconnect_max_ms = 10;  // below reconnect_initial_ms (20)
  expect_error(o, "reconnect_max_ms");
  try {
    fdb::RegistryWatch watch(ok, "", nullptr);
    ADD_FAILURE() << "accepted no callback";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("on_production"), std::string::npos) << e.what();
  }
}
