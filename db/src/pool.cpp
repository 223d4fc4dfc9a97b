#include "connection_pool.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string_view>

#include "forkcast/db/instance.hpp"

namespace forkcast::db::detail {
namespace {

// Server notices (e.g. "relation already exists, skipping") go to the log, not to stderr.
class NoticeToLog final : public pqxx::errorhandler {
 public:
  explicit NoticeToLog(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
  bool operator()(const char message[]) noexcept override {
    std::string_view text(message);
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    spdlog::debug("postgres: {}", text);
    return false;
  }
};

bool is_uri(std::string_view url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// An idle connection must have nothing to read: the server only talks when asked. Input
// pending means it sent its goodbye (shutdown, restart, idle timeout, a terminated backend)
// and closed, so the connection is dead even though libpq does not know it yet. One poll(),
// no round trip.
bool looks_alive(pqxx::connection& c) {
  if (!c.is_open()) return false;
  const int fd = c.sock();
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  const int n = poll(&p, 1, 0);
  return n == 0;
}

bool sqlstate_means_disconnected(const std::string& state) {
  // Class 08: connection exception; 57P01..57P03: admin/crash shutdown, cannot connect now.
  return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03";
}

}  // namespace

std::string connection_string(const std::string& url, int timeout_ms, const std::string& application_name) {
  // libpq counts connect_timeout in whole seconds and treats 1 as 2.
  const int timeout_s = std::max(2, (timeout_ms + 999) / 1000);
  std::string out = url;
  const bool uri = is_uri(url);
  auto add = [&](std::string_view key, const std::string& value) {
    if (out.find(std::string(key) + "=") != std::string::npos) return;
    if (uri) {
      out += out.find('?') == std::string::npos ? '?' : '&';
      out += std::string(key) + "=" + url_encode(value);
    } else {
      out += " " + std::string(key) + "='" + value + "'";
    }
  };
  add("connect_timeout", std::to_string(timeout_s));
  if (!application_name.empty()) add("application_name", application_name);
  return out;
}

struct Pool::Slot {
  std::unique_ptr<pqxx::connection> connection;
  std::uint64_t generation = 0;  // the pool's generation when it was opened
  std::unique_ptr<NoticeToLog> notices;  // destroyed first: it unregisters from the connection

  void close() noexcept {
    notices.reset();
    connection.reset();
  }
};

Pool::Pool(PoolOptions options) : options_(std::move(options)) {
  if (options_.url.empty()) throw std::invalid_argument("database url: must not be empty");
  if (options_.size < 1) {
    throw std::invalid_argument("database.pool_size: " + std::to_string(options_.size) +
                                " is below 1");
  }
  if (options_.checkout_timeout_ms < 1) {
    throw std::invalid_argument("database.checkout_timeout_ms: " +
                                std::to_string(options_.checkout_timeout_ms) + " is below 1");
  }
  conninfo_ = connection_string(options_.url, options_.checkout_timeout_ms, options_.application_name);
  for (int i = 0; i < options_.size; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    free_.push_back(options_.size - 1 - i);  // slot 0 is handed out first
  }
  stats_.size = options_.size;
}

Pool::~Pool() {
  for (auto& slot : slots_) slot->close();
}

void Pool::open_connection(Slot& slot) {
  try {
    slot.connection = std::make_unique<pqxx::connection>(conninfo_);
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      ++stats_.connect_failures;
    }
    std::string reason = e.what();
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
    if (!conninfo_parses(options_.url)) reason = "the connection string is malformed (libpq cannot parse it)";
    throw DatabaseUnavailable("cannot connect to the database at " + redact_url(options_.url) +
                              ": " + reason);
  }
  slot.notices = std::make_unique<NoticeToLog>(*slot.connection);
  for (const auto& statement : options_.statements)
    slot.connection->prepare(statement.name, statement.sql);
  std::lock_guard lock(mutex_);
  slot.generation = generation_;
  ++stats_.connects;
  ++stats_.open;
}

Pool::Lease Pool::checkout() {
  int index = -1;
  {
    std::unique_lock lock(mutex_);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.checkout_timeout_ms);
    if (!freed_.wait_until(lock, deadline, [&] { return !free_.empty(); })) {
      ++stats_.checkout_timeouts;
      throw DatabaseUnavailable("no database connection became free within " +
                                std::to_string(options_.checkout_timeout_ms) + " ms (all " +
                                std::to_string(options_.size) + " in use)");
    }
    index = free_.back();
    free_.pop_back();
    ++stats_.in_use;
  }
  // Connecting happens outside the lock so that one slow connect does not stall the pool.
  Slot& slot = *slots_[static_cast<std::size_t>(index)];
  try {
    if (slot.connection && !looks_alive(*slot.connection)) {
      slot.close();
      std::lock_guard lock(mutex_);
      ++stats_.replaced;
      --stats_.open;
    }
    if (!slot.connection) open_connection(slot);
  } catch (...) {
    give_back(index, false);
    throw;
  }
  return Lease(this, index);
}

void Pool::give_back(int index, bool broken) noexcept {
  Slot& slot = *slots_[static_cast<std::size_t>(index)];
  const bool had_connection = slot.connection != nullptr;
  {
    std::lock_guard lock(mutex_);
    broken = broken || slot.generation != generation_;  // opened before release_connections()
  }
  if (broken && had_connection) slot.close();
  {
    std::lock_guard lock(mutex_);
    if (broken && had_connection) {
      ++stats_.replaced;
      --stats_.open;
    }
    --stats_.in_use;
    free_.push_back(index);
  }
  freed_.notify_one();
}

void Pool::release_connections() {
  std::lock_guard lock(mutex_);
  ++generation_;
  // Idle slots are this pool's alone while the mutex is held (checkout takes them under it).
  for (const int index : free_) {
    Slot& slot = *slots_[static_cast<std::size_t>(index)];
    if (!slot.connection) continue;
    slot.close();
    ++stats_.replaced;
    --stats_.open;
  }
}

PoolStats Pool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

Pool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), slot_(other.slot_), broken_(other.broken_) {
  other.pool_ = nullptr;
}

Pool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->give_back(slot_, broken_);
}

pqxx::connection& Pool::Lease::connection() noexcept {
  return *pool_->slots_[static_cast<std::size_t>(slot_)]->connection;
}

void Pool::rethrow_as_database_error(Lease& lease) {
  try {
    throw;
  } catch (const DatabaseError&) {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    lease.mark_broken();
    throw DatabaseUnavailable(
        std::string("the connection was lost during COMMIT; the transaction may or may not "
                    "have committed: ") +
        e.what());
  } catch (const pqxx::broken_connection& e) {
    lease.mark_broken();
    throw DatabaseUnavailable(
        std::string("lost the database connection (a write in flight may or may not have "
                    "committed): ") +
        e.what());
  } catch (const pqxx::statement_completion_unknown& e) {
    throw DatabaseUnavailable(std::string("the server could not say whether the statement completed (SQLSTATE "
                                          "40003); retry with the same idempotency key: ") +
                              e.what());
  } catch (const pqxx::transaction_rollback& e) {
    // Class 40 (deadlock, serialization failure). libpqxx 6 derives these from failure, not
    // sql_error, so they need their own catch: the transaction was rolled back, and running
    // it again is safe.
    throw DatabaseUnavailable(std::string("the database rolled the transaction back (class 40: deadlock or "
                                          "serialization failure); retrying is safe: ") +
                              e.what());
  } catch (const pqxx::sql_error& e) {
    if (sqlstate_means_disconnected(e.sqlstate())) {
      lease.mark_broken();
      throw DatabaseUnavailable(std::string("the database is shutting down or unreachable: ") +
                                e.what());
    }
    const std::string& state = e.sqlstate();
    if (state == "23505")
      throw ConflictError("", std::string("unique constraint violated: ") + e.what());
    if (state == "23503")
      throw NotFoundError("", std::string("referenced row does not exist: ") + e.what());
    // Class 22 (data exception) and the other integrity violations (check, not null): the
    // input was wrong in a way only the server noticed.
    // Deadlocks and serialization failures (class 40), a statement cancelled by its timeout
    // (57014) and a server out of resources (class 53) say nothing about the input: the
    // same statement may succeed when retried, which is what DatabaseUnavailable promises.
    if (state == "53100") {
      throw StorageFull(std::string("the database server's disk is full (SQLSTATE 53100); the statement wrote "
                                    "nothing and succeeds once space is freed: ") +
                        e.what());
    }
    if (state.rfind("40", 0) == 0 || state == "57014" || state.rfind("53", 0) == 0) {
      throw DatabaseUnavailable(std::string("the database could not finish the statement now (SQLSTATE ") + state +
                                "); retrying is safe: " + e.what());
    }
    if (state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0) {
      throw std::invalid_argument(std::string("value refused by the database (SQLSTATE ") + state +
                                  "): " + e.what());
    }
    throw DatabaseError(std::string("database error (SQLSTATE ") + e.sqlstate() + "): " + e.what());
  } catch (const pqxx::usage_error& e) {
    // A libpqxx usage error can leave the connection mid-transaction: do not reuse it.
    lease.mark_broken();
    throw DatabaseError(std::string("database client error: ") + e.what());
  } catch (const pqxx::failure& e) {
    lease.mark_broken();
    // libpqxx 6.4 reports a connection that died inside a statement as a plain failure
    // ("Could not obtain client encoding": the error path upstream fixed in 7.7, jtv/libpqxx
    // #500) rather than broken_connection. Found by the sanitizer run of the fault suite: a
    // feedback write during a PostgreSQL stop answered 500 instead of 503. A connection that
    // is no longer open means the database went away: retrying is what the caller must do.
    bool open = false;
    try {
      open = lease.connection().is_open();
    } catch (...) {
    }
    if (!open || std::string_view(e.what()).find("client encoding") != std::string_view::npos) {
      throw DatabaseUnavailable(std::string("lost the database connection (a write in flight may or may not have "
                                            "committed): ") +
                                e.what());
    }
    throw DatabaseError(std::string("database failure: ") + e.what());
  }
}

}  // namespace forkcast::db::detail

namespace forkcast::db {

ConnectionPool::ConnectionPool(PoolOptions options)
    : pool_(std::make_unique<detail::Pool>(std::move(options))) {}

ConnectionPool::~ConnectionPool() = default;

PoolStats ConnectionPool::stats() const { return pool_->stats(); }

void ConnectionPool::release_connections() { pool_->release_connections(); }


const PoolOptions& ConnectionPool::options() const noexcept { return pool_->options(); }

}  // namespace forkcast::db
