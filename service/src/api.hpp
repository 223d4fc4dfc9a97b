// What handlers share: the ApiError they throw (router.cpp maps it, and every other
// exception, to a JSON error), strict JSON body reading, and the profile <-> JSON mapping.
#pragma once

#include <boost/beast/http/status.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::service {

class ApiError : public std::runtime_error {
 public:
  ApiError(boost::beast::http::status status, std::string code, const std::string& message, std::string field = {})
      : std::runtime_error(message), status_(status), code_(std::move(code)), field_(std::move(field)) {}
  boost::beast::http::status status() const noexcept { return status_; }
  const std::string& code() const noexcept { return code_; }
  const std::string& field() const noexcept { return field_; }
  // Seconds for a Retry-After header (429, 503); 0 for none.
  int retry_after_s = 0;

 private:
  boost::beast::http::status status_;
  std::string code_;
  std::string field_;
};

ApiError bad_request(std::string code, const std::string& message, std::string field = {});

// Deepest nesting a request body may have (the API's bodies nest 3 levels).
inline constexpr int kMaxJsonDepth = 32;

// Reads a JSON object body strictly: every field is checked for type and range, and
// finish() refuses any field nobody asked for (a typo must not be silently ignored).
// Field names in errors are JSON paths relative to the body ("profile.age").
class JsonBody {
 public:
  // 400 invalid_json for malformed JSON, invalid UTF-8 or nesting deeper than
  // kMaxJsonDepth; 400 invalid_type when the body
  // is not an object. An empty body is an empty object when `empty_ok`.
  static JsonBody parse(std::string_view body, bool empty_ok = false);
  JsonBody(const nlohmann::json& object, std::string prefix);

  bool has(std::string_view key) const;
  std::string string(std::string_view key, std::size_t max_bytes = 256);
  std::optional<std::string> optional_string(std::string_view key, std::size_t max_bytes = 256);
  std::optional<std::int64_t> optional_int(std::string_view key, std::int64_t lo, std::int64_t hi);
  std::optional<double> optional_number(std::string_view key, double lo, double hi);
  std::optional<bool> optional_bool(std::string_view key);
  // One of `choices`.
  std::optional<std::string> optional_choice(std::string_view key, const std::vector<std::string_view>& choices);
  std::optional<std::vector<std::string>> optional_string_array(std::string_view key, std::size_t max_items,
                                                                 std::size_t max_bytes = 64);
  std::optional<JsonBody> optional_object(std::string_view key);
  // 400 unknown_field for the first field not read.
  void finish() const;
  const nlohmann::json& document() const noexcept { return object_; }

 private:
  const nlohmann::json* get(std::string_view key);
  std::string path(std::string_view key) const;
  nlohmann::json object_;
  std::string prefix_;
  std::set<std::string, std::less<>> read_;
};

// The profile a user gives at creation (POST /v1/users) and may PATCH: the observable
// profile of DESIGN.md §2 plus the user's UTC offset. Stored as JSON (this exact layout)
// in users.profile.
struct ProfileDocument {
  env::UserProfile profile;
  int utc_offset_min = 0;
  std::vector<std::string> allergens;  // names, as given (kept for display)
};

// Reads a profile; on PATCH (`base` set) missing fields keep base's values.
ProfileDocument read_profile(JsonBody& body, const ProfileDocument* base = nullptr);
nlohmann::json profile_json(const ProfileDocument& doc);
// For profiles read back from the database (written by profile_json).
ProfileDocument profile_from_json(const nlohmann::json& json);

// Daily targets and the facts the state route shows.
nlohmann::json targets_json(const env::UserProfile& profile);
// Nutrition of one serving, rounded for display.
nlohmann::json nutrition_json(const env::Nutrients& n);
nlohmann::json meal_json(const env::Meal& meal, bool with_ingredients, const env::Catalog& catalog);

}  // namespace forkcast::service
