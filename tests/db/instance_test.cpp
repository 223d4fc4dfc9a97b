// The local instance manager: initdb + start, a second start is a no-op, durability
// settings on, a taken port is a clear error, TCP with the generated password, and as root
// the server runs as the unprivileged service user.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <pqxx/pqxx>

#include "forkcast/db/database.hpp"
#include "forkcast/db/instance.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fdb::testing::make_temp_dir("forkcast-instance-test");
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fdb::InstanceOptions options_in(const fs::path& dir, int port) {
  fdb::InstanceOptions o;
  o.data_dir = dir / "pgdata";
  o.port = port;
  o.sync_initdb = false;
  return o;
}

// Stops the instance even when an assertion fails half-way.
struct Stopper {
  fdb::LocalInstance& instance;
  ~Stopper() {
    try {
      instance.stop(fdb::StopMode::immediate);
    } catch (...) {
    }
  }
};

uid_t uid_of_process(std::int64_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Uid:", 0) == 0) return static_cast<uid_t>(std::stoul(line.substr(4)));
  }
  return static_cast<uid_t>(-1);
}

}  // namespace

TEST(LocalInstance, StartsOnceReportsARunningInstanceAndStops) {
  TempDir tmp;
  fdb::LocalInstance pg(options_in(tmp.path, fdb::testing::free_loopback_port()));
  Stopper stopper{pg};
  EXPECT_FALSE(pg.status().initialized);
  EXPECT_FALSE(pg.status().running);

  const auto first = pg.start();
  EXPECT_FALSE(first.already_running);
  EXPECT_TRUE(first.initialized_now);
  EXPECT_TRUE(first.status.running);
  EXPECT_TRUE(first.status.accepting);
  EXPECT_GT(first.status.pid, 0);

  const auto second = pg.start();
  EXPECT_TRUE(second.already_running);
  EXPECT_EQ(second.status.pid, first.status.pid);

  fdb::ConnectionPool pool(fdb::testing::pool_options(pg.url(), 1));
  const auto info = fdb::server_info(pool);
  EXPECT_EQ(info.fsync, "on");
  EXPECT_EQ(info.full_page_writes, "on");
  EXPECT_EQ(info.synchronous_commit, "on");

  EXPECT_TRUE(pg.stop());
  EXPECT_FALSE(pg.status().running);
  EXPECT_FALSE(pg.stop()) << "stopping a stopped instance is a no-op";

  const auto again = pg.start();  // the same data directory, no initdb
  EXPECT_FALSE(again.initialized_now);
  EXPECT_TRUE(again.status.running);
}

TEST(LocalInstance, ATakenPortIsAClearErrorThatNamesTheSetting) {
  TempDir tmp;
  const int port = fdb::testing::free_loopback_port();
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(holder, 1), 0);

  fdb::LocalInstance pg(options_in(tmp.path, port));
  Stopper stopper{pg};
  try {
    pg.start();
    FAIL() << "started on a port another program listens on";
  } catch (const fdb::InstanceError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("port " + std::to_string(port)), std::string::npos) << message;
    EXPECT_NE(message.find("already in use"), std::string::npos) << message;
    EXPECT_NE(message.find("database.port"), std::string::npos) << message;
  }
  EXPECT_FALSE(pg.status().running);
  close(holder);
}

TEST(LocalInstance, TcpUrlUsesTheGeneratedPasswordOnLoopback) {
  fdb::testing::TestInstance pg(/*migrate=*/false);
  const std::string tcp = pg.instance().tcp_url();
  EXPECT_NE(tcp.find("@127.0.0.1:"), std::string::npos);
  pqxx::connection ok(tcp);
  EXPECT_TRUE(ok.is_open());

  std::string wrong = tcp;
  wrong.replace(wrong.find(':', 14) + 1, 4, "nope");
  EXPECT_THROW(pqxx::connection bad(wrong), pqxx::broken_connection);
  EXPECT_EQ(fdb::redact_url(tcp).find(tcp.substr(tcp.find(':', 14) + 1, 8)), std::string::npos);
}

// Review, 2026-12-01: the redaction scanned for "password=" up to a space or '&', so a
// quoted password with spaces, "password = x" and a URI libpq cannot parse leaked.
TEST(RedactUrl, NoFormOfPasswordIsShown) {
  EXPECT_EQ(fdb::redact_url("host=db port=5433 dbname=meals user=fc password='correct horse battery'"),
            "user=fc password=*** dbname=meals host=db port=5433");  // libpq's keyword order
  EXPECT_EQ(fdb::redact_url("host=db password = s3cret"), "password=*** host=db");
  EXPECT_EQ(fdb::redact_url("postgresql://fc:p%40ss@db:5433/meals?sslmode=disable"),
            "user=fc password=*** dbname=meals host=db port=5433 sslmode=disable");
  EXPECT_EQ(fdb::redact_url("postgresql://fc:50%off@db/meals"), "(a connection string libpq cannot parse)");
  EXPECT_FALSE(fdb::conninfo_parses("postgresql://fc:50%off@db/meals"));
  EXPECT_TRUE(fdb::conninfo_parses("host=/tmp/x dbname=y"));
  EXPECT_EQ(fdb::redact_url("host='/tmp/a dir' dbname=it\\'s"), "dbname='it\\'s' host='/tmp/a dir'");
}

TEST(LocalInstance, RefusesADirectoryThatIsNeitherEmptyNorADataDirectory) {
  TempDir tmp;
  fs::create_directories(tmp.path / "pgdata");
  std::ofstream(tmp.path / "pgdata" / "notes.txt") << "mine";
  fdb::LocalInstance pg(options_in(tmp.path, fdb::testing::free_loopback_port()));
  EXPECT_THROW(pg.start(), fdb::InstanceError);
  EXPECT_TRUE(fs::exists(tmp.path / "pgdata" / "notes.txt"));
}

TEST(LocalInstance, AsRootTheServerRunsAsTheServiceUser) {
  if (geteuid() != 0)
    GTEST_SKIP() << "only meaningful as root (the server then runs as 'forkcast')";
  const passwd* service = getpwnam(fdb::kServiceUser);
  ASSERT_NE(service, nullptr) << "scripts/setup.sh creates the 'forkcast' system user";
  TempDir tmp;
  fdb::LocalInstance pg(options_in(tmp.path, fdb::testing::free_loopback_port()));
  Stopper stopper{pg};
  const auto started = pg.start();
  EXPECT_EQ(uid_of_process(started.status.pid), service->pw_uid);
  struct stat st {};
  ASSERT_EQ(stat((tmp.path / "pgdata").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, service->pw_uid);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
}

TEST(LocalInstance, AsRootADataDirectoryTheServiceUserCannotReachIsNamed) {
  if (geteuid() != 0) GTEST_SKIP() << "only meaningful as root";
  TempDir tmp;
  const fs::path closed = tmp.path / "closed";
  fs::create_directories(closed);
  chmod(closed.c_str(), 0700);
  fdb::LocalInstance pg(options_in(closed, fdb::testing::free_loopback_port()));
  try {
    pg.start();
    FAIL();
  } catch (const fdb::InstanceError& e) {
    EXPECT_NE(std::string(e.what()).find("chmod o+x " + closed.string()), std::string::npos)
        << e.what();
  }
}

TEST(LocalInstance, RejectsBadOptionsNamingTheKey) {
  fdb::InstanceOptions o;
  o.port = 70000;
  try {
    fdb::LocalInstance pg(o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("database.port"), std::string::npos);
  }
  o = fdb::InstanceOptions{};
  o.data_dir = "/tmp/" + std::string(120, 'x');
  EXPECT_THROW(fdb::LocalInstance pg(o), std::invalid_argument);
  o = fdb::InstanceOptions{};
  o.bin_dir = "/nonexistent";
  EXPECT_THROW(fdb::LocalInstance pg(o), fdb::InstanceError);
}
