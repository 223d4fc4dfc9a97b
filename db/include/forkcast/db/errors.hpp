// The errors db/ throws. Every database failure is a DatabaseError (a std::runtime_error)
// carrying a stable machine-readable code() that the service maps to an HTTP status in one
// place (DESIGN.md §7):
//
//   code()                  type                 meaning                                  HTTP
//   "database_unavailable"  DatabaseUnavailable  no connection within the checkout        503
//                                                timeout, the server is down or the
//                                                connection broke (a transaction may or
//                                                may not have committed: retry with the
//                                                same idempotency key); also a statement
//                                                the server could not finish now (a
//                                                deadlock, a timeout, class 53)
//   "storage_full"          StorageFull          the server's disk is full (SQLSTATE      503
//                                                53100): a DatabaseUnavailable, retried
//                                                the same way once space returns
//   "conflict"              ConflictError        a unique key or a version check failed   409
//   "not_found"             NotFoundError        a referenced row does not exist          404
//   "schema_mismatch"       SchemaError          the database schema is newer than this   500
//                                                binary, or an applied migration changed
//   "database_error"        DatabaseError        anything else (a bug, ...)               500
//
// Bad input (a value no database could store: an empty meal id, a probability of 2) is
// std::invalid_argument naming the field and the value, thrown before any SQL runs (or,
// for what only the server can judge, translated from its data/integrity error).
// Managing the local PostgreSQL (initdb, pg_ctl, a port in use) throws InstanceError.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace forkcast::db {

class DatabaseError : public std::runtime_error {
 public:
  explicit DatabaseError(const std::string& message) : DatabaseError("database_error", message) {}
  // Stable identifier for programs: one of the codes in the table above.
  std::string_view code() const noexcept { return code_; }

 protected:
  DatabaseError(std::string_view code, const std::string& message)
      : std::runtime_error(message), code_(code) {}

 private:
  std::string_view code_;  // always a string literal
};

// The database cannot be reached in time. Raised within the pool's checkout timeout,
// never after an unbounded wait.
class DatabaseUnavailable : public DatabaseError {
 public:
  explicit DatabaseUnavailable(const std::string& message)
      : DatabaseError("database_unavailable", message) {}

 protected:
  DatabaseUnavailable(std::string_view code, const std::string& message) : DatabaseError(code, message) {}
};

// The database server has no disk space left (SQLSTATE 53100: a table, an index or the
// WAL could not grow). Nothing was written; the same statement succeeds once space
// returns, so it is retried like any DatabaseUnavailable, but named apart because an
// operator, not a retry, fixes it.
class StorageFull : public DatabaseUnavailable {
 public:
  explicit StorageFull(const std::string& message) : DatabaseUnavailable("storage_full", message) {}
};

// A uniqueness rule or an optimistic version check refused the write. field() names the
// column or key involved ("models.version", "feedback.idempotency_key", ...).
class ConflictError : public DatabaseError {
 public:
  ConflictError(std::string field, const std::string& message)
      : DatabaseError("conflict", message), field_(std::move(field)) {}
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// A row the operation needs does not exist (an unknown event id, user or model version).
class NotFoundError : public DatabaseError {
 public:
  NotFoundError(std::string field, const std::string& message)
      : DatabaseError("not_found", message), field_(std::move(field)) {}
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// The schema recorded in schema_migrations does not match this binary's migrations.
class SchemaError : public DatabaseError {
 public:
  explicit SchemaError(const std::string& message) : DatabaseError("schema_mismatch", message) {}
};

// The local instance could not be initialised, started or stopped. what() says what failed
// and what to do, and ends with the last lines of the server log when there is one.
class InstanceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace forkcast::db
