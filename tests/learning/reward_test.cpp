// The reward from logs (learning/reward.hpp): the nutrition term is MealSim's own, rebuilt
// from nothing but the logged observation and the meal eaten; acceptance and rating terms
// are what the docs say; the other slots carry no nutrition term; bad input names its field.
#include "forkcast/learning/reward.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "forkcast/env/mealsim.hpp"
#include "shipped_world.hpp"

namespace fl = forkcast::learning;
namespace fe = forkcast::env;

namespace {

void expect_invalid(const fe::Catalog& catalog, const fl::LoggedStep& step, const std::string& field) {
  try {
    fl::logged_reward(catalog, {}, step);
    ADD_FAILURE() << "accepted a bad " << field;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(LoggedReward, TheNutritionTermIsMealSimsOwnRebuiltFromTheLoggedObservation) {
  const auto& catalog = forkcast::test::shipped_catalog();
  const forkcast::config::MealSimConfig config;
  fe::MealSim sim(catalog, forkcast::test::shipped_population(), config);
  std::mt19937_64 rng(11);
  int checked = 0, accepted = 0;
  double worst = 0;
  for (std::uint64_t user = 0; user < 40; ++user) {
    sim.reset(1000 + user);
    while (!sim.done()) {
      std::vector<fe::Action> allowed;
      const auto mask = sim.action_mask();
      for (std::size_t m = 0; m < mask.size(); ++m) {
        if (mask[m]) allowed.push_back(static_cast<fe::Action>(m));
      }
      const fe::Action meal = allowed[rng() % allowed.size()];
      const bool last_slot = sim.slot() == fe::Slot::snack;
      const std::vector<float> observation(sim.observation().begin(), sim.observation().end());
      const fe::Nutrients before = sim.intake_today();
      const fe::MealStep step = sim.step(meal);
      if (!last_slot) continue;
      // MealSim's term for the day as it ended: what was eaten before plus this slot's meal.
      fe::Nutrients day = before;
      const double portion = step.accepted ? 1.0 : config.default_portion;
      day.add_scaled(catalog.meals()[static_cast<std::size_t>(step.eaten)].per_serving, portion);
      const double expected = config.reward_nutrition * sim.adherence(day);
      fl::LoggedStep logged;
      logged.observation = observation;
      logged.slot = fe::Slot::snack;
      logged.accepted = step.accepted;
      logged.eaten_meal = step.eaten;
      logged.portion = portion;
      const fl::LoggedReward r = fl::logged_reward(catalog, config, logged);
      ASSERT_TRUE(r.day_end);
      ASSERT_TRUE(r.nutrition_known);
      // The observation holds float32 fractions of the targets: agreement to float precision.
      EXPECT_NEAR(r.nutrition, expected, 1e-4) << "user " << user << " day " << sim.day();
      worst = std::max(worst, std::abs(r.nutrition - expected));
      ++checked;
      accepted += step.accepted ? 1 : 0;
    }
  }
  EXPECT_GE(checked, 100);
  EXPECT_GT(accepted, 10) << "too few accepted snacks to check the accepted meal's portion";
  EXPECT_GT(checked - accepted, 10) << "too few declined snacks to check the default portion";
  RecordProperty("worst_nutrition_difference", std::to_string(worst));
}

TEST(LoggedReward, AcceptanceAndRatingTermsAndNoNutritionBeforeTheDaysEnd) {
  const auto& catalog = forkcast::test::shipped_catalog();
  forkcast::config::MealSimConfig config;
  config.reward_accept = 1.0;
  config.reward_taste = 0.3;
  std::array<float, fe::kObservationSize> observation{};
  fl::LoggedStep step;
  step.observation = observation;
  step.slot = fe::Slot::lunch;
  step.accepted = true;
  step.eaten_meal = 0;
  auto r = fl::logged_reward(catalog, config, step);
  EXPECT_DOUBLE_EQ(r.total, 1.0);
  EXPECT_FALSE(r.day_end);
  EXPECT_FALSE(r.nutrition_known);
  EXPECT_EQ(r.nutrition, 0.0);
  step.rating = 5;
  EXPECT_DOUBLE_EQ(fl::logged_reward(catalog, config, step).total, 1.3);
  step.rating = 1;
  EXPECT_DOUBLE_EQ(fl::logged_reward(catalog, config, step).taste, -0.3);
  step.rating = 3;
  EXPECT_DOUBLE_EQ(fl::logged_reward(catalog, config, step).taste, 0.0);
  step.accepted = false;
  step.rating.reset();
  EXPECT_DOUBLE_EQ(fl::logged_reward(catalog, config, step).total, 0.0);

  // A snack whose eaten meal is unknown: the day ends, but its total is not known.
  step.slot = fe::Slot::snack;
  step.eaten_meal.reset();
  r = fl::logged_reward(catalog, config, step);
  EXPECT_TRUE(r.day_end);
  EXPECT_FALSE(r.nutrition_known);
  EXPECT_EQ(r.nutrition, 0.0);
}

TEST(LoggedReward, BadInputNamesTheField) {
  const auto& catalog = forkcast::test::shipped_catalog();
  std::array<float, fe::kObservationSize> observation{};
  std::vector<float> short_observation(10);
  fl::LoggedStep step;
  step.observation = short_observation;
  expect_invalid(catalog, step, "observation");
  step.observation = observation;
  step.rating = 6;
  expect_invalid(catalog, step, "rating");
  step.rating = 0;
  expect_invalid(catalog, step, "rating");
  step.rating.reset();
  step.eaten_meal = static_cast<std::int32_t>(catalog.size());
  expect_invalid(catalog, step, "eaten_meal");
  step.eaten_meal = -1;
  expect_invalid(catalog, step, "eaten_meal");
  step.eaten_meal = 0;
  step.portion = 0;
  expect_invalid(catalog, step, "portion");
  step.portion = std::nan("");
  expect_invalid(catalog, step, "portion");
}
