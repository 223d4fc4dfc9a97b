#include "forkcast/db/repositories.hpp"

#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

MealLogEntry meal_log_of(const pqxx::row& r) {
  MealLogEntry e;
  e.id = r[0].as<std::int64_t>();
  auto& l = e.logged;
  l.user_id = r[1].as<std::string>();
  l.meal_id = r[2].as<std::string>();
  l.slot = slot_from_name(r[3].as<std::string>());
  l.eaten_at = from_us(r[4].as<std::int64_t>());
  l.servings = r[5].as<double>();
  l.event_id = optional_text(r[6]);
  l.idempotency_key = optional_text(r[7]);
  e.logged_at = from_us(r[8].as<std::int64_t>());
  return e;
}

}  // namespace

MealLogResult MealLogRepository::add(const NewMealLogEntry& entry) {
  require_uuid(entry.user_id, "user_id");
  require_text(entry.meal_id, "meal_id", 200);
  if (!(entry.servings > 0.0 && entry.servings <= 100.0)) {
    throw std::invalid_argument("servings: " + std::to_string(entry.servings) +
                                " is outside (0, 100]");
  }
  if (entry.event_id) require_uuid(*entry.event_id, "event_id");
  if (entry.idempotency_key) require_text(*entry.idempotency_key, "idempotency_key", 255);
  pqxx::result rows;
  bool duplicate = false;
  try {
    rows = in_transaction(pool_, [&](pqxx::work& tx) {
      auto inserted = tx.exec_prepared(sql::kMealLogInsert.name, entry.user_id, entry.meal_id,
                                       std::string(slot_name(entry.slot)), to_us(entry.eaten_at),
                                       entry.servings, entry.event_id, entry.idempotency_key);
      duplicate = inserted.empty() && entry.idempotency_key;
      if (duplicate) return tx.exec_prepared(sql::kMealLogByKey.name, *entry.idempotency_key);
      return inserted;
    });
  } catch (const NotFoundError&) {
    throw NotFoundError(
        entry.event_id ? "users.id or decisions.event_id" : "users.id",
        "no user " + shown(entry.user_id) +
            (entry.event_id ? " or no decision " + shown(*entry.event_id) : std::string()));
  }
  if (rows.empty()) throw DatabaseError("meal log entry was neither stored nor found");
  MealLogResult result;
  result.entry = meal_log_of(rows[0]);
  result.duplicate = duplicate;
  return result;
}

std::vector<MealLogEntry> MealLogRepository::list_for_user(std::string_view user_id, Timestamp from,
                                                           Timestamp to) {
  if (!is_uuid(user_id)) return {};
  return all_rows(
      query(pool_, sql::kMealLogForUser, std::string(user_id), to_us(from), to_us(to)),
      meal_log_of);
}

}  // namespace forkcast::db
