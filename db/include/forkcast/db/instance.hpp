// The local PostgreSQL instance forkcast manages itself (DESIGN.md §4): `initdb` into a data
// directory, a Unix socket in that directory plus a loopback TCP port, started and stopped
// with `pg_ctl`, with fsync, full_page_writes and synchronous_commit on. docs/database.md
// has the walk-through; `forkcast db start|stop|status|psql-url` is the command line.
//
// Who runs PostgreSQL: the calling user. PostgreSQL refuses to run as root, so when the
// caller is root every PostgreSQL program (initdb, pg_ctl, hence the server) runs as the
// unprivileged system user `service_user` (default "forkcast", created by scripts/setup.sh),
// and the data directory is owned by that user. Every ancestor of the data directory must
// then let that user through (o+x); start() says which one does not.
//
// Authentication: the socket uses `trust`, and the socket lives inside the data directory
// (mode 0700), so only its owner and root reach it. TCP on 127.0.0.1 uses scram-sha-256 with
// a random password written at initdb to <data_dir>/forkcast.password (0600); tcp_url()
// includes it. The database role and the database are both named "forkcast".
//
// Settings forkcast owns are written to <data_dir>/forkcast.conf on every start (port,
// listen address, socket directory, the durability settings); postgresql.conf includes it
// last, so edit postgresql.conf for anything else. The server log is
// <data_dir>/forkcast-postgres.log.
//
// Ownership: a LocalInstance is a handle on a directory, not on a process: the server keeps
// running after the handle (or the process) goes away until stop(). Any process can stop
// an instance another one started. The methods are not meant to be called concurrently on
// the same data directory.
//
// Errors: InstanceError naming the step that failed (a missing PostgreSQL, the port taken,
// a directory the service user cannot reach, initdb or pg_ctl failing), with the tail of
// the server log where it helps.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "forkcast/config/config.hpp"

namespace forkcast::db {

inline constexpr const char* kServiceUser = "forkcast";
inline constexpr const char* kDatabaseName = "forkcast";  // role and database

struct InstanceOptions {
  std::filesystem::path data_dir = "var/pgdata";  // relative paths resolve against the cwd
  int port = 55432;                               // on 127.0.0.1
  // Directory holding initdb, pg_ctl and postgres. Empty: the newest
  // /usr/lib/postgresql/<major>/bin that has them, else the directory of pg_ctl on PATH.
  std::filesystem::path bin_dir;
  std::string service_user = kServiceUser;  // runs PostgreSQL when the caller is root
  int start_timeout_s = 60;                 // pg_ctl -t for start and stop
  // false skips initdb's final fsync of the new cluster (initdb --no-sync): for throwaway
  // test instances only. The running server fsyncs every commit either way.
  bool sync_initdb = true;
};

// The options `forkcast db` uses: database.data_dir, database.port, database.bin_dir.
InstanceOptions instance_options(const config::DatabaseConfig& config);

struct InstanceStatus {
  std::filesystem::path data_dir;  // absolute
  bool initialized = false;        // initdb has run here (PG_VERSION exists)
  bool running = false;            // postmaster.pid names a live process
  bool accepting = false;          // the server answers on its socket
  bool stale_pid_file = false;     // postmaster.pid left by a crash; start() recovers
  std::int64_t pid = 0;            // postmaster pid when running
  int port = 0;                    // the running server's port, else the configured one
  std::string url;                 // socket URL, for libpq/psql/forkcast
  std::filesystem::path log_file;
};

struct StartResult {
  InstanceStatus status;
  bool already_running = false;  // nothing was done: the instance was up
  bool initialized_now = false;  // initdb ran during this start
};

enum class StopMode {
  fast,       // roll back open transactions, disconnect clients, checkpoint, exit
  immediate,  // exit at once without a checkpoint; the next start replays the WAL (a crash)
};

class LocalInstance {
 public:
  explicit LocalInstance(InstanceOptions options);

  // Initialises the data directory if it is empty or missing, starts the server and waits
  // until it accepts connections, then creates the "forkcast" database if missing. If a
  // server is already running on this data directory it does nothing and reports it
  // (already_running). After a crash (a stale postmaster.pid) it first waits, within
  // start_timeout_s, for the dead server's processes to release its shared memory, then
  // PostgreSQL replays its WAL. Throws InstanceError, e.g. when the port is taken.
  StartResult start();

  // Stops the server and waits for it to exit. Returns false (and does nothing) when it
  // was not running. Throws InstanceError if pg_ctl fails.
  bool stop(StopMode mode = StopMode::fast);

  // Never throws for a missing or uninitialised directory: it just reports it.
  InstanceStatus status() const;

  // postgresql://forkcast@/forkcast?host=<data_dir>&port=<port>: the Unix socket.
  std::string url() const;
  // postgresql://forkcast:<password>@127.0.0.1:<port>/forkcast: TCP, for other tools.
  // Throws InstanceError when the instance was never initialised.
  std::string tcp_url() const;

  const InstanceOptions& options() const noexcept { return options_; }
  // The directory that holds initdb/pg_ctl (resolved as documented on bin_dir).
  const std::filesystem::path& bin_dir() const noexcept { return bin_dir_; }

 private:
  InstanceOptions options_;  // data_dir made absolute
  std::filesystem::path bin_dir_;
};

// Percent-encodes `text` for a URL query value (RFC 3986 unreserved characters stay).
std::string url_encode(std::string_view text);

// `url` as libpq reads it, in keyword=value form with the password replaced by "***", for
// logs and error messages; a string libpq cannot parse is not shown at all.
std::string redact_url(std::string_view url);
// Whether libpq can parse `url` (its own error message would quote the malformed part).
bool conninfo_parses(std::string_view url);

}  // namespace forkcast::db
