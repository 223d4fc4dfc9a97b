// The pool's libpqxx side, internal to db/ (and its own tests and benchmarks): the
// connections behind a ConnectionPool (forkcast/db/pool.hpp, which documents the pool's
// behaviour), checkout, and the translation of libpqxx's errors into errors.hpp's.
//
// Thread safety: checkout(), run() and stats() may be called from any thread. A Lease and
// the connection it holds belong to one thread at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <vector>

#include "forkcast/db/errors.hpp"
#include "forkcast/db/pool.hpp"

namespace forkcast::db::detail {

// `url` with connect_timeout (from timeout_ms, in libpq's whole seconds, at least 2) and
// application_name added unless it sets them itself: what every connection db/ opens uses.
std::string connection_string(const std::string& url, int timeout_ms, const std::string& application_name);

// Neither copyable nor movable (it holds a mutex); ConnectionPool owns one.
class Pool {
 public:
  // Throws std::invalid_argument naming a bad option (size < 1, timeout < 1, empty url).
  explicit Pool(PoolOptions options);
  ~Pool();

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
    friend class Pool;
    Lease(Pool* pool, int slot) noexcept : pool_(pool), slot_(slot) {}
    Pool* pool_;
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
  void release_connections();  // ConnectionPool::release_connections
  const PoolOptions& options() const noexcept { return options_; }

  // Translates the exception being handled (call only inside a catch block) as run() does,
  // marking `lease` broken when the connection is. Never returns.
  [[noreturn]] static void rethrow_as_database_error(Lease& lease);

 private:
  struct Slot;
  void give_back(int slot, bool broken) noexcept;
  std::uint64_t generation_ = 0;  // release_connections() counts up; older connections are closed
  void open_connection(Slot& slot);

  PoolOptions options_;
  std::string conninfo_;  // url plus connect_timeout and application_name
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int> free_;  // indices of slots not checked out
  PoolStats stats_;
};

}  // namespace forkcast::db::detail
