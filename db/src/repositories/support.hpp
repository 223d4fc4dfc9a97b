// What the repositories share (one file per aggregate in db/src/repositories/: users.cpp,
// user_state.cpp, decisions.cpp, feedback.cpp, meal_log.cpp, models.cpp, training_runs.cpp,
// eval_reports.cpp): input checks, conversions between records and columns, and running
// statements on a pooled connection. Internal to db/ (not under include/, so nothing outside
// db/ sees these names).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connection_pool.hpp"
#include "forkcast/db/records.hpp"
#include "statements.hpp"

namespace forkcast::db {

// Any fixed number: the advisory lock key of the model registry (promotions and the
// learner's commits take it, so two of them never interleave).
inline constexpr std::int64_t kModelRegistryLockKey = 0x666f726b63617374;  // "forkcast"

// ---- input checks: std::invalid_argument naming the field and the value ----------------

// `value` quoted for an error message: at most 80 bytes, unprintable bytes as '?'.
std::string shown(std::string_view value);

// PostgreSQL text holds valid UTF-8 without NUL bytes.
void require_text(std::string_view value, std::string_view field, std::size_t max_bytes,
                  bool allow_empty = false);
void require_uuid(std::string_view value, std::string_view field);
void require_hex64(std::string_view value, std::string_view field);
void require_object(const nlohmann::json& value, std::string_view field);
// A model version: 1..128 letters, digits, '.', '_' or '-', starting with a letter or digit.
void validate_version(std::string_view version);

// JSON text for a jsonb parameter; nlohmann refuses to serialise invalid UTF-8.
std::string json_text(const nlohmann::json& value, std::string_view field);

// ---- conversions ------------------------------------------------------------------------

inline Timestamp from_us(std::int64_t us) { return Timestamp(std::chrono::microseconds(us)); }
inline std::int64_t to_us(Timestamp t) { return t.time_since_epoch().count(); }
inline std::optional<std::int64_t> to_us(const std::optional<Timestamp>& t) {
  if (!t) return std::nullopt;
  return to_us(*t);
}
std::optional<Timestamp> optional_time(const pqxx::field& f);
std::optional<std::string> optional_text(const pqxx::field& f);
nlohmann::json json_of(const pqxx::field& f);  // NULL => null
// A decision from the 16 columns every decision query returns first (statements.cpp,
// "Columns" of the decisions section).
Decision decision_of(const pqxx::row& r);

// ---- running statements -----------------------------------------------------------------

// Runs `fn(transaction)` in one read-write transaction on a pooled connection and commits.
template <typename Fn>
auto in_transaction(ConnectionPool& pool, Fn&& fn) {
  return pool.internal().run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto result = fn(tx);
    tx.commit();
    return result;
  });
}

// A read: one statement, no explicit transaction (autocommit), one round trip.
template <typename... Args>
pqxx::result query(ConnectionPool& pool, const sql::Statement& statement, Args&&... args) {
  return pool.internal().run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared(statement.name, std::forward<Args>(args)...);
  });
}

// The first row as a record (of(row)), or nothing when there is none: a lookup.
template <typename Of>
auto first_row(const pqxx::result& rows, Of of) -> std::optional<decltype(of(rows[0]))> {
  if (rows.empty()) return std::nullopt;
  return of(rows[0]);
}

// Every row as a record, in order: a listing.
template <typename Of>
auto all_rows(const pqxx::result& rows, Of of) -> std::vector<decltype(of(rows[0]))> {
  std::vector<decltype(of(rows[0]))> out;
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (const auto& r : rows) out.push_back(of(r));
  return out;
}

}  // namespace forkcast::db
