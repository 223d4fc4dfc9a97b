// `forkcast db ...` end to end: the real binary against its own throwaway data directory
// and port (FORKCAST_DATABASE__DATA_DIR / __PORT), as a new developer would use it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "forkcast/db/migrations.hpp"
#include "pg_test_support.hpp"
#include "run_command.hpp"

namespace {

using Run = forkcast::testing::CommandOutput;

Run run(const std::string& args, const std::string& env) {
  return forkcast::testing::run_command(env + " " FORKCAST_EXE " " + args);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct Sandbox {
  std::filesystem::path dir = forkcast::db::testing::make_temp_dir("forkcast-db-cli-test");
  int port = forkcast::db::testing::free_loopback_port();
  std::string env = "FORKCAST_DATABASE__DATA_DIR=" + (dir / "pgdata").string() +
                    " FORKCAST_DATABASE__PORT=" + std::to_string(port) + " FORKCAST_DATABASE__URL=";
  ~Sandbox() {
    run("db stop --immediate", env);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

TEST(DbCli, StartStatusUrlStopAsANewDeveloperWould) {
  Sandbox box;
  auto r = run("db status", box.env);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "database: stopped")) << r.output;

  r = run("db start", box.env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "database started")) << r.output;
  EXPECT_TRUE(contains(r.output, "port:     " + std::to_string(box.port))) << r.output;
  const std::string schema = "schema: version " + std::to_string(forkcast::db::embedded_migrations().back().version);
  EXPECT_TRUE(contains(r.output, schema)) << r.output;

  r = run("db start", box.env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "already running")) << r.output;
  EXPECT_TRUE(contains(r.output, "up to date")) << r.output;

  r = run("db status", box.env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "accepting connections")) << r.output;
  EXPECT_TRUE(contains(r.output, "fsync=on full_page_writes=on synchronous_commit=on")) << r.output;

  r = run("db psql-url", box.env);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.output.starts_with("postgresql://forkcast@/forkcast?host=")) << r.output;
  r = run("db psql-url --tcp", box.env);
  EXPECT_TRUE(contains(r.output, "@127.0.0.1:" + std::to_string(box.port) + "/forkcast"))
      << r.output;

  r = run("db migrate", box.env);
  EXPECT_EQ(r.exit_code, 0) << r.output;

  r = run("db stop", box.env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "database stopped")) << r.output;
  r = run("db stop", box.env);
  EXPECT_TRUE(contains(r.output, "was not running")) << r.output;
  r = run("db migrate", box.env);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "forkcast db start")) << r.output;
}

TEST(DbCli, ATakenPortFailsWithAClearMessage) {
  Sandbox box;
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(box.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  const auto r = run("db start", box.env);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "already in use")) << r.output;
  EXPECT_TRUE(contains(r.output, "FORKCAST_DATABASE__PORT")) << r.output;
  close(holder);
}

TEST(DbCli, AnExternalServerUsesTheSamePathAndIsNeverStartedOrStopped) {
  Sandbox box;
  const int nothing = forkcast::db::testing::free_loopback_port();
  const std::string url =
      "--database-url postgresql://forkcast:secret@127.0.0.1:" + std::to_string(nothing) + "/x";
  auto r = run("db status " + url, box.env);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "unreachable")) << r.output;
  EXPECT_FALSE(contains(r.output, "secret")) << r.output;
  r = run("db stop " + url, box.env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "nothing to stop")) << r.output;
  r = run("db start " + url, box.env);
  EXPECT_EQ(r.exit_code, 1) << r.output;  // starts nothing, and the server is not there to migrate
}
