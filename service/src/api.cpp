#include "api.hpp"

#include <cmath>
#include <sstream>

namespace forkcast::service {

using boost::beast::http::status;
using nlohmann::json;

ApiError bad_request(std::string code, const std::string& message, std::string field) {
  return ApiError(status::bad_request, std::move(code), message, std::move(field));
}

namespace {

std::string type_name(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number_float()) return "number";
  return v.type_name();
}

ApiError wrong_type(const std::string& field, const json& value, std::string_view expected) {
  return bad_request("invalid_type", field + ": expected " + std::string(expected) + ", got " + type_name(value), field);
}

// A value quoted for an error message, cut short so that a huge value cannot make a huge
// error (and with invalid UTF-8 replaced, so that the error itself is valid JSON).
std::string shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

ApiError out_of_range(const std::string& field, const json& value, const std::string& allowed) {
  return bad_request("out_of_range", field + ": " + shown(value) + " is out of range " + allowed, field);
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "|") + std::string(item);
  return out;
}

}  // namespace

JsonBody JsonBody::parse(std::string_view body, bool empty_ok) {
  if (body.empty() && empty_ok) return JsonBody(json::object(), "");
  json parsed;
  struct TooDeep {};
  struct DuplicateKey {
    std::string key;
  };
  try {
    // Strict: no comments, no trailing garbage; invalid UTF-8 in a string is a parse error;
    // a key twice in one object is an error (RFC 8259 leaves it to the reader, and "the last
    // one wins" would let a proxy and forkcast read different requests).
    // Depth is bounded while parsing: a document is copied and printed recursively, and
    // 64 KiB of brackets would nest ~32 000 levels deep, megabytes of a thread's stack.
    std::vector<std::set<std::string, std::less<>>> keys_of_open_objects;  // sets: a flood of keys stays O(n log n)
    parsed = json::parse(
        body.begin(), body.end(),
        [&](int depth, json::parse_event_t event, json& value) {
          if (depth > kMaxJsonDepth) throw TooDeep{};
          switch (event) {
            case json::parse_event_t::object_start: keys_of_open_objects.emplace_back(); break;
            case json::parse_event_t::object_end: keys_of_open_objects.pop_back(); break;
            case json::parse_event_t::key: {
              auto& keys = keys_of_open_objects.back();
              const auto& key = value.get_ref<const std::string&>();
              if (!keys.insert(key).second) throw DuplicateKey{key};
              break;
            }
            default: break;
          }
          return true;
        },
        true, false);
  } catch (const TooDeep&) {
    throw bad_request("invalid_json", "request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  } catch (const DuplicateKey& e) {
    throw bad_request("duplicate_key", e.key.substr(0, 64) + ": appears twice in one object", e.key.substr(0, 64));
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (1e400).
    std::string what = e.what();
    if (const auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw bad_request("invalid_json", "request body is not valid JSON: " + what);
  }
  if (!parsed.is_object()) throw bad_request("invalid_type", "request body: expected a JSON object, got " + type_name(parsed));
  return JsonBody(parsed, "");
}

JsonBody::JsonBody(const json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

std::string JsonBody::path(std::string_view key) const { return prefix_ + std::string(key); }

bool JsonBody::has(std::string_view key) const {
  const auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

const json* JsonBody::get(std::string_view key) {
  read_.emplace(key);
  const auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> JsonBody::optional_string(std::string_view key, std::size_t max_bytes) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) throw wrong_type(path(key), *v, "a string");
  const auto& text = v->get_ref<const std::string&>();
  if (text.empty()) throw bad_request("out_of_range", path(key) + ": must not be empty", path(key));
  if (text.size() > max_bytes) {
    throw bad_request("out_of_range", path(key) + ": " + std::to_string(text.size()) + " bytes, at most " +
                                          std::to_string(max_bytes) + " allowed", path(key));
  }
  return text;
}

std::string JsonBody::string(std::string_view key, std::size_t max_bytes) {
  auto value = optional_string(key, max_bytes);
  if (!value) throw bad_request("missing_field", path(key) + ": is required", path(key));
  return *value;
}

std::optional<std::int64_t> JsonBody::optional_int(std::string_view key, std::int64_t lo, std::int64_t hi) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  std::int64_t value = 0;
  if (v->is_number_integer()) {
    value = v->get<std::int64_t>();
  } else if (v->is_number_unsigned()) {
    throw out_of_range(path(key), *v, std::to_string(lo) + ".." + std::to_string(hi));
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    value = static_cast<std::int64_t>(v->get<double>());
  } else {
    throw wrong_type(path(key), *v, "an integer");
  }
  if (value < lo || value > hi) throw out_of_range(path(key), *v, std::to_string(lo) + ".." + std::to_string(hi));
  return value;
}

std::optional<double> JsonBody::optional_number(std::string_view key, double lo, double hi) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) throw wrong_type(path(key), *v, "a number");
  const double value = v->get<double>();
  if (!(value >= lo && value <= hi)) {
    std::ostringstream range;
    range << lo << ".." << hi;
    throw out_of_range(path(key), *v, range.str());
  }
  return value;
}

std::optional<bool> JsonBody::optional_bool(std::string_view key) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) throw wrong_type(path(key), *v, "true or false");
  return v->get<bool>();
}

std::optional<std::string> JsonBody::optional_choice(std::string_view key, const std::vector<std::string_view>& choices) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) throw wrong_type(path(key), *v, "one of " + join(choices));
  const auto& text = v->get_ref<const std::string&>();
  for (const auto& c : choices) {
    if (c == text) return text;
  }
  throw bad_request("invalid_value", path(key) + ": " + shown(*v) + " is not one of " + join(choices), path(key));
}

std::optional<std::vector<std::string>> JsonBody::optional_string_array(std::string_view key, std::size_t max_items,
                                                                         std::size_t max_bytes) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_array()) throw wrong_type(path(key), *v, "an array of strings");
  if (v->size() > max_items) {
    throw bad_request("out_of_range", path(key) + ": " + std::to_string(v->size()) + " items, at most " +
                                          std::to_string(max_items) + " allowed", path(key));
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& item = (*v)[i];
    const std::string item_path = path(key) + "[" + std::to_string(i) + "]";
    if (!item.is_string()) throw wrong_type(item_path, item, "a string");
    if (item.get_ref<const std::string&>().size() > max_bytes) throw out_of_range(item_path, item, "(too long)");
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::optional<JsonBody> JsonBody::optional_object(std::string_view key) {
  const json* v = get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) throw wrong_type(path(key), *v, "an object");
  return JsonBody(*v, path(key) + ".");
}

void JsonBody::finish() const {
  for (const auto& [key, value] : object_.items()) {
    if (read_.find(key) == read_.end()) {
      std::string name = key;
      if (name.size() > 64) name = name.substr(0, 61) + "...";
      throw bad_request("unknown_field", path(name) + ": unknown field", path(name));
    }
  }
}

// ---- profiles ---------------------------------------------------------------------------

namespace {

template <typename Enum, std::size_t N>
std::vector<std::string_view> names_of(std::string_view (*name)(Enum)) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < N; ++i) out.push_back(name(static_cast<Enum>(i)));
  return out;
}

template <typename Enum, std::size_t N>
Enum enum_of(std::string_view (*name)(Enum), const std::string& text) {
  for (std::size_t i = 0; i < N; ++i) {
    if (name(static_cast<Enum>(i)) == text) return static_cast<Enum>(i);
  }
  return static_cast<Enum>(0);  // unreachable after optional_choice
}

}  // namespace

ProfileDocument read_profile(JsonBody& body, const ProfileDocument* base) {
  ProfileDocument doc = base ? *base : ProfileDocument{};
  env::UserProfile& p = doc.profile;
  const bool creating = base == nullptr;
  auto need = [&](std::string_view key) {
    if (creating && !body.has(key)) throw bad_request("missing_field", std::string(key) + ": is required", std::string(key));
  };
  for (const char* key : {"sex", "age", "height_cm", "weight_kg"}) need(key);
  if (auto v = body.optional_choice("sex", {"female", "male"})) p.sex = *v == "female" ? env::Sex::female : env::Sex::male;
  namespace limits = env::profile_limits;
  const auto number = [&](const env::ProfileRange& r) { return body.optional_number(r.field, r.min, r.max); };
  if (auto v = body.optional_int(limits::age.field, static_cast<std::int64_t>(limits::age.min),
                                 static_cast<std::int64_t>(limits::age.max))) {
    p.age = static_cast<int>(*v);
  }
  if (auto v = number(limits::height_cm)) p.height_cm = *v;
  if (auto v = number(limits::weight_kg)) p.weight_kg = *v;
  if (auto v = body.optional_choice("activity", names_of<env::Activity, 5>(env::activity_name)))
    p.activity = enum_of<env::Activity, 5>(env::activity_name, *v);
  if (auto v = body.optional_choice("goal", names_of<env::Goal, 3>(env::goal_name)))
    p.goal = enum_of<env::Goal, 3>(env::goal_name, *v);
  if (auto v = body.optional_choice("diet", names_of<env::DietPreference, 4>(env::diet_preference_name)))
    p.diet = enum_of<env::DietPreference, 4>(env::diet_preference_name, *v);
  if (auto v = body.optional_string_array("allergens", env::kNumAllergens, 32)) {
    env::AllergenSet set = 0;
    for (std::size_t i = 0; i < v->size(); ++i) {
      const auto a = env::parse_allergen((*v)[i]);
      if (!a) {
        std::string allowed;
        for (int k = 0; k < env::kNumAllergens; ++k)
          allowed += (k ? "|" : "") + std::string(env::allergen_name(static_cast<env::Allergen>(k)));
        throw bad_request("invalid_value", "allergens[" + std::to_string(i) + "]: \"" + (*v)[i] +
                                               "\" is not one of " + allowed, "allergens[" + std::to_string(i) + "]");
      }
      set |= static_cast<env::AllergenSet>(1U << static_cast<int>(*a));
    }
    p.excluded = set;
    doc.allergens.clear();
    for (int k = 0; k < env::kNumAllergens; ++k) {
      if (env::has(set, static_cast<env::Allergen>(k))) doc.allergens.emplace_back(env::allergen_name(static_cast<env::Allergen>(k)));
    }
  }
  if (auto v = number(limits::budget_usd)) p.budget_usd = *v;
  if (auto v = number(limits::cook_time_min)) p.cook_time_min = *v;
  if (auto v = number(limits::sodium_limit_mg)) p.sodium_limit_mg = *v;
  if (auto v = number(limits::protein_g_per_kg)) p.protein_g_per_kg = *v;
  if (auto v = body.optional_int("utc_offset_min", -720, 840)) doc.utc_offset_min = static_cast<int>(*v);
  return doc;
}

json profile_json(const ProfileDocument& doc) {
  const env::UserProfile& p = doc.profile;
  return {{"sex", env::sex_name(p.sex)},
          {"age", p.age},
          {"height_cm", p.height_cm},
          {"weight_kg", p.weight_kg},
          {"activity", env::activity_name(p.activity)},
          {"goal", env::goal_name(p.goal)},
          {"diet", env::diet_preference_name(p.diet)},
          {"allergens", doc.allergens},
          {"budget_usd", p.budget_usd},
          {"cook_time_min", p.cook_time_min},
          {"sodium_limit_mg", p.sodium_limit_mg},
          {"protein_g_per_kg", p.protein_g_per_kg},
          {"utc_offset_min", doc.utc_offset_min}};
}

ProfileDocument profile_from_json(const json& stored) {
  JsonBody body(stored, "profile.");
  return read_profile(body, nullptr);
}

namespace {
// Rounds to `decimals` places so that the JSON shows 113.3, not 113.30000000000001:
// dividing by a power of ten gives the double nearest the decimal, multiplying by 0.1 does not.
double round_to(double value, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(value * scale) / scale;
}
}  // namespace

json targets_json(const env::UserProfile& profile) {
  return {{"kcal", std::round(profile.kcal_target())},
          {"protein_g", std::round(profile.protein_target_g())},
          {"fat_g_max", std::round(0.3 * profile.kcal_target() / 9.0)},
          {"carbs_g", std::round(0.5 * profile.kcal_target() / 4.0)},
          {"fiber_g", 30},
          {"sodium_mg_max", std::round(profile.sodium_limit_mg)}};
}

json nutrition_json(const env::Nutrients& n) {
  return {{"kcal", std::round(n.kcal)},
          {"protein_g", round_to(n.protein_g, 1)},
          {"fat_g", round_to(n.fat_g, 1)},
          {"carbs_g", round_to(n.carbs_g, 1)},
          {"fiber_g", round_to(n.fiber_g, 1)},
          {"sugar_g", round_to(n.sugar_g, 1)},
          {"sodium_mg", std::round(n.sodium_mg)}};
}

json meal_json(const env::Meal& meal, bool with_ingredients, const env::Catalog& catalog) {
  json allergens = json::array();
  for (int k = 0; k < env::kNumAllergens; ++k) {
    if (env::has(meal.allergens, static_cast<env::Allergen>(k))) allergens.push_back(env::allergen_name(static_cast<env::Allergen>(k)));
  }
  json diets = json::array();
  for (int k = 0; k < env::kNumDiets; ++k) {
    if (env::has(meal.diets, static_cast<env::Diet>(k))) diets.push_back(env::diet_name(static_cast<env::Diet>(k)));
  }
  json out = {{"id", meal.id},
              {"name", meal.name},
              {"slot", env::slot_name(meal.slot)},
              {"cuisine", meal.cuisine},
              {"prep_min", meal.prep_min},
              {"cost_usd", round_to(meal.cost_usd, 2)},
              {"nutrition", nutrition_json(meal.per_serving)},
              {"allergens", allergens},
              {"diets", diets}};
  if (with_ingredients) {
    json ingredients = json::array();
    for (const auto& ing : meal.ingredients) {
      const env::Food& food = catalog.foods()[ing.food];
      ingredients.push_back({{"ndb_no", food.ndb_no}, {"food", food.description}, {"grams", ing.grams}});
    }
    out["ingredients"] = ingredients;
    json tags = json::array();
    for (int t = 0; t < env::kNumTags; ++t) {
      if ((meal.tags >> t) & 1U) tags.push_back(env::kTagNames[static_cast<std::size_t>(t)]);
    }
    out["tags"] = tags;
  }
  return out;
}

}  // namespace forkcast::service
