#include "forkcast/env/catalog.hpp"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace forkcast::env {

namespace {

constexpr std::array<std::string_view, kNumAllergens> kAllergenNames = {
    "milk", "egg", "fish", "shellfish", "tree_nuts", "peanuts", "gluten", "soy", "sesame"};
constexpr std::array<std::string_view, 8> kOriginNames = {"plant", "dairy", "egg",  "meat",
                                                           "poultry", "fish", "shellfish", "honey"};
constexpr std::array<std::string_view, kNumDiets> kDietNames = {"vegetarian", "vegan", "pescatarian",
                                                                 "gluten_free", "dairy_free"};

template <std::size_t N>
std::optional<std::size_t> index_of(const std::array<std::string_view, N>& names, std::string_view name) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return i;
  }
  return std::nullopt;
}

[[noreturn]] void fail(const std::string& where, const std::string& message) {
  throw std::invalid_argument(where + ": " + message);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
std::vector<std::string> split_csv(const std::string& line, const std::string& where) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        field.push_back(ch);
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (ch != '\r') {
      field.push_back(ch);
    }
  }
  if (quoted) fail(where, "unterminated quoted field");
  fields.push_back(std::move(field));
  return fields;
}

double parse_number(const std::string& text, const std::string& where, std::string_view column) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || v < 0) {
    fail(where, std::string(column) + ": \"" + text + "\" is not a non-negative number");
  }
  return v;
}

const std::vector<std::string> kFoodColumns = {
    "ndb_no",    "description", "food_group", "kcal",       "protein_g", "fat_g",      "carbs_g",  "fiber_g",
    "sugar_g",   "sodium_mg",   "sat_fat_g",  "calcium_mg", "iron_mg",   "potassium_mg", "vit_c_mg"};

std::vector<Food> load_foods(const std::filesystem::path& path) {
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);
  const auto header = split_csv(line, path.string() + ":1");
  if (header != kFoodColumns) {
    fail(path.string() + ":1", "header must be exactly: ndb_no,description,food_group,kcal,protein_g,fat_g,"
                               "carbs_g,fiber_g,sugar_g,sodium_mg,sat_fat_g,calcium_mg,iron_mg,"
                               "potassium_mg,vit_c_mg");
  }
  std::vector<Food> foods;
  std::set<std::string> seen;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    const auto f = split_csv(line, where);
    if (f.size() != kFoodColumns.size()) {
      fail(where, "expected " + std::to_string(kFoodColumns.size()) + " fields, found " + std::to_string(f.size()));
    }
    Food food;
    food.ndb_no = f[0];
    if (food.ndb_no.size() != 5 || !std::all_of(food.ndb_no.begin(), food.ndb_no.end(), ::isdigit)) {
      fail(where, "ndb_no: \"" + food.ndb_no + "\" is not a 5-digit NDB number");
    }
    if (!seen.insert(food.ndb_no).second) fail(where, "ndb_no: " + food.ndb_no + " appears twice");
    food.description = f[1];
    food.food_group = f[2];
    double* targets[] = {&food.per_100g.kcal,      &food.per_100g.protein_g,   &food.per_100g.fat_g,
                         &food.per_100g.carbs_g,   &food.per_100g.fiber_g,     &food.per_100g.sugar_g,
                         &food.per_100g.sodium_mg, &food.per_100g.sat_fat_g,   &food.per_100g.calcium_mg,
                         &food.per_100g.iron_mg,   &food.per_100g.potassium_mg, &food.per_100g.vit_c_mg};
    for (std::size_t i = 0; i < std::size(targets); ++i) {
      *targets[i] = parse_number(f[3 + i], where, kFoodColumns[3 + i]);
    }
    foods.push_back(std::move(food));
  }
  return foods;
}

void load_food_tags(const std::filesystem::path& path, std::vector<Food>& foods) {
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);
  if (split_csv(line, path.string() + ":1") != std::vector<std::string>{"ndb_no", "origin", "allergens"}) {
    fail(path.string() + ":1", "header must be exactly: ndb_no,origin,allergens");
  }
  std::vector<bool> tagged(foods.size(), false);
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    const auto f = split_csv(line, where);
    if (f.size() != 3) fail(where, "expected 3 fields, found " + std::to_string(f.size()));
    auto it = std::find_if(foods.begin(), foods.end(), [&](const Food& food) { return food.ndb_no == f[0]; });
    if (it == foods.end()) fail(where, "ndb_no: " + f[0] + " is not in foods.csv");
    const auto idx = static_cast<std::size_t>(it - foods.begin());
    if (tagged[idx]) fail(where, "ndb_no: " + f[0] + " appears twice");
    tagged[idx] = true;
    const auto origin = parse_origin(f[1]);
    if (!origin) fail(where, "origin: \"" + f[1] + "\" is not one of plant, dairy, egg, meat, poultry, fish, shellfish, honey");
    it->origin = *origin;
    std::string_view rest = f[2];
    while (!rest.empty()) {
      const auto semi = rest.find(';');
      const auto name = rest.substr(0, semi);
      const auto allergen = parse_allergen(name);
      if (!allergen) {
        fail(where, "allergens: \"" + std::string(name) +
                        "\" is not one of milk, egg, fish, shellfish, tree_nuts, peanuts, gluten, soy, sesame");
      }
      it->allergens = static_cast<AllergenSet>(it->allergens | (1U << static_cast<int>(*allergen)));
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    }
  }
  for (std::size_t i = 0; i < foods.size(); ++i) {
    if (!tagged[i]) fail(path.string(), "food " + foods[i].ndb_no + " (" + foods[i].description + ") has no row");
  }
}

std::string where_of(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1);
}

// A node's text when it is a single value; nullopt for a list, a mapping or nothing (where
// YAML::Node::as<std::string>() would throw).
std::optional<std::string> scalar_text(const YAML::Node& node) {
  if (!node || !node.IsScalar()) return std::nullopt;
  return node.Scalar();
}

DietSet derive_diets(const std::vector<Ingredient>& ingredients, const std::vector<Food>& foods,
                     AllergenSet allergens) {
  bool any_meat = false, any_fish = false, any_animal = false;
  for (const auto& ing : ingredients) {
    const Origin o = foods[ing.food].origin;
    any_meat |= o == Origin::meat || o == Origin::poultry;
    any_fish |= o == Origin::fish || o == Origin::shellfish;
    any_animal |= o != Origin::plant;
  }
  DietSet d = 0;
  auto set = [&](Diet diet) { d = static_cast<DietSet>(d | (1U << static_cast<int>(diet))); };
  if (!any_meat && !any_fish) set(Diet::vegetarian);
  if (!any_animal) set(Diet::vegan);
  if (!any_meat) set(Diet::pescatarian);
  if (!has(allergens, Allergen::gluten)) set(Diet::gluten_free);
  if (!has(allergens, Allergen::milk)) set(Diet::dairy_free);
  return d;
}

// Parses one meals file. Problems are appended to `errors` (line-numbered) instead of
// thrown, so that an import can report every bad row at once.
std::vector<Meal> parse_meals(const std::filesystem::path& path, const std::vector<Food>& foods,
                              std::vector<std::string>& errors) {
  const std::string file = path.string();
  YAML::Node root;
  try {
    root = YAML::Load(read_file(path));
  } catch (const YAML::ParserException& e) {
    errors.push_back(file + ":" + std::to_string(e.mark.line + 1) + ": malformed YAML: " + e.msg);
    return {};
  }
  if (!root.IsMap() || !root["meals"] || !root["meals"].IsSequence()) {
    errors.push_back(file + ":1: expected a mapping with a `meals:` list");
    return {};
  }
  std::vector<Meal> meals;
  const std::set<std::string> known_fields = {"id", "name", "slot", "cuisine", "prep_min", "cost_usd", "tags",
                                              "ingredients"};
  for (const auto& node : root["meals"]) {
    const std::string where = where_of(file, node);
    if (!node.IsMap()) {
      errors.push_back(where + ": each meal must be a mapping");
      continue;
    }
    const std::size_t errors_before = errors.size();
    auto scalar = [&](const char* key) -> std::string {
      const auto v = node[key];
      if (!v || !v.IsScalar() || v.Scalar().empty()) {
        errors.push_back(where + ": " + key + ": missing or not a single value");
        return {};
      }
      return v.Scalar();
    };
    auto number = [&](const char* key, double lo, double hi) -> double {
      const auto text = scalar(key);
      if (text.empty()) return 0;
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (end != text.c_str() + text.size() || !(v >= lo && v <= hi)) {
        errors.push_back(where_of(file, node[key]) + ": " + key + ": \"" + text + "\" is not a number in " +
                         std::to_string(static_cast<int>(lo)) + ".." + std::to_string(static_cast<int>(hi)));
        return 0;
      }
      return v;
    };
    for (const auto& kv : node) {
      const auto key = scalar_text(kv.first);
      if (!key) {
        errors.push_back(where_of(file, kv.first) + ": a field name must be a single word");
      } else if (!known_fields.count(*key)) {
        errors.push_back(where_of(file, kv.first) + ": unknown field \"" + *key + "\"");
      }
    }
    Meal meal;
    meal.source = where;
    meal.id = scalar("id");
    meal.name = scalar("name");
    const auto slot_text = scalar("slot");
    if (auto slot = parse_slot(slot_text)) {
      meal.slot = *slot;
    } else if (!slot_text.empty()) {
      errors.push_back(where_of(file, node["slot"]) + ": slot: \"" + slot_text +
                       "\" is not one of breakfast, lunch, dinner, snack");
    }
    meal.cuisine = scalar("cuisine");
    meal.prep_min = number("prep_min", 0, 600);
    meal.cost_usd = number("cost_usd", 0, 200);
    if (const auto tags = node["tags"]; tags && tags.IsSequence()) {
      for (const auto& t : tags) {
        const auto name = scalar_text(t).value_or("");
        const auto idx = index_of(kTagNames, name);
        if (!idx) {
          errors.push_back(where_of(file, t) + ": tags: \"" + name + "\" is not a known tag");
        } else {
          meal.tags |= 1U << *idx;
        }
      }
    } else {
      errors.push_back(where + ": tags: missing or not a list");
    }
    if (const auto ings = node["ingredients"]; ings && ings.IsSequence() && ings.size() > 0) {
      for (const auto& ing : ings) {
        const std::string iw = where_of(file, ing);
        if (!ing.IsMap() || !ing["ndb"] || !ing["g"]) {
          errors.push_back(iw + ": ingredient needs {ndb: \"NNNNN\", g: grams}");
          continue;
        }
        const auto ndb = scalar_text(ing["ndb"]).value_or("");
        auto it = std::find_if(foods.begin(), foods.end(), [&](const Food& f) { return f.ndb_no == ndb; });
        if (it == foods.end()) {
          errors.push_back(iw + ": ndb: \"" + ndb + "\" is not in foods.csv");
          continue;
        }
        const auto g_text = scalar_text(ing["g"]).value_or("");
        char* end = nullptr;
        const double grams = std::strtod(g_text.c_str(), &end);
        if (end != g_text.c_str() + g_text.size() || !(grams > 0 && grams <= 2000)) {
          errors.push_back(iw + ": g: \"" + g_text + "\" is not a weight in grams in (0, 2000]");
          continue;
        }
        meal.ingredients.push_back({static_cast<std::size_t>(it - foods.begin()), grams});
      }
    } else {
      errors.push_back(where + ": ingredients: missing or empty list");
    }
    if (errors.size() != errors_before) continue;
    for (const auto& ing : meal.ingredients) {
      meal.per_serving.add_scaled(foods[ing.food].per_100g, ing.grams / 100.0);
      meal.allergens = static_cast<AllergenSet>(meal.allergens | foods[ing.food].allergens);
    }
    meal.diets = derive_diets(meal.ingredients, foods, meal.allergens);
    meal.healthiness = healthiness(meal.per_serving);
    meals.push_back(std::move(meal));
  }
  return meals;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::vector<std::filesystem::path> meal_files(const std::filesystem::path& data_dir) {
  std::vector<std::filesystem::path> files{data_dir / "meals.yaml"};
  const auto extra = data_dir / "meals.d";
  if (std::filesystem::is_directory(extra)) {
    std::vector<std::filesystem::path> more;
    for (const auto& e : std::filesystem::directory_iterator(extra)) {
      if (e.path().extension() == ".yaml") more.push_back(e.path());
    }
    std::sort(more.begin(), more.end());
    files.insert(files.end(), more.begin(), more.end());
  }
  return files;
}

}  // namespace

class CatalogBuilder {
 public:
  static Catalog build(std::vector<Food> foods, std::vector<Meal> meals, std::string hash) {
    Catalog c;
    c.foods_ = std::move(foods);
    c.meals_ = std::move(meals);
    c.content_hash_ = std::move(hash);
    std::set<std::string> ids;
    for (auto& m : c.meals_) {
      if (!ids.insert(m.id).second) fail(m.source, "id: \"" + m.id + "\" is defined twice");
      auto it = std::find(c.cuisines_.begin(), c.cuisines_.end(), m.cuisine);
      if (it == c.cuisines_.end()) {
        c.cuisines_.push_back(m.cuisine);
        it = c.cuisines_.end() - 1;
      }
      m.cuisine_index = static_cast<int>(it - c.cuisines_.begin());
      if (m.cuisine_index >= kMaxCuisines) {
        fail(m.source, "cuisine: \"" + m.cuisine + "\" exceeds the limit of " + std::to_string(kMaxCuisines) +
                           " cuisines");
      }
    }
    c.meal_features_.assign(c.meals_.size() * kMealStaticFeatures, 0.0F);
    for (std::size_t i = 0; i < c.meals_.size(); ++i) {
      const Meal& m = c.meals_[i];
      const Nutrients& n = m.per_serving;
      float* row = c.meal_features_.data() + i * kMealStaticFeatures;
      const double values[] = {n.kcal / 1000,   n.protein_g / 60, n.fat_g / 60,         n.carbs_g / 120,
                               n.fiber_g / 15,  n.sugar_g / 50,   n.sodium_mg / 2000,   n.sat_fat_g / 20,
                               m.prep_min / 60, m.cost_usd / 10,  m.healthiness};
      for (std::size_t k = 0; k < std::size(values); ++k) row[k] = static_cast<float>(values[k]);
      for (int t = 0; t < kNumTags; ++t) row[11 + t] = static_cast<float>((m.tags >> t) & 1U);
      row[11 + kNumTags + static_cast<int>(m.slot)] = 1.0F;
      row[11 + kNumTags + kNumSlots + m.cuisine_index] = 1.0F;
    }
    return c;
  }
};

Catalog Catalog::load(const std::filesystem::path& data_dir) {
  auto foods = load_foods(data_dir / "foods.csv");
  load_food_tags(data_dir / "food_tags.csv", foods);
  std::string hashed = read_file(data_dir / "foods.csv") + read_file(data_dir / "food_tags.csv");
  std::vector<Meal> meals;
  std::vector<std::string> errors;
  for (const auto& file : meal_files(data_dir)) {
    auto more = parse_meals(file, foods, errors);
    if (!errors.empty()) throw std::invalid_argument(errors.front());
    meals.insert(meals.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    hashed += read_file(file);
  }
  if (meals.empty()) fail((data_dir / "meals.yaml").string(), "the catalog has no meals");
  return CatalogBuilder::build(std::move(foods), std::move(meals), sha256_hex(hashed));
}

std::vector<std::string> Catalog::validate_import(const std::filesystem::path& meals_file) const {
  std::vector<std::string> errors;
  if (!std::filesystem::is_regular_file(meals_file)) return {meals_file.string() + ": cannot open file"};
  auto meals = parse_meals(meals_file, foods_, errors);
  if (!errors.empty()) return errors;
  std::set<std::string> ids;
  for (const auto& m : meals_) ids.insert(m.id);
  for (const auto& m : meals) {
    if (!ids.insert(m.id).second) errors.push_back(m.source + ": id: \"" + m.id + "\" already exists in the catalog");
  }
  if (!errors.empty()) return errors;
  // Run the catalog rules on the new meals alone so that messages point into the file.
  Catalog probe = CatalogBuilder::build(foods_, std::move(meals), "");
  return check_catalog(probe);
}

std::optional<std::size_t> Catalog::find_meal(std::string_view id) const {
  for (std::size_t i = 0; i < meals_.size(); ++i) {
    if (meals_[i].id == id) return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> Catalog::find_food(std::string_view ndb_no) const {
  for (std::size_t i = 0; i < foods_.size(); ++i) {
    if (foods_[i].ndb_no == ndb_no) return i;
  }
  return std::nullopt;
}

Nutrients& Nutrients::add_scaled(const Nutrients& o, double f) {
  kcal += o.kcal * f;
  protein_g += o.protein_g * f;
  fat_g += o.fat_g * f;
  carbs_g += o.carbs_g * f;
  fiber_g += o.fiber_g * f;
  sugar_g += o.sugar_g * f;
  sodium_mg += o.sodium_mg * f;
  sat_fat_g += o.sat_fat_g * f;
  calcium_mg += o.calcium_mg * f;
  iron_mg += o.iron_mg * f;
  potassium_mg += o.potassium_mg * f;
  vit_c_mg += o.vit_c_mg * f;
  return *this;
}

double healthiness(const Nutrients& n) {
  // Per 500 kcal so that portion size does not decide healthiness; each term is clipped
  // to [0, 1] and the weights sum to 1 (docs/mealsim.md, "healthiness").
  const double scale = 500.0 / std::max(n.kcal, 50.0);
  auto clip = [](double x) { return std::clamp(x, 0.0, 1.0); };
  const double fiber = clip(n.fiber_g * scale / 10.0);
  const double protein = clip(n.protein_g * scale / 30.0);
  const double low_sodium = clip(1.0 - (n.sodium_mg * scale - 400.0) / 1200.0);
  const double low_sugar = clip(1.0 - (n.sugar_g * scale - 5.0) / 30.0);
  const double low_sat_fat = clip(1.0 - (n.sat_fat_g * scale - 3.0) / 12.0);
  return 0.25 * fiber + 0.2 * protein + 0.2 * low_sodium + 0.15 * low_sugar + 0.2 * low_sat_fat;
}

std::vector<std::string> check_catalog(const Catalog& catalog, const CatalogCheckLimits& limits) {
  std::vector<std::string> problems;
  const auto& foods = catalog.foods();
  for (const auto& f : foods) {
    // The food-to-origin mapping is ours; SR26's food group is an independent witness.
    const std::string where = "food " + f.ndb_no + " (" + f.description + ")";
    auto group_has = [&](std::string_view word) { return f.food_group.find(word) != std::string::npos; };
    if ((group_has("Beef") || group_has("Pork") || group_has("Lamb")) && f.origin != Origin::meat) {
      problems.push_back(where + ": food group \"" + f.food_group + "\" but origin " +
                         std::string(origin_name(f.origin)));
    }
    if (group_has("Poultry") && f.origin != Origin::poultry && f.origin != Origin::meat) {
      problems.push_back(where + ": food group \"" + f.food_group + "\" but origin " +
                         std::string(origin_name(f.origin)));
    }
    if (group_has("Finfish") && f.origin == Origin::plant) {
      problems.push_back(where + ": food group \"" + f.food_group + "\" but origin plant");
    }
    if (f.origin == Origin::dairy && !has(f.allergens, Allergen::milk)) {
      problems.push_back(where + ": dairy origin without the milk allergen");
    }
    if (f.origin == Origin::egg && !has(f.allergens, Allergen::egg)) {
      problems.push_back(where + ": egg origin without the egg allergen");
    }
    if (f.origin == Origin::fish && !has(f.allergens, Allergen::fish)) {
      problems.push_back(where + ": fish origin without the fish allergen");
    }
    if (f.origin == Origin::shellfish && !has(f.allergens, Allergen::shellfish)) {
      problems.push_back(where + ": shellfish origin without the shellfish allergen");
    }
  }
  std::array<int, kNumSlots> per_slot{};
  for (const auto& m : catalog.meals()) {
    ++per_slot[static_cast<int>(m.slot)];
    const std::string where = m.source + ": meal " + m.id;
    const auto& n = m.per_serving;
    const double atwater = n.atwater_kcal();
    if (atwater <= 0 || std::abs(n.kcal - atwater) / atwater > limits.atwater_tolerance) {
      std::ostringstream msg;
      msg.precision(0);
      msg << std::fixed << where << ": kcal " << n.kcal << " is not within " << limits.atwater_tolerance * 100
          << " % of 4*protein + 4*carbs + 9*fat = " << atwater;
      problems.push_back(msg.str());
    }
    const bool snack = m.slot == Slot::snack;
    const double lo = snack ? limits.snack_kcal_min : limits.main_kcal_min;
    const double hi = snack ? limits.snack_kcal_max : limits.main_kcal_max;
    if (n.kcal < lo || n.kcal > hi) {
      problems.push_back(where + ": " + std::to_string(static_cast<int>(std::lround(n.kcal))) + " kcal per serving is outside " +
                         std::to_string(static_cast<int>(lo)) + ".." + std::to_string(static_cast<int>(hi)) + " for a " +
                         std::string(slot_name(m.slot)));
    }
    if (n.sodium_mg > limits.sodium_mg_max) {
      problems.push_back(where + ": " + std::to_string(static_cast<int>(n.sodium_mg)) + " mg sodium per serving exceeds " +
                         std::to_string(static_cast<int>(limits.sodium_mg_max)));
    }
    for (const auto& ing : m.ingredients) {
      const Origin o = foods[ing.food].origin;
      if (has(m.diets, Diet::vegan) && o != Origin::plant) {
        problems.push_back(where + ": tagged vegan but contains " + foods[ing.food].description);
      }
      if (has(m.diets, Diet::vegetarian) && (o == Origin::meat || o == Origin::poultry || o == Origin::fish ||
                                             o == Origin::shellfish)) {
        problems.push_back(where + ": tagged vegetarian but contains " + foods[ing.food].description);
      }
    }
    if (m.tags == 0) problems.push_back(where + ": has no tags");
  }
  return problems;
}

std::string_view slot_name(Slot slot) { return kSlotNames[static_cast<int>(slot)]; }
std::optional<Slot> parse_slot(std::string_view name) {
  const auto i = index_of(kSlotNames, name);
  return i ? std::optional<Slot>(static_cast<Slot>(*i)) : std::nullopt;
}
std::string_view allergen_name(Allergen a) { return kAllergenNames[static_cast<int>(a)]; }
std::optional<Allergen> parse_allergen(std::string_view name) {
  const auto i = index_of(kAllergenNames, name);
  return i ? std::optional<Allergen>(static_cast<Allergen>(*i)) : std::nullopt;
}
std::string allergen_list(AllergenSet set) {
  std::string out;
  for (int i = 0; i < kNumAllergens; ++i) {
    if ((set >> i) & 1U) out += (out.empty() ? "" : ", ") + std::string(kAllergenNames[i]);
  }
  return out.empty() ? "none" : out;
}
std::optional<Origin> parse_origin(std::string_view name) {
  const auto i = index_of(kOriginNames, name);
  return i ? std::optional<Origin>(static_cast<Origin>(*i)) : std::nullopt;
}
std::string_view origin_name(Origin o) { return kOriginNames[static_cast<int>(o)]; }
std::string_view diet_name(Diet d) { return kDietNames[static_cast<int>(d)]; }
std::optional<Diet> parse_diet(std::string_view name) {
  const auto i = index_of(kDietNames, name);
  return i ? std::optional<Diet>(static_cast<Diet>(*i)) : std::nullopt;
}

}  // namespace forkcast::env
