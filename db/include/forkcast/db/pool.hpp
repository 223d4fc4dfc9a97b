// A fixed-size pool of database connections. A libpq connection must not be used by two
// threads at once, so every database call inside db/ checks one connection out, uses it
// alone, and gives it back.
//
// - Fixed size: at most `size` connections, opened lazily on first checkout (so a pool can
//   be built while the database is still down) and kept open.
// - Blocking checkout with a timeout: a call waits for a free connection at most
//   checkout_timeout_ms, then throws DatabaseUnavailable. It never waits unboundedly.
// - Broken connections are replaced: at checkout an idle connection whose socket has input
//   pending (a server that shut down sends its goodbye and closes) is dropped and a new one
//   opened; a connection that fails during use is marked broken and dropped when returned.
//   A database restart therefore costs no failed call once the server is back.
// - Fail fast: when a new connection cannot be opened (server down) a call throws
//   DatabaseUnavailable at once; libpq's connect_timeout bounds a server that does not
//   answer at all (libpq counts whole seconds, minimum 2).
// - Prepared statements: every connection registers `statements` when opened, so a
//   replacement connection has them too. Each is prepared on its first use on that
//   connection (lazily, which also lets migrate() run before the tables they name exist).
//
// What code outside db/ does with a pool: build one, hand it to what takes one
// (migrate(), schema_status(), server_info(), the repositories, FeedbackWriter) and read
// stats(). Running SQL on its connections is db/'s own business: the connections, checkout
// and the error translation live in db/src/connection_pool.hpp, which only db/ and its own
// tests and benchmarks include; no header of db/include names the client library.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "forkcast/db/errors.hpp"

namespace forkcast::db {

struct PreparedStatement {
  std::string name;
  std::string sql;  // a constant: parameters are $1, $2, ... never spliced in
};

struct PoolOptions {
  std::string url;                  // libpq URL or key=value connection string
  int size = 8;                     // connections, >= 1
  int checkout_timeout_ms = 2'000;  // >= 1
  std::vector<PreparedStatement> statements;
  std::string application_name = "forkcast";  // shown in pg_stat_activity
};

struct PoolStats {
  int size = 0;
  int open = 0;                // connections currently established
  int in_use = 0;              // checked out now
  std::uint64_t connects = 0;  // connections opened so far
  std::uint64_t replaced = 0;  // broken connections dropped so far
  std::uint64_t checkout_timeouts = 0;
  std::uint64_t connect_failures = 0;
};

namespace detail {
class Pool;  // db/src/connection_pool.hpp
}

class ConnectionPool {
 public:
  // Throws std::invalid_argument naming a bad option (size < 1, timeout < 1, empty url).
  // Connects to nothing yet.
  explicit ConnectionPool(PoolOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  PoolStats stats() const;
  const PoolOptions& options() const noexcept;

  // Closes every connection: idle ones now, those in use when they are given back; calls
  // after this open new ones on demand. For a server in a smart shutdown, which waits for
  // its clients to disconnect before it exits.
  void release_connections();

  // The connections themselves, for db/'s own code (db/src/connection_pool.hpp); an
  // incomplete type everywhere else.
  detail::Pool& internal() noexcept { return *pool_; }

 private:
  std::unique_ptr<detail::Pool> pool_;
};

}  // namespace forkcast::db
