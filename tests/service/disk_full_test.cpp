// Faults: the disk under PostgreSQL's data directory fills up while clients are served
// (a tmpfs of bounded size holds the data directory; a ballast file takes its last byte).
// Writes are refused with 503 storage_full and Retry-After, nothing answers 500, the
// process stays up; once the ballast is deleted the same process recovers without help,
// and every decision it answered and every feedback it acknowledged is stored.
//
// Needs to mount a tmpfs (root, or CAP_SYS_ADMIN); elsewhere it is skipped and says so.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "client_load.hpp"
#include "forkcast/db/database.hpp"
#include "run_command.hpp"
#include "service_test_support.hpp"

namespace st = forkcast::service::testing;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::uintmax_t bytes_under(const fs::path& dir) {
  std::uintmax_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// The server's data directory moved onto a tmpfs `headroom` bytes larger than its
// contents. The destructor stops the server first (PostgreSQL runs on the mount), then
// unmounts, so that an early ASSERT leaves nothing mounted or running.
class DataDirOnTmpfs {
 public:
  DataDirOnTmpfs(st::ServeProcess& server, std::uintmax_t headroom) : server_(server), dir_(server.data_dir()) {
    original_ = dir_.string() + ".on-disk";
    struct stat owner {};
    if (::stat(dir_.c_str(), &owner) != 0) throw std::runtime_error("stat " + dir_.string());
    const std::uintmax_t size = (bytes_under(dir_) + headroom + 4095) / 4096 * 4096;
    fs::rename(dir_, original_);
    fs::create_directory(dir_);
    const std::string options = "size=" + std::to_string(size) + ",mode=0700,uid=" + std::to_string(owner.st_uid) +
                                ",gid=" + std::to_string(owner.st_gid);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ = std::strerror(errno);
      fs::remove(dir_);
      fs::rename(original_, dir_);
      return;
    }
    mounted_ = true;
    const auto copy = forkcast::testing::run_command("cp -a '" + original_.string() + "/.' '" + dir_.string() + "/'");
    if (copy.exit_code != 0) throw std::runtime_error("copying the data directory: " + copy.output);
    size_ = size;
  }
  ~DataDirOnTmpfs() {
    if (!mounted_) return;
    server_.terminate(std::chrono::seconds(15));
    ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove(dir_, ec);
    fs::rename(original_, dir_, ec);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::uintmax_t size() const { return size_; }

 private:
  st::ServeProcess& server_;
  fs::path dir_, original_;
  bool mounted_ = false;
  std::string error_;
  std::uintmax_t size_ = 0;
};

// Writes `path` until the filesystem has no byte left; returns the bytes written.
std::uintmax_t fill_up(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("open " + path.string());
  std::vector<char> chunk(1 << 20, '\0');
  std::uintmax_t written = 0;
  for (std::size_t size = chunk.size(); size >= 512;) {
    const ssize_t n = ::write(fd, chunk.data(), size);
    if (n > 0) {
      written += static_cast<std::uintmax_t>(n);
    } else if (n < 0 && errno == ENOSPC) {
      size /= 2;  // the last megabyte in smaller pieces, down to the last sector
    } else {
      break;
    }
  }
  ::fsync(fd);
  ::close(fd);
  return written;
}

}  // namespace

TEST(ServiceFault, DataDirectoryFillsUpUnderLoadThenSpaceReturns) {
  st::ServeProcess server;
  ASSERT_EQ(server.terminate(15s), 0) << server.log();  // stops its PostgreSQL too
  DataDirOnTmpfs tmpfs(server, 96u << 20);
  if (!tmpfs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs for the data directory (" << tmpfs.error() << "): needs root";
  server.restart();
  const int port = server.port();
  const pid_t pid = server.pid();

  st::ClientLoad load(port, {.clients = 4, .pause = 20ms});
  std::this_thread::sleep_for(2s);
  const auto before = load.tally();

  const fs::path ballast = server.data_dir() / "ballast";
  const std::uintmax_t ballast_bytes = fill_up(ballast);
  const auto filled_at = Clock::now();
  // New users until PostgreSQL has to grow a file and cannot: 503 storage_full, Retry-After.
  std::optional<st::RawConnection::Response> refused;
  int created_while_full = 0;
  while (ms_since(filled_at) < 20'000) {
    const auto r = st::http_request(port, "POST", "/v1/users", st::profile_body().dump(), {}, 10s);
    ASSERT_TRUE(r) << "no reply while the disk is full";
    ASSERT_NE(r->status, 500U) << r->body;
    if (r->status == 503) {
      refused = r;
      break;
    }
    ++created_while_full;
  }
  ASSERT_TRUE(refused) << "the disk was full for 20 s and every write still succeeded";
  const auto refused_ms = ms_since(filled_at);
  const json error = json::parse(refused->body, nullptr, false);
  EXPECT_EQ(error["error"].value("code", ""), "storage_full") << refused->body;
  EXPECT_NE(error["error"].value("message", "").find("disk space"), std::string::npos) << refused->body;
  EXPECT_EQ(refused->headers.count("retry-after"), 1U);
  std::this_thread::sleep_for(3s);  // the load keeps going against the full disk
  EXPECT_TRUE(server.running()) << server.log();
  const auto live = st::http_request(port, "GET", "/livez", {}, {}, 5s);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200U);

  fs::remove(ballast);
  const auto freed_at = Clock::now();
  bool recovered = false;
  while (!recovered && ms_since(freed_at) < 60'000) {
    const auto r = st::http_request(port, "POST", "/v1/users", st::profile_body().dump(), {}, 10s);
    recovered = r && r->status == 201;
    if (!recovered) std::this_thread::sleep_for(100ms);
  }
  const auto recovered_ms = ms_since(freed_at);
  EXPECT_TRUE(recovered) << "writes did not succeed within 60 s of the space returning\n" << server.log();
  std::this_thread::sleep_for(3s);  // load after recovery
  load.stop();
  const auto tally = load.tally();
  EXPECT_TRUE(server.running());
  EXPECT_EQ(server.pid(), pid) << "recovered by a restart, not by itself";

  // Nothing the clients were told had happened is missing (the decision log retries).
  forkcast::db::DatabaseOptions options;
  options.url = server.database_url();
  options.pool_size = 1;
  forkcast::db::Database database(options);
  int missing_decisions = 0, missing_feedback = 0;
  const auto deadline = Clock::now() + 30s;
  for (const auto& event : tally.answered) {
    while (!database.decisions().find(event) && Clock::now() < deadline) std::this_thread::sleep_for(100ms);
    if (!database.decisions().find(event)) ++missing_decisions;
  }
  for (const auto& key : tally.acknowledged) {
    if (!database.feedback().find_by_key(key)) ++missing_feedback;
  }

  std::printf("tmpfs %ju MiB, ballast %ju MiB; %d users created after the disk filled, first 503 after %lld ms; "
              "load: %zu decisions answered, %zu feedback acknowledged (%zu before the fill), statuses:",
              tmpfs.size() >> 20, ballast_bytes >> 20, created_while_full, refused_ms, tally.answered.size(),
              tally.acknowledged.size(), before.acknowledged.size());
  for (const auto& [status, count] : tally.statuses) std::printf(" %u x%d", status, count);
  std::printf(", codes:");
  for (const auto& [code, count] : tally.error_codes) std::printf(" %s x%d", code.c_str(), count);
  std::printf("; writes again %lld ms after the space returned; lost: %d decisions, %d feedback\n", recovered_ms,
              missing_decisions, missing_feedback);
  EXPECT_EQ(tally.statuses.count(500), 0U) << "internal errors while the disk was full";
  EXPECT_EQ(tally.missing_retry_after, 0);
  EXPECT_EQ(tally.no_reply, 0);
  EXPECT_GT(before.acknowledged.size(), 0U);
  EXPECT_GT(tally.acknowledged.size(), before.acknowledged.size()) << "no feedback acknowledged after recovery";
  EXPECT_EQ(missing_decisions, 0);
  EXPECT_EQ(missing_feedback, 0);
  for (const auto& [status, count] : tally.statuses) {
    EXPECT_TRUE(status == 200 || status == 201 || status == 503) << status << " x" << count;
  }
}
