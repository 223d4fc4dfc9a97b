#include "forkcast/db/repositories.hpp"

#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

User user_of(const pqxx::row& r) {
  User u;
  u.id = r[0].as<std::string>();
  u.profile = json_of(r[1]);
  u.token_sha256 = r[2].as<std::string>();
  u.created_at = from_us(r[3].as<std::int64_t>());
  u.updated_at = from_us(r[4].as<std::int64_t>());
  return u;
}

}  // namespace

User UserRepository::create(const NewUser& user) {
  require_object(user.profile, "profile");
  require_hex64(user.token_sha256, "token_sha256");
  const std::string profile = json_text(user.profile, "profile");
  try {
    return in_transaction(pool_, [&](pqxx::work& tx) {
      return user_of(tx.exec_prepared1(sql::kUserInsert.name, profile, user.token_sha256));
    });
  } catch (const ConflictError&) {
    throw ConflictError("users.token_sha256", "another user already has this token hash");
  }
}

std::optional<User> UserRepository::find(std::string_view id) {
  if (!is_uuid(id)) return std::nullopt;
  return first_row(query(pool_, sql::kUserById, std::string(id)), user_of);
}

std::optional<User> UserRepository::find_by_token_sha256(std::string_view token_sha256) {
  return first_row(query(pool_, sql::kUserByToken, std::string(token_sha256)), user_of);
}

User UserRepository::update_profile(std::string_view id, const nlohmann::json& profile) {
  require_object(profile, "profile");
  const std::string text = json_text(profile, "profile");
  const auto missing = [&] { return NotFoundError("users.id", "no user " + shown(id)); };
  if (!is_uuid(id)) throw missing();
  const auto rows = in_transaction(pool_, [&](pqxx::work& tx) {
    return tx.exec_prepared(sql::kUserUpdateProfile.name, std::string(id), text);
  });
  if (rows.empty()) throw missing();
  return user_of(rows[0]);
}

}  // namespace forkcast::db
