#include "forkcast/env/catalog.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

namespace fe = forkcast::env;
namespace fs = std::filesystem;

namespace {

const fs::path kMini = FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini";
const fs::path kData = FORKCAST_SOURCE_DIR "/data";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A scratch copy of the mini catalog in which one file can be replaced.
fs::path scratch_copy(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("forkcast_catalog_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto* f : {"foods.csv", "food_tags.csv", "meals.yaml"}) fs::copy_file(kMini / f, dir / f);
  return dir;
}

void replace_in(const fs::path& file, const std::string& from, const std::string& to) {
  auto text = slurp(file);
  const auto pos = text.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  text.replace(pos, from.size(), to);
  std::ofstream(file) << text;
}

std::string load_error(const fs::path& dir) {
  try {
    fe::Catalog::load(dir);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no error>";
}

const fe::Meal& meal(const fe::Catalog& c, const std::string& id) { return c.meals()[c.find_meal(id).value()]; }

}  // namespace

TEST(Catalog, NutritionIsComputedFromFoodsTimesGrams) {
  const auto c = fe::Catalog::load(kMini);
  const auto& m = meal(c, "chicken_rice_broccoli");
  EXPECT_NEAR(m.per_serving.kcal, 165 * 1.5 + 130 * 1.8 + 34 * 1.0, 1e-9);
  EXPECT_NEAR(m.per_serving.protein_g, 31.02 * 1.5 + 2.69 * 1.8 + 2.82, 1e-9);
  EXPECT_NEAR(m.per_serving.sodium_mg, 74 * 1.5 + 1 * 1.8 + 33, 1e-9);
  EXPECT_EQ(c.cuisines().size(), 2U);
  EXPECT_EQ(c.meal_features().size(), c.size() * fe::kMealStaticFeatures);
}

TEST(Catalog, AllergensAndDietsAreDerivedFromIngredients) {
  const auto c = fe::Catalog::load(kMini);
  const auto& cheesy = meal(c, "cheesy_broccoli");
  EXPECT_TRUE(fe::has(cheesy.allergens, fe::Allergen::milk));
  EXPECT_TRUE(fe::has(cheesy.diets, fe::Diet::vegetarian));
  EXPECT_FALSE(fe::has(cheesy.diets, fe::Diet::vegan));
  EXPECT_FALSE(fe::has(cheesy.diets, fe::Diet::dairy_free));
  const auto& chicken = meal(c, "chicken_rice_broccoli");
  EXPECT_FALSE(fe::has(chicken.diets, fe::Diet::vegetarian));
  EXPECT_FALSE(fe::has(chicken.diets, fe::Diet::pescatarian));
  EXPECT_TRUE(fe::has(chicken.diets, fe::Diet::gluten_free));
  EXPECT_TRUE(fe::has(chicken.diets, fe::Diet::dairy_free));
  const auto& almonds = meal(c, "almonds");
  EXPECT_EQ(almonds.allergens, 1U << static_cast<int>(fe::Allergen::tree_nuts));
  EXPECT_TRUE(fe::has(almonds.diets, fe::Diet::vegan));
  EXPECT_EQ(fe::allergen_list(almonds.allergens), "tree_nuts");
}

TEST(CatalogErrors, UnknownNdbNamesFileLineAndNumber) {
  const auto dir = scratch_copy("ndb");
  replace_in(dir / "meals.yaml", "{ndb: \"16057\", g: 200}", "{ndb: \"99999\", g: 200}");
  const auto msg = load_error(dir);
  EXPECT_NE(msg.find("meals.yaml:22: ndb: \"99999\" is not in foods.csv"), std::string::npos) << msg;
}

TEST(CatalogErrors, BadFieldsAreNamed) {
  auto dir = scratch_copy("slot");
  replace_in(dir / "meals.yaml", "slot: lunch", "slot: brunch");
  EXPECT_NE(load_error(dir).find("slot: \"brunch\" is not one of breakfast, lunch, dinner, snack"), std::string::npos);
  dir = scratch_copy("tag");
  replace_in(dir / "meals.yaml", "[crunchy, quick]", "[crunchy, yummy]");
  EXPECT_NE(load_error(dir).find("tags: \"yummy\" is not a known tag"), std::string::npos);
  dir = scratch_copy("grams");
  replace_in(dir / "meals.yaml", "g: 30}", "g: -5}");
  EXPECT_NE(load_error(dir).find("g: \"-5\" is not a weight in grams"), std::string::npos);
  dir = scratch_copy("dup");
  replace_in(dir / "meals.yaml", "id: almonds", "id: cheesy_broccoli");
  EXPECT_NE(load_error(dir).find("id: \"cheesy_broccoli\" is defined twice"), std::string::npos);
  dir = scratch_copy("field");
  replace_in(dir / "meals.yaml", "prep_min: 1\n", "prep_min: 1\n    spicyness: 3\n");
  EXPECT_NE(load_error(dir).find("unknown field \"spicyness\""), std::string::npos);
}

TEST(CatalogErrors, MalformedFilesGiveLineNumbers) {
  auto dir = scratch_copy("yaml");
  replace_in(dir / "meals.yaml", "tags: [cheesy, warm]", "tags: [cheesy, warm");
  EXPECT_NE(load_error(dir).find("malformed YAML"), std::string::npos);
  dir = scratch_copy("csv");
  replace_in(dir / "foods.csv", ",403,", ",four hundred,");
  EXPECT_NE(load_error(dir).find("foods.csv:2: kcal: \"four hundred\" is not a non-negative number"), std::string::npos);
  dir = scratch_copy("tags_missing");
  replace_in(dir / "food_tags.csv", "12061,plant,tree_nuts\n", "");
  EXPECT_NE(load_error(dir).find("food 12061"), std::string::npos);
  dir = scratch_copy("origin");
  replace_in(dir / "food_tags.csv", "05064,poultry,", "05064,chicken,");
  EXPECT_NE(load_error(dir).find("origin: \"chicken\""), std::string::npos);
}

TEST(CatalogCheck, FlagsAtwaterAndOriginInconsistencies) {
  auto dir = scratch_copy("atwater");
  replace_in(dir / "foods.csv", ",579,21.15", ",1579,21.15");  // almonds with wrong kcal
  auto problems = fe::check_catalog(fe::Catalog::load(dir));
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("meal almonds: kcal 474 is not within 15 % of 4*protein + 4*carbs + 9*fat"),
            std::string::npos)
      << problems[0];
  dir = scratch_copy("dairy");
  replace_in(dir / "food_tags.csv", "01009,dairy,milk", "01009,dairy,");
  problems = fe::check_catalog(fe::Catalog::load(dir));
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("dairy origin without the milk allergen"), std::string::npos);
  dir = scratch_copy("poultry_as_plant");
  replace_in(dir / "food_tags.csv", "05064,poultry,", "05064,plant,");
  problems = fe::check_catalog(fe::Catalog::load(dir));
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("Poultry Products"), std::string::npos);
  EXPECT_TRUE(fe::check_catalog(fe::Catalog::load(kMini)).empty());
}

TEST(CatalogImport, ReportsEveryProblemWithLinesAndChangesNothing) {
  const auto c = fe::Catalog::load(kMini);
  const auto file = fs::temp_directory_path() / "forkcast_import_bad.yaml";
  std::ofstream(file) << "meals:\n"
                         "  - id: almonds\n"
                         "    name: Again\n    slot: snack\n    cuisine: american\n    prep_min: 1\n"
                         "    cost_usd: 1\n    tags: [crunchy]\n    ingredients:\n      - {ndb: \"12061\", g: 30}\n"
                         "  - id: mystery\n"
                         "    name: Mystery\n    slot: supper\n    cuisine: american\n    prep_min: 1\n"
                         "    cost_usd: 1\n    tags: [crunchy]\n    ingredients:\n      - {ndb: \"00000\", g: 30}\n";
  const auto problems = c.validate_import(file);
  ASSERT_EQ(problems.size(), 2U);
  EXPECT_NE(problems[0].find(":13: slot: \"supper\""), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find(":19: ndb: \"00000\""), std::string::npos) << problems[1];
  const auto good = fs::temp_directory_path() / "forkcast_import_good.yaml";
  std::ofstream(good) << "meals:\n  - id: rice_and_chickpeas\n    name: Rice and chickpeas\n    slot: lunch\n"
                         "    cuisine: indian\n    prep_min: 15\n    cost_usd: 1.5\n    tags: [savory]\n"
                         "    ingredients:\n      - {ndb: \"20045\", g: 200}\n      - {ndb: \"16057\", g: 150}\n";
  EXPECT_TRUE(c.validate_import(good).empty());
  EXPECT_EQ(fe::Catalog::load(kMini).size(), 4U);  // nothing changed
}

// Found by fuzz_catalog: a list or a mapping where a single value belongs (a tag, an ndb
// number, grams, a field name) made yaml-cpp throw out of validate_import.
TEST(CatalogImport, AListOrMappingWhereAValueBelongsIsReportedNotThrown) {
  const auto c = fe::Catalog::load(kMini);
  const auto file = fs::temp_directory_path() / "forkcast_import_shapes.yaml";
  std::ofstream(file) << "meals:\n"
                         "  - id: odd\n"
                         "    name: Odd\n    slot: snack\n    cuisine: american\n    prep_min: 1\n"
                         "    cost_usd: 1\n    tags: [[crunchy]]\n    ingredients:\n"
                         "      - {ndb: [\"12061\"], g: 30}\n      - {ndb: \"12061\", g: : M}\n"
                         "    {a: b}: 1\n";
  std::vector<std::string> problems;
  ASSERT_NO_THROW(problems = c.validate_import(file));
  ASSERT_EQ(problems.size(), 4U) << (problems.empty() ? "" : problems[0]);
  EXPECT_NE(problems[0].find(":12: a field name must be a single word"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find(":8: tags: \"\" is not a known tag"), std::string::npos) << problems[1];
  EXPECT_NE(problems[2].find(":10: ndb: \"\" is not in foods.csv"), std::string::npos) << problems[2];
  EXPECT_NE(problems[3].find(":11: g: \"\" is not a weight"), std::string::npos) << problems[3];
}

TEST(ShippedCatalog, MeetsTheIssueSizeAndPassesCheck) {
  const auto c = fe::Catalog::load(kData);
  std::map<fe::Slot, int> by_slot;
  for (const auto& m : c.meals()) ++by_slot[m.slot];
  EXPECT_GE(c.size(), 240U);
  EXPECT_GE(by_slot[fe::Slot::breakfast], 50);
  EXPECT_GE(by_slot[fe::Slot::lunch], 70);
  EXPECT_GE(by_slot[fe::Slot::dinner], 70);
  EXPECT_GE(by_slot[fe::Slot::snack], 50);
  EXPECT_GE(c.cuisines().size(), 10U);
  const auto problems = fe::check_catalog(c);
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems.front();
  EXPECT_EQ(c.content_hash().size(), 64U);
}

// The food -> allergen/origin mapping, checked against the USDA descriptions: a second,
// independent reading of the same facts.
TEST(ShippedCatalog, AllergenMappingAgreesWithFoodDescriptions) {
  const auto c = fe::Catalog::load(kData);
  struct Rule {
    std::regex pattern;
    fe::Allergen allergen;
  };
  const std::vector<Rule> rules = {
      {std::regex("^(Cheese|Milk|Yogurt|Butter|Cream)\\b", std::regex::icase), fe::Allergen::milk},
      {std::regex("^Egg,", std::regex::icase), fe::Allergen::egg},
      {std::regex("^Fish,", std::regex::icase), fe::Allergen::fish},
      {std::regex("^Crustaceans,", std::regex::icase), fe::Allergen::shellfish},
      {std::regex("^(Peanuts|Peanut butter)", std::regex::icase), fe::Allergen::peanuts},
      {std::regex("^Nuts, (almonds|walnuts|cashew|pecans|pistachio|hazelnuts)", std::regex::icase), fe::Allergen::tree_nuts},
      {std::regex("^(Wheat flour|Bread, (white|whole-wheat)|Pasta, cooked|Spaghetti|Couscous|Bulgur)", std::regex::icase),
       fe::Allergen::gluten},
      {std::regex("^(Tofu|Soy sauce|Miso|Edamame|Soymilk)", std::regex::icase), fe::Allergen::soy},
      {std::regex("^(Seeds, sesame|Tahini)", std::regex::icase), fe::Allergen::sesame},
  };
  int checked = 0;
  for (const auto& f : c.foods()) {
    for (const auto& r : rules) {
      if (std::regex_search(f.description, r.pattern)) {
        ++checked;
        EXPECT_TRUE(fe::has(f.allergens, r.allergen))
            << f.ndb_no << " " << f.description << " should carry " << fe::allergen_name(r.allergen);
      }
    }
    if (f.food_group.find("Finfish") != std::string::npos) {
      EXPECT_NE(f.origin, fe::Origin::plant) << f.description;
    }
    if (f.food_group.find("Poultry") != std::string::npos) {
      EXPECT_EQ(f.origin, fe::Origin::poultry) << f.description;
    }
  }
  EXPECT_GE(checked, 10) << "the rules should cover a good part of the shipped foods";
}
