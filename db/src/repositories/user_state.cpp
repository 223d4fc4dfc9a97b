#include "forkcast/db/repositories.hpp"

#include <cstdio>

#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

std::string day_text(std::chrono::year_month_day day, std::string_view field) {
  if (!day.ok() || static_cast<int>(day.year()) < 1 || static_cast<int>(day.year()) > 9999) {
    throw std::invalid_argument(std::string(field) +
                                ": not a valid calendar date in years 1..9999");
  }
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(day.year()),
                static_cast<unsigned>(day.month()), static_cast<unsigned>(day.day()));
  return buffer;
}

std::chrono::year_month_day parse_day(const std::string& text) {
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  if (std::sscanf(text.c_str(), "%d-%u-%u", &y, &m, &d) != 3) {
    throw DatabaseError("unexpected date from the database: " + text);
  }
  return std::chrono::year_month_day{std::chrono::year{y}, std::chrono::month{m},
                                     std::chrono::day{d}};
}

UserState state_of(const pqxx::row& r) {
  UserState s;
  s.user_id = r[0].as<std::string>();
  s.day = parse_day(r[1].as<std::string>());
  s.state = json_of(r[2]);
  s.version = r[3].as<std::int64_t>();
  s.updated_at = from_us(r[4].as<std::int64_t>());
  return s;
}

}  // namespace

UserState UserStateRepository::put(std::string_view user_id, std::chrono::year_month_day day,
                                   const nlohmann::json& state,
                                   std::optional<std::int64_t> expected_version) {
  require_uuid(user_id, "user_id");
  const std::string day_string = day_text(day, "day");
  require_object(state, "state");
  const std::string text = json_text(state, "state");
  if (expected_version && *expected_version < 0) {
    throw std::invalid_argument("expected_version: " + std::to_string(*expected_version) +
                                " is negative");
  }
  const std::string user(user_id);
  std::optional<pqxx::result> rows;
  try {
    rows = in_transaction(pool_, [&](pqxx::work& tx) {
      if (!expected_version)
        return tx.exec_prepared(sql::kStateUpsert.name, user, day_string, text);
      if (*expected_version == 0)
        return tx.exec_prepared(sql::kStateInsertNew.name, user, day_string, text);
      return tx.exec_prepared(sql::kStateUpdateVersion.name, user, day_string, text,
                              *expected_version);
    });
  } catch (const NotFoundError&) {
    throw NotFoundError("users.id", "no user " + shown(user_id));
  }
  if (rows->empty()) {
    if (!query(pool_, sql::kUserExists, user).empty()) {
      throw ConflictError("user_state.version", "the state of user " + user + " for " + day_string +
                                                    " is not at version " +
                                                    std::to_string(*expected_version) +
                                                    " (another write came first: read it again)");
    }
    throw NotFoundError("users.id", "no user " + shown(user_id));
  }
  return state_of((*rows)[0]);
}

std::optional<UserState> UserStateRepository::get(std::string_view user_id,
                                                  std::chrono::year_month_day day) {
  if (!is_uuid(user_id)) return std::nullopt;
  return first_row(query(pool_, sql::kStateGet, std::string(user_id), day_text(day, "day")),
                   state_of);
}

std::optional<UserState> UserStateRepository::latest(std::string_view user_id) {
  if (!is_uuid(user_id)) return std::nullopt;
  return first_row(query(pool_, sql::kStateLatest, std::string(user_id)), state_of);
}

}  // namespace forkcast::db
