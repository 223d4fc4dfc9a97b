// The simulated user population: archetypes from data/population.yaml, each a
// distribution over an observable profile (what an app would ask a user) and a hidden
// taste (what only the simulator knows). Sampling is a pure function of the catalog,
// the population and an explicit generator.
//
// Daily targets: Mifflin-St Jeor BMR (kcal) = 10 weight_kg + 6.25 height_cm - 5 age
// + 5 (male) or - 161 (female); times the activity factor; goal lose -500 kcal,
// gain +300 kcal (never below 1200 kcal); protein_g = protein_g_per_kg x weight_kg.
//
// Errors: a malformed population file throws std::invalid_argument "file:line: field: ...".
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/env/catalog.hpp"

namespace forkcast::env {

enum class Sex : std::uint8_t { female, male };
enum class Activity : std::uint8_t { sedentary, light, moderate, active, very_active };
enum class Goal : std::uint8_t { lose, maintain, gain };
enum class DietPreference : std::uint8_t { none, vegetarian, vegan, pescatarian };

double activity_factor(Activity activity);  // 1.2, 1.375, 1.55, 1.725, 1.9
std::string_view sex_name(Sex sex);  // "female", "male"
std::string_view activity_name(Activity activity);
std::string_view goal_name(Goal goal);
std::string_view diet_preference_name(DietPreference diet);

// What the user tells the app. Everything in it may be shown to agents.
struct UserProfile {
  Sex sex = Sex::female;
  int age = 35;
  double height_cm = 170;
  double weight_kg = 70;
  Activity activity = Activity::light;
  Goal goal = Goal::maintain;
  DietPreference diet = DietPreference::none;
  AllergenSet excluded = 0;      // allergens (gluten for gluten-free) the user must never get
  double budget_usd = 8;         // per meal
  double cook_time_min = 30;     // tolerated preparation time for a main meal
  double sodium_limit_mg = 2300;
  double protein_g_per_kg = 1.0;

  double bmr_kcal() const;
  double kcal_target() const;
  double protein_target_g() const { return protein_g_per_kg * weight_kg; }
  // True when `meal` respects the diet and contains none of the excluded allergens.
  bool allows(const Meal& meal) const;
};

// The values a profile's numbers may take: the one rule for the REST API (docs/api.md), the
// CLI's profile files (`forkcast advise --user-profile`) and anything else that reads a
// profile a person wrote. Closed ranges.
struct ProfileRange {
  std::string_view field;
  double min, max;
};
namespace profile_limits {
inline constexpr ProfileRange age{"age", 13, 120};
inline constexpr ProfileRange height_cm{"height_cm", 100, 250};
inline constexpr ProfileRange weight_kg{"weight_kg", 30, 300};
inline constexpr ProfileRange budget_usd{"budget_usd", 1, 100};
inline constexpr ProfileRange cook_time_min{"cook_time_min", 5, 240};
inline constexpr ProfileRange sodium_limit_mg{"sodium_limit_mg", 500, 6000};
inline constexpr ProfileRange protein_g_per_kg{"protein_g_per_kg", 0.5, 3.0};
}  // namespace profile_limits

// Checks every number of `profile` against profile_limits. Throws std::invalid_argument
// "<field>: <value> is outside <min>..<max>" for the first one out of range (NaN included).
void validate_profile(const UserProfile& profile);

// What only the simulator knows.
struct HiddenTaste {
  std::array<double, kMaxCuisines> cuisine{};  // affinity per catalog cuisine index
  std::array<double, kNumTags> tag{};          // affinity per tag
  double health_orientation = 0.3;             // weight of healthiness in taste
  double boredom_sensitivity = 1.0;
  // Up to three meals per slot the user cooks for themselves when they decline.
  std::array<std::array<std::int32_t, 3>, kNumSlots> default_meals{};
};

struct User {
  int archetype = 0;
  UserProfile profile;
  HiddenTaste taste;
};

struct Range {
  double lo = 0, hi = 0;
};

struct Archetype {
  std::string name;
  double share = 1;  // relative weight in the population
  double female_p = 0.5;
  Range age, height_cm, weight_kg, budget_usd, cook_time_min;
  std::vector<Activity> activities;
  Goal goal = Goal::maintain;
  DietPreference diet = DietPreference::none;
  std::array<double, kNumAllergens> allergen_p{};  // probability of each exclusion
  double protein_g_per_kg = 1.0;
  double sodium_limit_mg = 2300;
  std::vector<std::pair<std::string, double>> cuisine_taste;  // by cuisine name
  std::array<double, kNumTags> tag_taste{};
  double taste_noise = 0.3;
  double health_orientation = 0.3;
  double boredom_sensitivity = 1.0;
};

class Population {
 public:
  static Population load(const std::filesystem::path& population_yaml);
  explicit Population(std::vector<Archetype> archetypes);

  const std::vector<Archetype>& archetypes() const noexcept { return archetypes_; }

  // Draws one user: archetype by share, then profile and taste. The user's default
  // meals are chosen among the catalog meals they allow, favouring taste over health.
  User sample(const Catalog& catalog, std::mt19937_64& rng) const;
  // The same, for a given archetype index.
  User sample_archetype(const Catalog& catalog, int archetype, std::mt19937_64& rng) const;

 private:
  std::vector<Archetype> archetypes_;
  std::vector<double> cumulative_share_;
};

// Probability (density for the continuous fields) that `archetype` generates `profile`
// as sample_archetype draws it: sex, age, height, weight, activity, goal, diet, allergen
// exclusions, budget, cook time, sodium limit and protein per kg. 0 when the profile is
// outside what the archetype can draw. Times the archetype's share, it is the posterior
// weight of the archetype given the profile (what an app may know of a new user).
double profile_likelihood(const Archetype& archetype, const UserProfile& profile);

// Taste of `meal` for `user`: cuisine affinity + mean tag affinity + health orientation
// x (healthiness - 0.5) x 2. Shared by the simulator and the oracle baselines.
double taste_of(const User& user, const Meal& meal);

// Draws the user's default meals (what they eat when they decline) from their taste and
// profile: per slot, the three allowed meals ranking highest by taste - 0.8 x healthiness
// + U(-0.5, 0.5). Population::sample_archetype ends with it; a belief over a user's taste
// (BeliefPolicy) calls it for hypothetical users. Throws std::invalid_argument, naming
// the archetype, when a slot has no allowed meal.
void draw_default_meals(const Catalog& catalog, User& user, std::mt19937_64& rng, std::string_view archetype_name);

}  // namespace forkcast::env
