// Schema migrations: the numbered SQL files of db/migrations/ (NNNN_name.sql), embedded in
// the binary at build time so that forkcast does not depend on its working directory.
//
// Rules (docs/database.md, "Migrations"):
// - Each migration runs in its own transaction and is recorded in that same transaction in
//   schema_migrations (version, name, sha256, applied_at): a failing migration leaves no
//   trace, and a recorded one is whole.
// - Concurrent migrators serialise on a transaction-scoped advisory lock; the second one
//   finds the work done.
// - A database whose schema_migrations holds a version this binary does not know (a newer
//   forkcast migrated it) is refused with SchemaError, before anything is applied: an old
//   binary must not write into a schema it does not understand. So is a database where an
//   applied migration's recorded sha256 differs from the binary's (a migration file was
//   edited after release: add a new one instead).
//
// Errors: SchemaError as above; DatabaseUnavailable/DatabaseError from the pool; a
// migration whose SQL fails throws DatabaseError naming its version and file.
#pragma once

#include <span>
#include <string>
#include <vector>

namespace forkcast::db {

class ConnectionPool;

struct Migration {
  int version = 0;   // NNNN of the file name, >= 1, strictly increasing
  std::string name;  // file name without number and extension, e.g. "initial"
  std::string sql;
  std::string sha256;  // of `sql`, lowercase hex
};

// The migrations compiled into this binary, in version order.
const std::vector<Migration>& embedded_migrations();

struct SchemaStatus {
  int database_version = 0;  // highest applied version, 0 for an empty database
  int binary_version = 0;    // highest version this binary knows
  std::vector<int> pending;  // known but not applied, in order
};

// Reads schema_migrations (absent => version 0) and checks it against `migrations`. Throws
// SchemaError when the database is newer or an applied migration's checksum differs.
SchemaStatus schema_status(ConnectionPool& pool, std::span<const Migration> migrations);
SchemaStatus schema_status(ConnectionPool& pool);  // embedded_migrations()

// Applies every pending migration in order and returns the versions it applied (empty when
// up to date). Same checks and errors as schema_status.
std::vector<int> migrate(ConnectionPool& pool, std::span<const Migration> migrations);
std::vector<int> migrate(ConnectionPool& pool);  // embedded_migrations()

}  // namespace forkcast::db
