// Tests of env/population.hpp: loading errors that name line and field, optional fields'
// defaults, sampling as a pure function of the generator, archetype shares and profile
// ranges over many draws (fixed seeds, tolerances several standard errors wide),
// validate_profile's ranges, and the enum names.
#include "forkcast/env/population.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "error_message.hpp"
#include "shipped_world.hpp"

namespace fe = forkcast::env;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }
const fe::Population& population() { return forkcast::test::shipped_population(); }

// The error loading `yaml` gives (one file per process: ctest runs tests side by side).
std::string population_error(const std::string& yaml) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("forkcast_bad_population_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << yaml;
  const std::string error = forkcast::test::error_message([&] { fe::Population::load(path); });
  std::filesystem::remove(path);
  return error;
}

// One archetype with every required field, `extra` lines appended (four-space indent).
std::string archetype_yaml(const std::string& extra = "") {
  return "archetypes:\n"
         "  - name: x\n"
         "    share: 1\n"
         "    female_p: 0.5\n"
         "    age: [20, 30]\n"
         "    height_cm: [160, 170]\n"
         "    weight_kg: [60, 70]\n"
         "    budget_usd: [3, 5]\n"
         "    cook_time_min: [10, 20]\n"
         "    activity: [light]\n"
         "    goal: lose\n"
         "    taste: {}\n" +
         extra;
}

// archetype_yaml() with the line starting "    <key>:" replaced by `line` (or removed if empty).
std::string with_line(const std::string& key, const std::string& line) {
  std::string yaml = archetype_yaml();
  const std::string start = "    " + key + ":";
  const auto at = yaml.find(start);
  const auto end = yaml.find('\n', at);
  yaml.replace(at, end - at + 1, line.empty() ? "" : line + "\n");
  return yaml;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool same_user(const fe::User& a, const fe::User& b) {
  const auto& p = a.profile;
  const auto& q = b.profile;
  return a.archetype == b.archetype && p.sex == q.sex && p.age == q.age && p.height_cm == q.height_cm &&
         p.weight_kg == q.weight_kg && p.activity == q.activity && p.excluded == q.excluded &&
         p.budget_usd == q.budget_usd && p.cook_time_min == q.cook_time_min && a.taste.cuisine == b.taste.cuisine &&
         a.taste.tag == b.taste.tag && a.taste.health_orientation == b.taste.health_orientation &&
         a.taste.boredom_sensitivity == b.taste.boredom_sensitivity && a.taste.default_meals == b.taste.default_meals;
}

std::string validation_error(const fe::UserProfile& p) {
  return forkcast::test::error_message([&] { fe::validate_profile(p); });
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Loading

TEST(Population, ShippedFileHasTheIssueArchetypes) {
  EXPECT_GE(population().archetypes().size(), 8U);
}

TEST(Population, MalformedFilesNameLineAndField) {
  EXPECT_NE(population_error("archetypes:\n  - name: x\n    share: 1\n").find(":2: female_p: missing"),
            std::string::npos);
  const std::string base =
      "archetypes:\n  - name: x\n    share: 1\n    female_p: 0.5\n    age: [20, 30]\n    height_cm: [160, 170]\n"
      "    weight_kg: [60, 70]\n    budget_usd: [3, 5]\n    cook_time_min: [10, 20]\n";
  EXPECT_NE(population_error(base + "    activity: [lazy]\n    goal: lose\n    taste: {}\n")
                .find(":10: activity: \"lazy\" is not one of"),
            std::string::npos);
  EXPECT_NE(population_error(base + "    activity: [light]\n    goal: shred\n    taste: {}\n").find("goal: \"shred\""),
            std::string::npos);
  EXPECT_NE(population_error("archetypes: [\n").find("malformed YAML"), std::string::npos);
  EXPECT_NE(population_error(base + "    activity: [light]\n    goal: lose\n    taste: {}\n    age2: 3\n")
                .find("age2: unknown field"),
            std::string::npos);
  // Review, 2026-12-01: taste values were read unchecked; NaN or an infinity made every
  // utility and reward of the simulator NaN, and a negative noise is no standard deviation.
  const std::string with_taste = base + "    activity: [light]\n    goal: lose\n    taste:\n";
  EXPECT_NE(population_error(with_taste + "      cuisines: {italian: .nan}\n").find("taste.cuisines.italian: .nan is out of range"),
            std::string::npos);
  EXPECT_NE(population_error(with_taste + "      tags: {spicy: .inf}\n").find("taste.tags.spicy: .inf is out of range"),
            std::string::npos);
  EXPECT_NE(population_error(with_taste + "      noise: -0.3\n").find("taste.noise: -0.3 is out of range"),
            std::string::npos);
}

TEST(Population, LoadingErrorsNameLineFieldAndValue) {
  ASSERT_EQ(population_error(archetype_yaml()), "<no error>");  // the base itself is valid
  EXPECT_TRUE(contains(population_error("version: 1\n"), ":1: expected a mapping with a non-empty `archetypes:` list"));
  EXPECT_TRUE(contains(population_error("archetypes: []\n"), "non-empty `archetypes:` list"));
  EXPECT_TRUE(contains(population_error(with_line("share", "    share: 0")), ":3: share: 0 is out of range"));
  EXPECT_TRUE(contains(population_error(with_line("female_p", "    female_p: half")),
                       ":4: female_p: \"half\" is not a number"));
  EXPECT_TRUE(contains(population_error(with_line("female_p", "    female_p: 1.5")), "female_p: 1.5 is out of range"));
  EXPECT_TRUE(contains(population_error(with_line("age", "    age: 25")), ":5: age: must be a [low, high] pair"));
  EXPECT_TRUE(contains(population_error(with_line("age", "    age: [30, 20]")), "age: [30, 20] must satisfy"));
  EXPECT_TRUE(contains(population_error(with_line("age", "    age: [10, 20]")), "age: [10, 20] must satisfy"));
  EXPECT_TRUE(contains(population_error(with_line("height_cm", "")), "height_cm: must be a [low, high] pair"));
  EXPECT_TRUE(contains(population_error(with_line("activity", "    activity: []")), "activity: must be a non-empty list"));
  EXPECT_TRUE(contains(population_error(with_line("goal", "")), "goal: missing"));
  EXPECT_TRUE(contains(population_error(archetype_yaml("    diet: keto\n")), "diet: \"keto\" is not one of"));
  EXPECT_TRUE(contains(population_error(archetype_yaml("    allergen_p: {nuts: 0.1}\n")),
                       "allergen_p: \"nuts\" is not an allergen"));
  EXPECT_TRUE(contains(population_error(archetype_yaml("    allergen_p: {milk: 1.5}\n")),
                       "allergen_p.milk: 1.5 is not in 0..1"));
  EXPECT_TRUE(contains(population_error(archetype_yaml("    sodium_limit_mg: 9000\n")),
                       ":13: sodium_limit_mg: 9000 is out of range"));
  EXPECT_TRUE(contains(population_error(archetype_yaml("    protein_g_per_kg: .nan\n")), "protein_g_per_kg: .nan is out of range"));
  EXPECT_TRUE(contains(population_error(with_line("taste", "")), "taste: missing mapping"));
  EXPECT_TRUE(contains(population_error(with_line("taste", "    taste: {tags: {glowing: 1}}")),
                       "taste.tags: \"glowing\" is not a known tag"));
  std::string renamed = archetype_yaml();
  renamed.replace(renamed.find("- name:"), 7, "- nom:");
  EXPECT_TRUE(contains(population_error(renamed), ":2: nom: unknown field"));
  try {
    fe::Population::load("/nonexistent/forkcast/population.yaml");
    ADD_FAILURE() << "a missing file loaded";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "/nonexistent/forkcast/population.yaml: cannot open file")) << e.what();
  }
}

TEST(Population, OptionalFieldsTakeTheirDocumentedDefaults) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("forkcast_minimal_population_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << archetype_yaml();
  const auto loaded = fe::Population::load(path);
  std::filesystem::remove(path);
  ASSERT_EQ(loaded.archetypes().size(), 1U);
  const fe::Archetype& a = loaded.archetypes()[0];
  EXPECT_EQ(a.name, "x");
  EXPECT_EQ(a.diet, fe::DietPreference::none);
  EXPECT_EQ(a.goal, fe::Goal::lose);
  EXPECT_EQ(a.protein_g_per_kg, 1.0);
  EXPECT_EQ(a.sodium_limit_mg, 2300.0);
  EXPECT_EQ(a.health_orientation, 0.3);
  EXPECT_EQ(a.boredom_sensitivity, 1.0);
  EXPECT_EQ(a.taste_noise, 0.3);
  for (const double p : a.allergen_p) EXPECT_EQ(p, 0.0);
  EXPECT_EQ(a.age.lo, 20.0);
  EXPECT_EQ(a.age.hi, 30.0);
}

// ------------------------------------------------------------------------------------------------
// Sampling

TEST(Population, SamplingIsAPureFunctionOfTheGenerator) {
  std::mt19937_64 a(7), b(7), c(8);
  for (int i = 0; i < 20; ++i) {
    const auto ua = population().sample(catalog(), a);
    const auto ub = population().sample(catalog(), b);
    EXPECT_TRUE(same_user(ua, ub)) << i;
  }
  std::mt19937_64 d(7);
  int same = 0;
  for (int i = 0; i < 20; ++i) same += same_user(population().sample(catalog(), c), population().sample(catalog(), d)) ? 1 : 0;
  EXPECT_EQ(same, 0) << "another seed, other users";
  // Consecutive draws from one generator are different users.
  std::mt19937_64 e(9);
  EXPECT_FALSE(same_user(population().sample(catalog(), e), population().sample(catalog(), e)));
}

TEST(Population, ArchetypesAreDrawnInProportionToTheirShares) {
  const auto& archetypes = population().archetypes();
  double total = 0;
  for (const auto& a : archetypes) total += a.share;
  std::vector<double> counts(archetypes.size(), 0.0);
  std::mt19937_64 rng(2024);
  const int n = 20000;  // standard error of a share <= 0.0036
  for (int i = 0; i < n; ++i) counts[static_cast<std::size_t>(population().sample(catalog(), rng).archetype)] += 1.0;
  for (std::size_t k = 0; k < archetypes.size(); ++k) {
    EXPECT_NEAR(counts[k] / n, archetypes[k].share / total, 0.015) << archetypes[k].name;
  }

  // Shares are relative weights: 1 and 3 make a quarter and three quarters.
  std::vector<fe::Archetype> two{archetypes[0], archetypes[1]};
  two[0].share = 1;
  two[1].share = 3;
  const fe::Population weighted(two);
  double first = 0;
  std::mt19937_64 rng2(2025);
  for (int i = 0; i < 8000; ++i) first += weighted.sample(catalog(), rng2).archetype == 0 ? 1.0 : 0.0;
  EXPECT_NEAR(first / 8000, 0.25, 0.02);  // standard error 0.005
}

TEST(Population, SampledProfilesStayInsideTheirArchetype) {
  const auto& archetypes = population().archetypes();
  std::mt19937_64 rng(31);
  for (std::size_t k = 0; k < archetypes.size(); ++k) {
    const fe::Archetype& a = archetypes[k];
    double female = 0;
    std::array<double, fe::kNumAllergens> excluded{};
    const int n = 1000;
    for (int i = 0; i < n; ++i) {
      const fe::User u = population().sample_archetype(catalog(), static_cast<int>(k), rng);
      const fe::UserProfile& p = u.profile;
      ASSERT_EQ(u.archetype, static_cast<int>(k));
      const double shift = p.sex == fe::Sex::male ? 6.0 : -6.0;
      ASSERT_GE(p.age, std::lround(a.age.lo)) << a.name;
      ASSERT_LE(p.age, std::lround(a.age.hi)) << a.name;
      ASSERT_GE(p.height_cm, a.height_cm.lo + shift) << a.name;
      ASSERT_LE(p.height_cm, a.height_cm.hi + shift) << a.name;
      ASSERT_GE(p.weight_kg, a.weight_kg.lo) << a.name;
      ASSERT_LE(p.weight_kg, a.weight_kg.hi) << a.name;
      ASSERT_GE(p.budget_usd, a.budget_usd.lo) << a.name;
      ASSERT_LE(p.budget_usd, a.budget_usd.hi) << a.name;
      ASSERT_GE(p.cook_time_min, a.cook_time_min.lo) << a.name;
      ASSERT_LE(p.cook_time_min, a.cook_time_min.hi) << a.name;
      ASSERT_NE(std::find(a.activities.begin(), a.activities.end(), p.activity), a.activities.end()) << a.name;
      ASSERT_EQ(p.goal, a.goal);
      ASSERT_EQ(p.diet, a.diet);
      ASSERT_EQ(p.sodium_limit_mg, a.sodium_limit_mg);
      ASSERT_EQ(p.protein_g_per_kg, a.protein_g_per_kg);
      // What the archetype draws, it also explains; and the service would accept the profile.
      ASSERT_GT(fe::profile_likelihood(a, p), 0.0) << a.name;
      ASSERT_NO_THROW(fe::validate_profile(p)) << a.name;
      // The default meals (what the user eats on declining) are allowed and of their slot.
      for (int s = 0; s < fe::kNumSlots; ++s) {
        for (const std::int32_t m : u.taste.default_meals[static_cast<std::size_t>(s)]) {
          const fe::Meal& meal = catalog().meals()[static_cast<std::size_t>(m)];
          ASSERT_TRUE(p.allows(meal)) << a.name << ": " << meal.id;
          ASSERT_EQ(static_cast<int>(meal.slot), s) << a.name << ": " << meal.id;
        }
      }
      female += p.sex == fe::Sex::female ? 1.0 : 0.0;
      for (int al = 0; al < fe::kNumAllergens; ++al) excluded[static_cast<std::size_t>(al)] += (p.excluded >> al) & 1U;
    }
    EXPECT_NEAR(female / n, a.female_p, 0.065) << a.name;  // standard error <= 0.016
    for (int al = 0; al < fe::kNumAllergens; ++al) {
      const double q = a.allergen_p[static_cast<std::size_t>(al)];
      EXPECT_NEAR(excluded[static_cast<std::size_t>(al)] / n, q, 0.045) << a.name << " allergen " << al;
      if (q == 0.0) {
        EXPECT_EQ(excluded[static_cast<std::size_t>(al)], 0.0) << a.name << " allergen " << al;
      }
      if (q == 1.0) {
        EXPECT_EQ(excluded[static_cast<std::size_t>(al)], n) << a.name << " allergen " << al;
      }
    }
  }
}

TEST(Population, BadArchetypeIndicesAndEmptyPopulationsAreRefused) {
  std::mt19937_64 rng(1);
  const int n = static_cast<int>(population().archetypes().size());
  EXPECT_THROW(population().sample_archetype(catalog(), n, rng), std::invalid_argument);
  EXPECT_THROW(population().sample_archetype(catalog(), -1, rng), std::invalid_argument);
  EXPECT_THROW(fe::Population(std::vector<fe::Archetype>{}), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------------
// validate_profile and the names

TEST(ValidateProfile, AcceptsEveryBoundAndNamesTheFirstFieldOutside) {
  EXPECT_EQ(validation_error(fe::UserProfile{}), "<no error>");
  fe::UserProfile low, high;
  low.age = 13, high.age = 120;
  low.height_cm = 100, high.height_cm = 250;
  low.weight_kg = 30, high.weight_kg = 300;
  low.budget_usd = 1, high.budget_usd = 100;
  low.cook_time_min = 5, high.cook_time_min = 240;
  low.sodium_limit_mg = 500, high.sodium_limit_mg = 6000;
  low.protein_g_per_kg = 0.5, high.protein_g_per_kg = 3.0;
  EXPECT_EQ(validation_error(low), "<no error>");
  EXPECT_EQ(validation_error(high), "<no error>");

  const auto with = [](auto edit) {
    fe::UserProfile p;
    edit(p);
    return validation_error(p);
  };
  EXPECT_EQ(with([](fe::UserProfile& p) { p.age = 12; }), "age: 12 is outside 13..120");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.age = 121; }), "age: 121 is outside 13..120");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.height_cm = 250.5; }), "height_cm: 250.5 is outside 100..250");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.weight_kg = 29.9; }), "weight_kg: 29.9 is outside 30..300");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.budget_usd = 0.5; }), "budget_usd: 0.5 is outside 1..100");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.cook_time_min = 241; }), "cook_time_min: 241 is outside 5..240");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.sodium_limit_mg = 499; }), "sodium_limit_mg: 499 is outside 500..6000");
  EXPECT_EQ(with([](fe::UserProfile& p) { p.protein_g_per_kg = 3.5; }), "protein_g_per_kg: 3.5 is outside 0.5..3");
  // The first field in declaration order is the one named.
  EXPECT_EQ(with([](fe::UserProfile& p) {
              p.weight_kg = 1;
              p.budget_usd = 1000;
            }),
            "weight_kg: 1 is outside 30..300");
}

TEST(ValidateProfile, NaNAndInfinityAreOutsideEveryRange) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::pair<std::string, double fe::UserProfile::*>> fields = {
      {"height_cm", &fe::UserProfile::height_cm},         {"weight_kg", &fe::UserProfile::weight_kg},
      {"budget_usd", &fe::UserProfile::budget_usd},       {"cook_time_min", &fe::UserProfile::cook_time_min},
      {"sodium_limit_mg", &fe::UserProfile::sodium_limit_mg}, {"protein_g_per_kg", &fe::UserProfile::protein_g_per_kg}};
  for (const auto& [name, field] : fields) {
    for (const double bad : {nan, inf, -inf}) {
      fe::UserProfile p;
      p.*field = bad;
      const std::string error = validation_error(p);
      EXPECT_EQ(error.rfind(name + ": ", 0), 0U) << error;
      EXPECT_TRUE(contains(error, " is outside ")) << error;
    }
  }
}

TEST(Names, SexActivityGoalAndDiet) {
  EXPECT_EQ(fe::sex_name(fe::Sex::female), "female");
  EXPECT_EQ(fe::sex_name(fe::Sex::male), "male");
  EXPECT_EQ(fe::activity_name(fe::Activity::very_active), "very_active");
  EXPECT_EQ(fe::goal_name(fe::Goal::maintain), "maintain");
  EXPECT_EQ(fe::diet_preference_name(fe::DietPreference::pescatarian), "pescatarian");
  const double factors[] = {1.2, 1.375, 1.55, 1.725, 1.9};
  for (int a = 0; a < 5; ++a) EXPECT_EQ(fe::activity_factor(static_cast<fe::Activity>(a)), factors[a]);
}
