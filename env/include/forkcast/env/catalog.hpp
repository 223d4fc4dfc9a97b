// The meal catalog: USDA SR26 foods (data/foods.csv, nutrients per 100 g), the
// project's mapping of foods to origin and allergens (data/food_tags.csv), and recipes
// (data/meals.yaml plus any imported data/meals.d/*.yaml, grams per food per serving).
//
// Nutrition per serving is computed from foods x grams; allergens and diet tags are
// derived from the ingredients. Nothing nutritional is typed into meals.yaml.
//
// Ownership: a Catalog is an immutable value after load; share it by const reference
// (MealSim keeps a pointer to it, so it must outlive the simulators built on it).
// Errors: malformed or inconsistent files throw std::invalid_argument whose message
// starts with "file:line: " and names the field and the bad value.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/config/slots.hpp"

namespace forkcast::env {

enum class Slot : std::uint8_t { breakfast = 0, lunch = 1, dinner = 2, snack = 3 };
inline constexpr int kNumSlots = config::kNumMealSlots;
// The slots' names in Slot order (config/slots.hpp: one table for every module).
inline constexpr const auto& kSlotNames = config::kMealSlotNames;
static_assert(static_cast<int>(Slot::snack) + 1 == kNumSlots);
std::string_view slot_name(Slot slot);
std::optional<Slot> parse_slot(std::string_view name);

// The nine allergens of the issue; a meal's allergens are the union of its foods'.
enum class Allergen : std::uint8_t { milk, egg, fish, shellfish, tree_nuts, peanuts, gluten, soy, sesame };
inline constexpr int kNumAllergens = 9;
using AllergenSet = std::uint16_t;  // bit i = Allergen(i)
std::string_view allergen_name(Allergen allergen);
std::optional<Allergen> parse_allergen(std::string_view name);
std::string allergen_list(AllergenSet set);  // "milk, gluten" or "none"

// Where a food comes from; decides the diet tags.
enum class Origin : std::uint8_t { plant, dairy, egg, meat, poultry, fish, shellfish, honey };
std::optional<Origin> parse_origin(std::string_view name);
std::string_view origin_name(Origin origin);

enum class Diet : std::uint8_t { vegetarian, vegan, pescatarian, gluten_free, dairy_free };
inline constexpr int kNumDiets = 5;
using DietSet = std::uint8_t;  // bit i = Diet(i): the diets the meal is compatible with
std::string_view diet_name(Diet diet);
std::optional<Diet> parse_diet(std::string_view name);
inline constexpr bool has(DietSet set, Diet d) { return (set >> static_cast<int>(d)) & 1U; }
inline constexpr bool has(AllergenSet set, Allergen a) { return (set >> static_cast<int>(a)) & 1U; }

// Flavour and feature tags a meal may carry (meals.yaml `tags`).
inline constexpr std::array<std::string_view, 20> kTagNames = {
    "sweet", "savory", "spicy", "tangy",  "creamy", "crunchy", "fresh",  "hearty", "comfort",     "light",
    "warm",  "cold",   "fried", "grilled", "baked", "raw",     "whole_grain", "leafy", "cheesy", "quick"};
inline constexpr int kNumTags = static_cast<int>(kTagNames.size());

struct Nutrients {
  double kcal = 0, protein_g = 0, fat_g = 0, carbs_g = 0, fiber_g = 0, sugar_g = 0;
  double sodium_mg = 0, sat_fat_g = 0, calcium_mg = 0, iron_mg = 0, potassium_mg = 0, vit_c_mg = 0;

  Nutrients& add_scaled(const Nutrients& other, double factor);
  // kcal from the Atwater general factors, 4 protein + 4 carbs + 9 fat.
  double atwater_kcal() const { return 4.0 * protein_g + 4.0 * carbs_g + 9.0 * fat_g; }
};

struct Food {
  std::string ndb_no;  // 5 digits, SR26 NDB number
  std::string description;
  std::string food_group;
  Nutrients per_100g;
  Origin origin = Origin::plant;
  AllergenSet allergens = 0;
};

struct Ingredient {
  std::size_t food = 0;  // index into Catalog::foods()
  double grams = 0;
};

struct Meal {
  std::string id;
  std::string name;
  Slot slot = Slot::lunch;
  std::string cuisine;
  int cuisine_index = 0;  // into Catalog::cuisines()
  double prep_min = 0;
  double cost_usd = 0;
  std::uint32_t tags = 0;  // bit i = kTagNames[i]
  std::vector<Ingredient> ingredients;
  Nutrients per_serving;  // computed
  AllergenSet allergens = 0;  // derived
  DietSet diets = 0;          // derived
  double healthiness = 0;     // healthiness(per_serving), cached
  std::string source;         // "file:line" of its definition
};

// Number of normalised static features per meal in Catalog::meal_features().
// Layout: [kcal/1000, protein_g/60, fat_g/60, carbs_g/120, fiber_g/15, sugar_g/50,
//          sodium_mg/2000, sat_fat_g/20, prep_min/60, cost_usd/10, healthiness,
//          20 tags (0/1), 4 slot one-hot, cuisine one-hot (kMaxCuisines)].
inline constexpr int kMaxCuisines = 16;
inline constexpr int kMealStaticFeatures = 11 + kNumTags + kNumSlots + kMaxCuisines;

class Catalog {
 public:
  // Loads foods.csv, food_tags.csv, meals.yaml and every meals.d/*.yaml (sorted by name)
  // from `data_dir`.
  static Catalog load(const std::filesystem::path& data_dir);

  const std::vector<Food>& foods() const noexcept { return foods_; }
  const std::vector<Meal>& meals() const noexcept { return meals_; }
  const std::vector<std::string>& cuisines() const noexcept { return cuisines_; }
  std::size_t size() const noexcept { return meals_.size(); }
  std::optional<std::size_t> find_meal(std::string_view id) const;
  std::optional<std::size_t> find_food(std::string_view ndb_no) const;

  // Row-major [size() x kMealStaticFeatures] float32, normalised as documented above.
  const std::vector<float>& meal_features() const noexcept { return meal_features_; }
  // sha256 (hex) over the catalog files' bytes: models record it to detect a changed catalog.
  const std::string& content_hash() const noexcept { return content_hash_; }

  // Parses a user's meals file (same format as meals.yaml) against this catalog's foods,
  // without changing anything. Returns every problem found, each "file:line: message";
  // empty means the file would import cleanly.
  std::vector<std::string> validate_import(const std::filesystem::path& meals_file) const;

 private:
  std::vector<Food> foods_;
  std::vector<Meal> meals_;
  std::vector<std::string> cuisines_;
  std::vector<float> meal_features_;
  std::string content_hash_;
  friend class CatalogBuilder;
};

// A 0..1 score of how healthy a serving is (fibre, protein density, sodium, sugar,
// saturated fat); documented in docs/mealsim.md, used by the simulator and features.
double healthiness(const Nutrients& per_serving);

// The rules of `forkcast catalog check`. Each returned string is "where: problem".
struct CatalogCheckLimits {
  double atwater_tolerance = 0.15;  // |kcal - atwater| / atwater
  double main_kcal_min = 100, main_kcal_max = 900;
  double snack_kcal_min = 30, snack_kcal_max = 600;
  double sodium_mg_max = 3000;
};
std::vector<std::string> check_catalog(const Catalog& catalog, const CatalogCheckLimits& limits = {});

}  // namespace forkcast::env
