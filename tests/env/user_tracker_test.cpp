// Tests of env/user_tracker.hpp: what record_offer, record_eaten and advance_slot do to the
// TrackerState, meal recency, the observation written for a given slot (layout of
// env/observation.hpp), saving and restoring the state, and the errors the header names.
#include "forkcast/env/user_tracker.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "error_message.hpp"
#include "shipped_world.hpp"

namespace fe = forkcast::env;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }

// The first catalog meal for which `pred` holds.
std::int32_t meal_where(const std::function<bool(const fe::Meal&)>& pred) {
  for (std::size_t m = 0; m < catalog().size(); ++m) {
    if (pred(catalog().meals()[m])) return static_cast<std::int32_t>(m);
  }
  ADD_FAILURE() << "no such meal in the shipped catalog";
  return 0;
}

// A meal with at least two tags, and another of a different cuisine.
std::int32_t tagged_meal() {
  return meal_where([](const fe::Meal& m) { return __builtin_popcount(m.tags) >= 2; });
}
std::int32_t other_cuisine(std::int32_t meal) {
  const int cuisine = catalog().meals()[static_cast<std::size_t>(meal)].cuisine_index;
  return meal_where([&](const fe::Meal& m) { return m.cuisine_index != cuisine; });
}

fe::UserProfile profile() {
  return {.sex = fe::Sex::male, .age = 40, .height_cm = 180, .weight_kg = 81, .activity = fe::Activity::moderate,
          .goal = fe::Goal::gain, .diet = fe::DietPreference::pescatarian, .budget_usd = 12, .cook_time_min = 45,
          .sodium_limit_mg = 2000, .protein_g_per_kg = 1.5};
}

fe::UserTracker started() {
  fe::UserTracker t(catalog(), {});
  t.start(profile());
  return t;
}

std::vector<float> observation(const fe::UserTracker& t, fe::Slot slot) {
  std::vector<float> o(fe::kObservationSize);
  t.write_observation(o, slot);
  return o;
}

using forkcast::test::error_message;

}  // namespace

TEST(UserTracker, StartsAtBreakfastOfDayZeroRememberingNothing) {
  const auto t = started();
  const auto& s = t.state();
  EXPECT_EQ(s.step, 0);
  EXPECT_EQ(t.slot(), fe::Slot::breakfast);
  EXPECT_EQ(t.day_of_week(), 0);
  EXPECT_DOUBLE_EQ(s.hunger, fe::kInitialHunger);
  EXPECT_EQ(s.intake_today.kcal, 0.0);
  EXPECT_EQ(s.offered_decayed, 0.0);
  EXPECT_EQ(s.decline_streak, 0);
  ASSERT_EQ(s.last_eaten.size(), catalog().size());
  for (const auto step : s.last_eaten) EXPECT_EQ(step, fe::kNeverEaten);
  EXPECT_DOUBLE_EQ(t.kcal_target(), profile().kcal_target());
  EXPECT_DOUBLE_EQ(t.protein_target_g(), 1.5 * 81);
}

TEST(UserTracker, RecordOfferKeepsDecayedAcceptanceByCuisineAndTag) {
  auto t = started();
  const std::int32_t meal = tagged_meal();
  const fe::Meal& m = catalog().meals()[static_cast<std::size_t>(meal)];
  const auto c = static_cast<std::size_t>(m.cuisine_index);
  const double hunger = t.state().hunger;

  t.record_offer(meal, true);
  const auto& s = t.state();
  EXPECT_DOUBLE_EQ(s.offered_decayed, 1.0);
  EXPECT_DOUBLE_EQ(s.accepted_decayed, 1.0);
  EXPECT_DOUBLE_EQ(s.cuisine_offered[c], 1.0);
  EXPECT_DOUBLE_EQ(s.cuisine_accepted[c], 1.0);
  for (std::size_t tag = 0; tag < fe::kNumTags; ++tag) {
    const double expected = (m.tags >> tag) & 1U ? 1.0 : 0.0;
    EXPECT_DOUBLE_EQ(s.tag_offered[tag], expected) << fe::kTagNames[tag];
    EXPECT_DOUBLE_EQ(s.tag_accepted[tag], expected) << fe::kTagNames[tag];
  }

  // Two declines: every statistic decays by kRateDecay per suggestion, the streak counts.
  const std::int32_t other = other_cuisine(meal);
  const auto oc = static_cast<std::size_t>(catalog().meals()[static_cast<std::size_t>(other)].cuisine_index);
  t.record_offer(other, false);
  t.record_offer(other, false);
  const double d = fe::kRateDecay;
  EXPECT_DOUBLE_EQ(s.offered_decayed, (1.0 * d + 1.0) * d + 1.0);
  EXPECT_DOUBLE_EQ(s.accepted_decayed, d * d);
  EXPECT_DOUBLE_EQ(s.cuisine_offered[c], d * d);
  EXPECT_DOUBLE_EQ(s.cuisine_accepted[c], d * d);
  EXPECT_DOUBLE_EQ(s.cuisine_offered[oc], d + 1.0);
  EXPECT_DOUBLE_EQ(s.cuisine_accepted[oc], 0.0);
  EXPECT_EQ(s.decline_streak, 2);
  t.record_offer(meal, true);
  EXPECT_EQ(s.decline_streak, 0);

  // An offer is not a meal: intake, hunger and the meal memory stay.
  EXPECT_EQ(s.intake_today.kcal, 0.0);
  EXPECT_EQ(s.hunger, hunger);
  EXPECT_EQ(s.last_eaten[static_cast<std::size_t>(meal)], fe::kNeverEaten);
  EXPECT_EQ(s.cuisine_memory[c], 0.0);
}

TEST(UserTracker, RecordEatenAddsIntakeLowersHungerAndRemembersTheMeal) {
  auto t = started();
  t.advance_slot();  // lunch
  const std::int32_t meal = tagged_meal();
  const fe::Meal& m = catalog().meals()[static_cast<std::size_t>(meal)];
  const auto c = static_cast<std::size_t>(m.cuisine_index);
  const double hunger = t.state().hunger;
  const forkcast::config::MealSimConfig config;

  t.record_eaten(meal, 0.5);
  const auto& s = t.state();
  EXPECT_NEAR(s.intake_today.kcal, 0.5 * m.per_serving.kcal, 1e-9);
  EXPECT_NEAR(s.intake_today.protein_g, 0.5 * m.per_serving.protein_g, 1e-9);
  EXPECT_NEAR(s.intake_today.sodium_mg, 0.5 * m.per_serving.sodium_mg, 1e-9);
  // Hunger falls by 0.6 x the kcal eaten over the slot's share of the day's target.
  const double drop = 0.6 * 0.5 * m.per_serving.kcal / (fe::kSlotKcalShare[1] * t.kcal_target());
  EXPECT_NEAR(s.hunger, std::max(0.0, hunger - drop), 1e-12);
  EXPECT_EQ(s.last_eaten[static_cast<std::size_t>(meal)], 1);  // the step it was eaten at
  EXPECT_DOUBLE_EQ(s.cuisine_memory[c], 1.0);

  // The cuisine memory decays per meal eaten; a big meal cannot push hunger below 0.
  const std::int32_t other = other_cuisine(meal);
  const auto oc = static_cast<std::size_t>(catalog().meals()[static_cast<std::size_t>(other)].cuisine_index);
  t.record_eaten(other, 20.0);
  EXPECT_DOUBLE_EQ(s.cuisine_memory[c], config.cuisine_memory_decay);
  EXPECT_DOUBLE_EQ(s.cuisine_memory[oc], 1.0);
  EXPECT_EQ(s.hunger, 0.0);
}

TEST(UserTracker, AdvanceSlotRaisesHungerAndANewDayRestartsTheIntake) {
  auto t = started();
  const std::int32_t meal = tagged_meal();
  t.record_eaten(meal, 1.0);
  const double kcal = t.state().intake_today.kcal;
  ASSERT_GT(kcal, 0.0);
  for (int slot = 1; slot < fe::kNumSlots; ++slot) {
    const double before = t.state().hunger;
    t.advance_slot();
    EXPECT_EQ(t.slot(), static_cast<fe::Slot>(slot));
    EXPECT_EQ(t.state().step, slot);
    EXPECT_NEAR(t.state().hunger, std::min(1.0, before + fe::kHungerRise[static_cast<std::size_t>(slot)]), 1e-12);
    EXPECT_EQ(t.state().intake_today.kcal, kcal) << "the day's intake stays until the day ends";
  }
  t.advance_slot();  // from the snack to the next breakfast
  EXPECT_EQ(t.slot(), fe::Slot::breakfast);
  EXPECT_EQ(t.day_of_week(), 1);
  EXPECT_EQ(t.state().intake_today.kcal, 0.0);
  // Hunger saturates at 1.
  for (int i = 0; i < 12; ++i) t.advance_slot();
  EXPECT_EQ(t.state().hunger, 1.0);
  EXPECT_EQ(t.day_of_week(), 4);
}

TEST(UserTracker, MealRecencyDecaysPerSlotSinceTheMealWasEaten) {
  auto t = started();
  const forkcast::config::MealSimConfig config;
  const std::int32_t meal = tagged_meal();
  EXPECT_EQ(t.meal_recency(meal), 0.0);  // never eaten
  t.record_eaten(meal, 1.0);
  EXPECT_DOUBLE_EQ(t.meal_recency(meal), 1.0);
  for (int k = 1; k <= 3; ++k) {
    t.advance_slot();
    EXPECT_NEAR(t.meal_recency(meal), std::pow(config.meal_memory_decay, k), 1e-12) << k;
  }
  // Older than a week (beyond the table the simulator uses): the same law.
  fe::TrackerState s = t.state();
  s.step = 200;
  s.last_eaten[static_cast<std::size_t>(meal)] = 200 - 45;
  t.restore(profile(), s);
  EXPECT_NEAR(t.meal_recency(meal), std::pow(config.meal_memory_decay, 45), 1e-15);
  s.last_eaten[static_cast<std::size_t>(meal)] = 200 - fe::kStepsPerWeek;
  t.restore(profile(), s);
  EXPECT_NEAR(t.meal_recency(meal), std::pow(config.meal_memory_decay, fe::kStepsPerWeek), 1e-15);
  // The decay is the config's.
  forkcast::config::MealSimConfig slow;
  slow.meal_memory_decay = 0.5;
  fe::UserTracker half(catalog(), slow);
  half.restore(profile(), s);
  EXPECT_NEAR(half.meal_recency(meal), std::pow(0.5, fe::kStepsPerWeek), 1e-20);
}

TEST(UserTracker, ObservationFollowsTheLayout) {
  auto t = started();
  t.advance_slot();
  t.advance_slot();  // dinner of day 0
  const std::int32_t meal = tagged_meal();
  const fe::Meal& m = catalog().meals()[static_cast<std::size_t>(meal)];
  t.record_offer(meal, true);
  t.record_eaten(meal, 1.0);
  const auto o = observation(t, t.slot());
  const auto& s = t.state();
  for (int k = 0; k < fe::kNumSlots; ++k) EXPECT_EQ(o[static_cast<std::size_t>(fe::kObsSlot + k)], k == 2 ? 1.0F : 0.0F);
  EXPECT_EQ(o[fe::kObsDay], 0.0F);
  EXPECT_FLOAT_EQ(o[fe::kObsHunger], static_cast<float>(s.hunger));
  EXPECT_FLOAT_EQ(o[fe::kObsKcal], static_cast<float>(m.per_serving.kcal / t.kcal_target()));
  EXPECT_FLOAT_EQ(o[fe::kObsProtein], static_cast<float>(m.per_serving.protein_g / t.protein_target_g()));
  EXPECT_FLOAT_EQ(o[fe::kObsSodium], static_cast<float>(m.per_serving.sodium_mg / 2000.0));
  EXPECT_FLOAT_EQ(o[fe::kObsKcalLeft], static_cast<float>((t.kcal_target() - m.per_serving.kcal) / t.kcal_target()));
  EXPECT_FLOAT_EQ(o[fe::kObsAcceptRate], 1.5F / 2.0F);  // (accepted + 0.5) / (offered + 1)
  const auto c = static_cast<std::size_t>(m.cuisine_index);
  EXPECT_EQ(o[fe::kObsCuisineMemory + c], 1.0F);
  EXPECT_FLOAT_EQ(o[fe::kObsCuisineAccept + c], 0.75F);
  EXPECT_FLOAT_EQ(o[fe::kObsCuisineAccept + (c + 1) % fe::kMaxCuisines], 0.5F);  // the prior
  // Profile: male, age / 100, BMI / 40, (activity - 1.2) / 0.7, goal and diet one-hots.
  EXPECT_EQ(o[fe::kObsProfile], 0.0F);
  EXPECT_FLOAT_EQ(o[fe::kObsProfile + 1], 0.40F);
  EXPECT_FLOAT_EQ(o[fe::kObsProfile + 2], static_cast<float>(81.0 / (1.8 * 1.8) / 40.0));
  EXPECT_FLOAT_EQ(o[fe::kObsProfile + 3], static_cast<float>((1.55 - 1.2) / 0.7));
  for (int g = 0; g < fe::kNumGoals; ++g) EXPECT_EQ(o[static_cast<std::size_t>(fe::kObsGoal + g)], g == 2 ? 1.0F : 0.0F);
  for (int d = 0; d < fe::kNumDietPreferences; ++d) {
    EXPECT_EQ(o[static_cast<std::size_t>(fe::kObsDiet + d)], d == 3 ? 1.0F : 0.0F);
  }
  EXPECT_FLOAT_EQ(o[fe::kObsBudget], 12.0F / 15.0F);
  EXPECT_FLOAT_EQ(o[fe::kObsCookTime], 45.0F / 60.0F);
  EXPECT_FLOAT_EQ(o[fe::kObsKcalTarget], static_cast<float>(t.kcal_target() / 3000.0));
  EXPECT_FLOAT_EQ(o[fe::kObsSodiumLimit], static_cast<float>(2000.0 / 2300.0));
  for (std::size_t tag = 0; tag < fe::kNumTags; ++tag) {
    EXPECT_FLOAT_EQ(o[fe::kObsTagAccept + tag], (m.tags >> tag) & 1U ? 0.75F : 0.5F) << fe::kTagNames[tag];
  }
}

TEST(UserTracker, AnEarlierSlotChangesOnlyTheSlotOneHot) {
  auto t = started();
  t.record_eaten(tagged_meal(), 1.0);
  t.advance_slot();
  t.advance_slot();  // dinner
  t.record_offer(tagged_meal(), false);
  const auto own = observation(t, t.slot());
  for (int asked = 0; asked < fe::kNumSlots; ++asked) {
    const auto o = observation(t, static_cast<fe::Slot>(asked));
    for (int i = 0; i < fe::kObservationSize; ++i) {
      const auto k = static_cast<std::size_t>(i);
      if (i >= fe::kObsSlot && i < fe::kObsSlot + fe::kNumSlots) {
        EXPECT_EQ(o[k], i - fe::kObsSlot == asked ? 1.0F : 0.0F) << "slot asked " << asked << ", feature " << i;
      } else {
        EXPECT_EQ(o[k], own[k]) << "slot asked " << asked << ", feature " << i;
      }
    }
  }
  EXPECT_EQ(t.slot(), fe::Slot::dinner);  // writing never moves the tracker
}

TEST(UserTracker, RestoredStateContinuesAsTheOriginal) {
  auto a = started();
  const std::int32_t meal = tagged_meal();
  a.record_offer(meal, true);
  a.record_eaten(meal, 1.25);
  a.advance_slot();
  fe::UserTracker b(catalog(), {});
  b.restore(profile(), a.state());
  EXPECT_EQ(observation(b, b.slot()), observation(a, a.slot()));
  const std::int32_t other = other_cuisine(meal);
  for (auto* t : {&a, &b}) {
    t->record_offer(other, false);
    t->record_eaten(other, 1.0);
    t->advance_slot();
    t->advance_slot();
  }
  EXPECT_EQ(observation(b, b.slot()), observation(a, a.slot()));
  EXPECT_EQ(b.meal_recency(meal), a.meal_recency(meal));
  // start() forgets everything again.
  b.start(profile());
  EXPECT_EQ(b.state().step, 0);
  EXPECT_EQ(b.state().last_eaten[static_cast<std::size_t>(meal)], fe::kNeverEaten);
}

TEST(UserTracker, SetProfileChangesTargetsAndKeepsTheHistory) {
  auto t = started();
  t.record_eaten(tagged_meal(), 1.0);
  t.advance_slot();
  const auto history = t.state();
  fe::UserProfile lighter = profile();
  lighter.weight_kg = 60;
  t.set_profile(lighter);
  EXPECT_DOUBLE_EQ(t.kcal_target(), lighter.kcal_target());
  EXPECT_DOUBLE_EQ(t.protein_target_g(), 1.5 * 60);
  EXPECT_EQ(t.state().step, history.step);
  EXPECT_EQ(t.state().intake_today.kcal, history.intake_today.kcal);
  EXPECT_EQ(t.state().last_eaten, history.last_eaten);
}

TEST(UserTracker, BadMealsPortionsBuffersAndStatesAreRefused) {
  auto t = started();
  const auto bad_index = static_cast<std::int32_t>(catalog().size());
  const auto before = t.state();
  const std::string offered = error_message([&] { t.record_offer(bad_index, true); });
  EXPECT_NE(offered.find("offered meal: meal index " + std::to_string(bad_index)), std::string::npos) << offered;
  EXPECT_NE(error_message([&] { t.record_offer(-1, false); }).find("meal index -1"), std::string::npos);
  EXPECT_NE(error_message([&] { t.record_eaten(bad_index, 1.0); }).find("eaten meal: meal index"), std::string::npos);
  for (const double portion : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), 0.0, -1.0}) {
    EXPECT_NE(error_message([&] { t.record_eaten(0, portion); }).find("portion: "), std::string::npos) << portion;
  }
  // Refused calls leave the state as it was.
  EXPECT_EQ(t.state().offered_decayed, before.offered_decayed);
  EXPECT_EQ(t.state().decline_streak, before.decline_streak);
  EXPECT_EQ(t.state().intake_today.kcal, 0.0);
  EXPECT_EQ(t.state().last_eaten, before.last_eaten);

  std::vector<float> short_buffer(fe::kObservationSize - 1);
  EXPECT_NE(error_message([&] { t.write_observation(short_buffer, fe::Slot::lunch); }).find("observation buffer: 82 floats, need 83"),
            std::string::npos);

  fe::TrackerState wrong = t.state();
  wrong.last_eaten.pop_back();
  EXPECT_NE(error_message([&] { t.restore(profile(), wrong); }).find("TrackerState.last_eaten"), std::string::npos);
  fe::TrackerState negative = t.state();
  negative.step = -4;
  EXPECT_NE(error_message([&] { t.restore(profile(), negative); }).find("TrackerState.step: -4"), std::string::npos);
  EXPECT_EQ(t.state().step, 0);  // a refused restore keeps the state
}
