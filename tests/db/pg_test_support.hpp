// Test support for tests/db: every test process gets its own throwaway PostgreSQL, started
// and stopped by the db/ instance manager itself (a fresh data directory under /tmp, a free
// loopback port), so the tests need no server installed by hand and never touch one.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "forkcast/db/database.hpp"
#include "forkcast/db/instance.hpp"
#include "forkcast/db/pool.hpp"

namespace forkcast::db::testing {

// A free TCP port on 127.0.0.1 (bound to port 0 and released).
int free_loopback_port();

// A new empty directory under /tmp, mode 0755 so that the PostgreSQL service user can pass
// through when the tests run as root. Removed by the caller.
std::filesystem::path make_temp_dir(const std::string& prefix);

// A fresh, migrated instance in its own temp directory; stopped and deleted on destruction.
class TestInstance {
 public:
  explicit TestInstance(bool migrate = true);
  ~TestInstance();
  TestInstance(const TestInstance&) = delete;
  TestInstance& operator=(const TestInstance&) = delete;

  LocalInstance& instance() { return *instance_; }
  std::string url() const { return instance_->url(); }
  const std::filesystem::path& root() const { return root_; }
  int port() const { return port_; }

 private:
  std::filesystem::path root_;
  int port_ = 0;
  std::unique_ptr<LocalInstance> instance_;
};

// The instance shared by the tests of this process, started on first use and stopped when
// the test program ends.
TestInstance& shared_instance();

// A Database (pool, repositories, migrated schema) on the server at `url`, e.g.
// shared_instance().url().
std::unique_ptr<Database> open_database(const std::string& url, int pool_size = 4);

// Pool options for `url` with every repository statement.
PoolOptions pool_options(const std::string& url, int size = 4, int checkout_timeout_ms = 2'000);

// A unique suffix for names within this process ("p1234-7").
std::string unique_suffix();

}  // namespace forkcast::db::testing
