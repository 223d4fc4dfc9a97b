// Test support for tests/service: the serving model the tests use, in-process calls of
// service::handle(), and, for the end-to-end suites, a real `forkcast serve` process with
// its own throwaway PostgreSQL and a raw TCP client that can send bytes no HTTP library
// would (smuggling shapes, invalid UTF-8, a byte every few seconds).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "forkcast/db/database.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/service/application.hpp"
#include "forkcast/service/router.hpp"

namespace forkcast::service::testing {

// The bundled policy (models/policies/mealsim-dqn-default.safetensors) when the checkout
// has it; otherwise a small MealSim DQN trained once per process (seeded, a few seconds),
// so that the suites do not depend on a large binary file being present.
std::filesystem::path serving_model();

// The repository's catalog (data/), loaded once per process.
const env::Catalog& catalog();

// A config for tests: fixed seed, an admin key, generous rate limits.
config::Config test_config();
inline constexpr const char* kAdminKey = "test-admin-key-0123456789";

// One in-process call of service::handle().
struct Reply {
  unsigned status = 0;
  nlohmann::json body;  // null when the body is not JSON
  std::string text;
  std::map<std::string, std::string> headers;
  std::string header(const std::string& name) const;
  std::string error_code() const;   // body.error.code or ""
  std::string error_field() const;  // body.error.field or ""
};
// A body is sent with `content_type` (none when empty).
Reply call(Application& app, http::verb method, const std::string& target, const std::string& body = {},
           const std::string& token = {}, const std::string& peer = "127.0.0.1",
           const std::string& content_type = "application/json");
Reply call_json(Application& app, http::verb method, const std::string& target, const nlohmann::json& body,
                const std::string& token = {});

// "YYYY-MM-DDTHH:MM:00Z" on the UTC day `days_ahead` after today.
std::string at_utc(int days_ahead, int hour, int minute);

// A valid profile body for POST /v1/users.
nlohmann::json profile_body();

// ---- a real server process --------------------------------------------------------------

// `forkcast serve` with its own data directory and ports, started by the constructor
// (which waits, bounded, for /readyz 200) and stopped by the destructor (SIGTERM, then
// SIGKILL if it does not exit).
class ServeProcess {
 public:
  // `extra_env`: more VAR=value settings (e.g. FORKCAST_SERVER__READ_TIMEOUT_MS=1500), each
  // replacing the default of that name (FORKCAST_DATABASE__URL=<another server's database>
  // makes a second process on one database).
  explicit ServeProcess(std::vector<std::string> extra_env = {});
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  int database_port() const { return database_port_; }
  std::filesystem::path data_dir() const { return root_ / "pgdata"; }
  pid_t pid() const { return pid_; }
  // A libpq URL of this server's database (for checking what it stored).
  std::string database_url() const;
  // Environment for `forkcast db ...` commands on this server's database.
  std::string db_env() const;
  // VmRSS of the server process in KiB (/proc/<pid>/status), -1 if unreadable.
  long rss_kib() const;
  // Sends SIGTERM and waits up to `deadline` for the exit; the exit status (as waitpid's
  // WEXITSTATUS) or -1 when it did not exit normally in time (then it is killed).
  int terminate(std::chrono::milliseconds deadline);
  // SIGKILL (a crash) and reap.
  void kill_hard();
  // Starts the server again on the same directories, ports and environment (after it
  // exited); waits for /readyz 200 like the constructor. Its log is appended to.
  void restart();
  bool running();
  std::string log() const;  // the server's stdout and stderr so far

 private:
  void start(bool append_log);

  std::filesystem::path root_;
  std::vector<std::string> env_;
  int port_ = 0;
  int database_port_ = 0;
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Registers `file` (with the sha256 it has now) as a MealSim DQN model named `version` in
// `database`'s registry; returns the version.
std::string register_model_file(db::Database& database, const std::filesystem::path& file, const std::string& version);

// Runs `forkcast <args>` with `env` prepended (VAR=value ...); exit code and output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_forkcast(const std::string& args, const std::string& env);

// ---- raw HTTP over TCP ------------------------------------------------------------------

class RawConnection {
 public:
  // `source_address`: a loopback address to connect from (127.0.0.2, ...), so that a test can
  // be several clients; empty: the kernel's choice (127.0.0.1).
  explicit RawConnection(int port, const std::string& source_address = {});
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return fd_ >= 0; }
  // Sends all of `bytes`; false when the peer has closed (EPIPE/ECONNRESET).
  bool send(std::string_view bytes);
  // Reads one HTTP response (head + Content-Length body) within `timeout`. nullopt when the
  // connection closed (or timed out) before a whole response arrived.
  struct Response {
    unsigned status = 0;
    std::map<std::string, std::string> headers;  // lowercase names
    std::string body;
  };
  std::optional<Response> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True when the server closed the connection (EOF or reset) within `timeout`; any bytes
  // that arrive first are collected in *received.
  bool closed_by_peer(std::chrono::milliseconds timeout, std::string* received = nullptr);

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);  // false on EOF/error/timeout
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

// One request on a fresh connection (Connection: close); nullopt when closed without a reply.
std::optional<RawConnection::Response> http_request(int port, const std::string& method, const std::string& target,
                                                    const std::string& body = {}, const std::string& token = {},
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Polls GET `target` (every 50 ms, each on a fresh connection) until it answers `status`;
// that response, or nullopt when `timeout` passed first.
std::optional<RawConnection::Response> wait_for_status(int port, const std::string& target, unsigned status,
                                                       std::chrono::milliseconds timeout);

}  // namespace forkcast::service::testing
