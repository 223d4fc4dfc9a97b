// The catalog routes: list meals (filtered, paged) and show one.
#include <cctype>
#include <charconv>
#include <cmath>

#include "handlers.hpp"

namespace forkcast::service {

using nlohmann::json;

namespace {

// Query parameters of `target` ("a=1&b=x"), percent-decoding values. 400 on bad escapes.
std::vector<std::pair<std::string, std::string>> query_of(std::string_view target) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  auto decode = [](std::string_view s) {
    std::string d;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        d += ' ';
      } else if (s[i] == '%') {
        int v = 0;
        // Exactly two hex digits (from_chars alone would take a sign: "%-1").
        if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
          throw bad_request("invalid_query", "query: bad percent escape");
        }
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        d += static_cast<char>(v);
        i += 2;
      } else {
        d += s[i];
      }
    }
    return d;
  };
  while (!rest.empty()) {
    const auto amp = std::min(rest.find('&'), rest.size());
    const std::string_view pair = rest.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = std::min(pair.find('='), pair.size());
      out.emplace_back(decode(pair.substr(0, eq)), eq < pair.size() ? decode(pair.substr(eq + 1)) : std::string());
    }
    rest.remove_prefix(std::min(amp + 1, rest.size()));
  }
  return out;
}

long long parse_query_int(const std::string& key, const std::string& value, long long lo, long long hi) {
  long long v = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size()) {
    throw bad_request("invalid_type", key + ": \"" + value.substr(0, 32) + "\" is not an integer", key);
  }
  if (v < lo || v > hi) {
    throw bad_request("out_of_range", key + ": " + value + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi), key);
  }
  return v;
}

}  // namespace

Response handle_list_meals(Application& app, const Request& request, Call&) {
  std::optional<env::Slot> slot;
  std::optional<env::Diet> diet;
  env::AllergenSet free_of = 0;
  std::string cuisine;
  long long limit = 50, offset = 0;
  for (const auto& [key, value] : query_of(request.target())) {
    if (key == "slot") {
      slot = env::parse_slot(value);
      if (!slot) throw bad_request("invalid_value", "slot: \"" + value.substr(0, 32) + "\" is not one of breakfast|lunch|dinner|snack", "slot");
    } else if (key == "diet") {
      diet = env::parse_diet(value);
      if (!diet) throw bad_request("invalid_value", "diet: \"" + value.substr(0, 32) + "\" is not one of vegetarian|vegan|pescatarian|gluten_free|dairy_free", "diet");
    } else if (key == "free_of") {
      const auto a = env::parse_allergen(value);
      if (!a) throw bad_request("invalid_value", "free_of: \"" + value.substr(0, 32) + "\" is not an allergen name", "free_of");
      free_of |= static_cast<env::AllergenSet>(1U << static_cast<int>(*a));
    } else if (key == "cuisine") {
      cuisine = value;
    } else if (key == "limit") {
      limit = parse_query_int(key, value, 1, 500);
    } else if (key == "offset") {
      offset = parse_query_int(key, value, 0, 1'000'000);
    } else {
      throw bad_request("unknown_field", key.substr(0, 32) + ": unknown query parameter (allowed: slot, diet, free_of, cuisine, limit, offset)", key.substr(0, 32));
    }
  }
  json meals = json::array();
  long long matched = 0;
  for (const auto& meal : app.catalog().meals()) {
    if (slot && meal.slot != *slot) continue;
    if (diet && !env::has(meal.diets, *diet)) continue;
    if ((meal.allergens & free_of) != 0) continue;
    if (!cuisine.empty() && meal.cuisine != cuisine) continue;
    if (matched++ < offset || static_cast<long long>(meals.size()) >= limit) continue;
    meals.push_back(meal_json(meal, false, app.catalog()));
  }
  return json_response(request, http::status::ok, {{"total", matched}, {"offset", offset}, {"meals", meals}});
}

Response handle_get_meal(Application& app, const Request& request, Call& call) {
  const std::string id(call.params.at(0));
  const auto m = app.catalog().find_meal(id);
  if (!m) throw ApiError(http::status::not_found, "not_found", "no meal \"" + id.substr(0, 64) + "\"", "id");
  return json_response(request, http::status::ok, meal_json(app.catalog().meals()[*m], true, app.catalog()));
}

// ---- advice ----------------------------------------------------------------------------

}  // namespace forkcast::service
