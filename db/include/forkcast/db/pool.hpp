// A fixed-size pool of libpqxx connections. libpqxx has no pool and a pqxx::connection must
// not be used by two threads at once, so every database call checks one connection out,
// uses it alone, and gives it back.
//
// - Fixed size: at most `size` connections, opened lazily on first checkout (so a pool can
//   be built while the database is still down) and kept open.
// - Blocking checkout with a timeout: checkout() waits for a free connection at most
//   checkout_timeout_ms, then throws DatabaseUnavailable. It never waits unboundedly.
// - Broken connections are replaced: at checkout an idle connection whose socket has input
//   pending (a server that shut down sends its goodbye and closes) is dropped and a new one
//   opened; a connection that fails during use is marked broken and dropped when returned.
//   A database restart therefore costs no failed call once the server is back.
// - Fail fast: when a new connection cannot be opened (server down) checkout throws
//   DatabaseUnavailable at once; libpq's connect_timeout bounds a server that does not
//   answer at all (libpq counts whole seconds, minimum 2).
// - Prepared statements: every connection registers `statements` when opened, so a
//   replacement connection has them too. libpqxx prepares each on its first use on that
//   connection (lazily, which also lets migrate() run before the tables they name exist).
//
// Thread safety: checkout(), run() and stats() may be called from any thread. A Lease and
// the connection it holds belong to one thread at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <utility>
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

class ConnectionPool {
 public:
  // Throws std::invalid_argument naming a bad option (size < 1, timeout < 1, empty url).
  // Connects to nothing yet.
  explicit ConnectionPool(PoolOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Exclusive use of one connection until destroyed. Move-only.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    pqxx::connection& connection() noexcept;
    pqxx::connection& operator*() noexcept { return connection(); }
    pqxx::connection* operator->() noexcept { return &connection(); }
    // The connection must not be reused (it broke, or its state is unknown): it is closed
    // instead of returned, and its slot reconnects on a later checkout.
    void mark_broken() noexcept { broken_ = true; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, int slot) noexcept : pool_(pool), slot_(slot) {}
    ConnectionPool* pool_;
    int slot_;
    bool broken_ = false;
  };

  // Throws DatabaseUnavailable when no connection is free within checkout_timeout_ms or a
  // new connection cannot be opened.
  Lease checkout();

  // Checks a connection out, calls fn(pqxx::connection&) and returns its result. Errors
  // from libpqxx are translated (header errors.hpp): a lost connection or a server shutting
  // down => DatabaseUnavailable (and the connection is replaced), a unique violation =>
  // ConflictError, a foreign-key violation => NotFoundError, another integrity violation or
  // a data exception (SQLSTATE classes 23 and 22: input only the server could judge) =>
  // std::invalid_argument, anything else => DatabaseError. Exceptions that are not
  // libpqxx's pass through unchanged.
  template <typename Fn>
  auto run(Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::connection&> {
    Lease lease = checkout();
    try {
      return fn(lease.connection());
    } catch (...) {
      rethrow_as_database_error(lease);
    }
  }

  PoolStats stats() const;
  const PoolOptions& options() const noexcept { return options_; }

  // Translates the exception being handled (call only inside a catch block) as run() does,
  // marking `lease` broken when the connection is. Never returns.
  [[noreturn]] static void rethrow_as_database_error(Lease& lease);

 private:
  struct Slot;
  void give_back(int slot, bool broken) noexcept;
  void open_connection(Slot& slot);

  PoolOptions options_;
  std::string conninfo_;  // url plus connect_timeout and application_name
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int> free_;  // indices of slots not checked out
  PoolStats stats_;
};

}  // namespace forkcast::db
