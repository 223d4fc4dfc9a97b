// The grounding check and the template advice: pure functions, no model.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "forkcast/advice/facts.hpp"
#include "forkcast/advice/from_catalog.hpp"

namespace {

using forkcast::advice::AdviceFacts;
using forkcast::advice::check_grounding;
using forkcast::advice::GroundingRule;

AdviceFacts lunch() {
  AdviceFacts f;
  f.meal_id = "chicken_burrito_bowl";
  f.meal_name = "Chicken burrito bowl";
  f.slot = "lunch";
  f.per_serving = {612.4, 38.6, 70.2, 18.5, 9.4, 1120.0};
  f.day_kcal_target = 2000;
  f.day_protein_target_g = 70;
  f.eaten_kcal = 450;
  f.eaten_protein_g = 20;
  f.goal = "lose";
  f.excluded = {"milk", "peanuts"};
  f.side_name = "Apple slices";
  f.side_kcal = 95.2;
  return f;
}

TEST(AdviceFacts, NumbersAreRoundedOnceFromTheUnroundedFacts) {
  const auto x = forkcast::advice::fact_numbers(lunch());
  EXPECT_EQ(x.kcal, 612);
  EXPECT_EQ(x.protein_g, 39);  // 38.6 rounds up
  EXPECT_EQ(x.fat_g, 19);      // 18.5 rounds half away from zero
  EXPECT_EQ(x.left_kcal, 1550);
  EXPECT_EQ(x.after_kcal, 938);  // 2000 - 450 - 612.4 = 937.6
  EXPECT_EQ(x.over_kcal, 0);
  EXPECT_EQ(x.pct_day, 31);         // 30.6 %
  EXPECT_EQ(x.protein_left_g, 11);  // 70 - 20 - 38.6 = 11.4
}

TEST(AdviceFacts, OverTheDayIsReportedAsOverNotNegative) {
  auto f = lunch();
  f.eaten_kcal = 1800;
  const auto x = forkcast::advice::fact_numbers(f);
  EXPECT_EQ(x.after_kcal, 0);
  EXPECT_EQ(x.over_kcal, 412);
}

TEST(AdviceFacts, ValidationNamesTheFieldAndValue) {
  auto f = lunch();
  f.slot = "brunch";
  try {
    forkcast::advice::validate_facts(f);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("slot: 'brunch'"), std::string::npos) << e.what();
  }
  f = lunch();
  f.day_kcal_target = 0;
  EXPECT_THROW(forkcast::advice::validate_facts(f), std::invalid_argument);
  f = lunch();
  f.excluded = {"nuts"};
  EXPECT_THROW(forkcast::advice::validate_facts(f), std::invalid_argument);
  EXPECT_NO_THROW(forkcast::advice::validate_facts(lunch()));
}

TEST(AdviceGrounding, TemplatePassesForEveryGoalAndBudget) {
  for (const char* goal : {"lose", "maintain", "gain"}) {
    for (double eaten : {0.0, 1000.0, 1900.0}) {
      auto f = lunch();
      f.goal = goal;
      f.eaten_kcal = eaten;
      const auto text = forkcast::advice::template_advice(f);
      const auto r = check_grounding(text, f);
      EXPECT_TRUE(r.ok()) << text << " -> " << r.detail;
    }
  }
}

TEST(AdviceGrounding, AcceptsCopiedFactsIncludingOneDecimal) {
  const auto f = lunch();
  EXPECT_TRUE(
      check_grounding(
          "The Chicken burrito bowl brings 612 kcal and 38.6 g protein, 31% of your day.", f)
          .ok());
}

TEST(AdviceGrounding, RejectsANumberNoFactHas) {
  const auto r = check_grounding("The Chicken burrito bowl has 650 kcal.", lunch());
  EXPECT_EQ(r.rule, GroundingRule::unknown_number);
  EXPECT_NE(r.detail.find("650"), std::string::npos);
  // Wrong rounding is a wrong number too: 38.6 g is 39, not 38.
  EXPECT_EQ(check_grounding("Chicken burrito bowl: 38 g protein.", lunch()).rule,
            GroundingRule::unknown_number);
}

TEST(AdviceGrounding, RequiresTheMealNameUnlessCheckingAPartialSentence) {
  const auto f = lunch();
  EXPECT_EQ(check_grounding("A fine lunch with 612 kcal.", f).rule, GroundingRule::meal_not_named);
  forkcast::advice::GroundingOptions partial;
  partial.require_meal_name = false;
  EXPECT_TRUE(check_grounding("A fine lunch with 612 kcal.", f, partial).ok());
}

TEST(AdviceGrounding, RejectsExcludedAllergenWordsAndPlurals) {
  const auto f = lunch();  // excludes milk and peanuts
  EXPECT_EQ(check_grounding("Chicken burrito bowl, add some cheese.", f).rule,
            GroundingRule::excluded_ingredient);
  EXPECT_EQ(check_grounding("Chicken burrito bowl with peanuts on top.", f).rule,
            GroundingRule::excluded_ingredient);
  EXPECT_TRUE(check_grounding("Chicken burrito bowl with salsa on top.", f).ok());
}

// Review, 2026-12-01: only a word equal to a listed food (or its plural) was caught, so
// compounds ("cornbread", "creamy") and dishes the catalog itself names ("pita") passed; and
// "2,000" was read as 2 and 000, each of which can match some fact.
TEST(AdviceGrounding, CompoundsAndDishesOfAnExcludedFoodAreCaught) {
  auto f = lunch();  // excludes milk and peanuts
  f.excluded = {"milk", "gluten", "egg"};
  for (const char* text : {"Chicken burrito bowl, with cornbread on the side.", "Chicken burrito bowl, or a pita.",
                           "Chicken burrito bowl with a creamy dressing.", "Chicken burrito bowl and a milkshake.",
                           "Chicken burrito bowl; skip the cheesecake.", "Chicken burrito bowl, then eggnog."}) {
    EXPECT_EQ(check_grounding(text, f).rule, GroundingRule::excluded_ingredient) << text;
  }
  for (const char* text : {"Chicken burrito bowl with butternut squash.", "Chicken burrito bowl with grilled eggplant.",
                           "Chicken burrito bowl with buckwheat."}) {
    EXPECT_TRUE(check_grounding(text, f).ok()) << text << ": " << check_grounding(text, f).detail;
  }
}

TEST(AdviceGrounding, ThousandsSeparatorsMakeOneNumber) {
  const auto f = lunch();
  const auto x = forkcast::advice::fact_numbers(f);
  const auto r = check_grounding("Chicken burrito bowl fits your 2,000 kcal day.", f);
  if (x.day_kcal != 2000) {
    EXPECT_EQ(r.rule, GroundingRule::unknown_number) << r.detail;
    EXPECT_NE(r.detail.find("2000"), std::string::npos) << r.detail;
  }
  EXPECT_EQ(check_grounding("Chicken burrito bowl fits your 2 000 kcal day.", f).rule, GroundingRule::unknown_number);
  if (x.day_kcal >= 1000) {
    const std::string day = std::to_string(x.day_kcal);
    const std::string with_comma = day.substr(0, day.size() - 3) + "," + day.substr(day.size() - 3);
    EXPECT_TRUE(check_grounding("Chicken burrito bowl fits your " + with_comma + " kcal day.", f).ok()) << with_comma;
  }
}

TEST(AdviceGrounding, DietExcludesMeatWordsButNotTheMealsOwnName) {
  auto f = lunch();
  f.diet = "vegetarian";
  f.meal_name = "Veggie burger with sweet potato fries";
  f.excluded.clear();
  EXPECT_TRUE(check_grounding("Veggie burger with sweet potato fries fits well.", f).ok());
  EXPECT_EQ(check_grounding("Veggie burger with sweet potato fries, or try chicken.", f).rule,
            GroundingRule::excluded_ingredient);
}

TEST(AdviceGrounding, DigitsInsideTheMealNameAreNotJudged) {
  auto f = lunch();
  f.meal_name = "7-layer bean dip";
  EXPECT_TRUE(check_grounding("7-layer bean dip gives 612 kcal.", f).ok());
}

TEST(AdviceGrounding, EmptyTextIsRejected) {
  EXPECT_EQ(check_grounding("  \n", lunch()).rule, GroundingRule::empty);
}

TEST(AdviceFromCatalog, EveryCatalogMealGivesValidGroundedTemplateAdvice) {
  const auto catalog =
      forkcast::env::Catalog::load(std::filesystem::path(FORKCAST_SOURCE_DIR) / "data");
  forkcast::env::UserProfile profile;
  profile.diet = forkcast::env::DietPreference::vegetarian;
  profile.excluded = 1U << static_cast<int>(forkcast::env::Allergen::peanuts);
  int checked = 0;
  for (const auto& meal : catalog.meals()) {
    if (!profile.allows(meal)) continue;
    const forkcast::advice::DayIntake eaten{500, 20};
    const auto* side = forkcast::advice::pick_side(catalog, meal, profile, eaten);
    const auto f = forkcast::advice::facts_from_catalog(catalog, meal, profile, eaten, side);
    ASSERT_NO_THROW(forkcast::advice::validate_facts(f)) << meal.id;
    const auto text = forkcast::advice::template_advice(f);
    const auto r = check_grounding(text, f);
    EXPECT_TRUE(r.ok()) << meal.id << ": " << text << " -> " << r.detail;
    if (side != nullptr) {
      EXPECT_TRUE(profile.allows(*side));
    }
    ++checked;
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
