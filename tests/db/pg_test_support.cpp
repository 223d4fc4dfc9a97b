#include "pg_test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spawn.h>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "forkcast/db/migrations.hpp"
#include "forkcast/db/repositories.hpp"

namespace forkcast::db::testing {
namespace {

std::unique_ptr<TestInstance>& shared_slot() {
  static std::unique_ptr<TestInstance> slot;
  return slot;
}

// Stops the shared instance after the last test of the process.
class SharedInstanceEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { shared_slot().reset(); }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new SharedInstanceEnvironment);

// initdb costs seconds on a loaded machine and every test process needs a cluster, so the
// first process builds one (initdb, start, create the database, clean stop) into the build
// tree and the others copy it: a copy is a tenth of the time. Keyed by the PostgreSQL
// binaries, so a new server version gets a new template. A file lock serialises builders.
std::filesystem::path template_cluster(const std::filesystem::path& bin_dir) {
  namespace fs = std::filesystem;
  const std::string key =
      std::to_string(std::hash<std::string>{}(bin_dir.string() + "|template-1"));
  const fs::path root = fs::path(FORKCAST_BINARY_DIR) / "tests" / "db";
  const fs::path ready = root / ("pg-template-" + key);
  fs::create_directories(root);
  const int lock =
      open((root / ("pg-template-" + key + ".lock")).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock < 0 || flock(lock, LOCK_EX) != 0)
    throw std::runtime_error("cannot lock the template cluster");
  struct Unlock {
    int fd;
    ~Unlock() { close(fd); }
  } unlock{lock};
  if (fs::exists(ready / "pgdata" / "PG_VERSION")) return ready / "pgdata";

  const fs::path building = root / ("pg-template-" + key + ".building");
  fs::remove_all(building);
  fs::create_directories(building);
  chmod(building.c_str(), 0755);
  InstanceOptions options;
  options.data_dir = building / "pgdata";
  options.port = free_loopback_port();
  options.bin_dir = bin_dir;
  options.sync_initdb = false;
  LocalInstance instance(options);
  instance.start();
  instance.stop(StopMode::fast);
  fs::remove(building / "pgdata" / "forkcast-postgres.log");
  fs::remove_all(ready);
  fs::rename(building, ready);
  return ready / "pgdata";
}

// cp -a keeps owners and modes (the service user's files stay its own when we are root).
void copy_cluster(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::vector<std::string> args = {"/bin/cp", "-a", from.string(), to.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("cannot run cp");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("cp -a " + from.string() + " " + to.string() + " failed");
  }
}

}  // namespace

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::filesystem::path make_temp_dir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  chmod(pattern.c_str(), 0755);
  return pattern;
}

TestInstance::TestInstance(bool migrate)
    : root_(make_temp_dir("forkcast-db-test")), port_(free_loopback_port()) {
  InstanceOptions options;
  options.data_dir = root_ / "pgdata";
  options.port = port_;
  options.sync_initdb = false;  // a throwaway cluster: the server still fsyncs every commit
  instance_ = std::make_unique<LocalInstance>(options);
  copy_cluster(template_cluster(instance_->bin_dir()), options.data_dir);
  instance_->start();  // an initialised directory: no initdb, new port and socket
  if (migrate) {
    ConnectionPool pool(pool_options(url(), 1));
    db::migrate(pool);
  }
}

TestInstance::~TestInstance() {
  try {
    instance_->stop(StopMode::immediate);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stopping the test database failed: %s\n", e.what());
  }
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

TestInstance& shared_instance() {
  auto& slot = shared_slot();
  if (!slot) slot = std::make_unique<TestInstance>();
  return *slot;
}

std::unique_ptr<Database> open_database(const std::string& url, int pool_size) {
  DatabaseOptions options;
  options.url = url;
  options.pool_size = pool_size;
  return std::make_unique<Database>(options);
}

PoolOptions pool_options(const std::string& url, int size, int checkout_timeout_ms) {
  PoolOptions options;
  options.url = url;
  options.size = size;
  options.checkout_timeout_ms = checkout_timeout_ms;
  options.statements = repository_statements();
  return options;
}

std::string unique_suffix() {
  static std::atomic<int> counter{0};
  return "p" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace forkcast::db::testing
