// The reward the service can compute for one logged decision: what `forkcast learn` trains
// on and gates with (docs/learning-loop.md "Reward"). MealSim's reward (env/mealsim.hpp,
// docs/mealsim.md) has three terms; the service knows two of them exactly and the third
// through the user's rating:
//
//   r = reward_accept    * accepted
//     + reward_taste     * taste,        taste = (rating - 3) / 2 in [-1, 1] when the user
//                                        rated the meal, else 0 (MealSim's taste is hidden)
//     + reward_nutrition * adherence,    at the day's last slot (snack) only, when the day's
//                                        total is known: the intake so far that the logged
//                                        observation holds, plus what was eaten at this slot
//                                        (the accepted meal, or the one logged for it)
//
// The weights are MealSim's (config mealsim.reward_*), and adherence is MealSim's own
// function (env::day_adherence), so where the inputs exist the two rewards agree term by
// term (tests/learning/reward_test.cpp checks the nutrition term against MealSim's). What
// the service cannot know — the hidden taste of an unrated meal, churn — is left out, as
// the docs say.
//
// Pure functions of their arguments; no allocation. Errors: std::invalid_argument naming
// the field and the value (observation of the wrong size, a rating outside 1..5, an eaten
// meal outside the catalog, a portion that is not > 0).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "forkcast/config/config.hpp"
#include "forkcast/env/catalog.hpp"

namespace forkcast::learning {

// What the log says about one decision.
struct LoggedStep {
  std::span<const float> observation;      // env::kObservationSize values, as the policy saw them
  env::Slot slot = env::Slot::breakfast;   // the slot decided for
  bool accepted = false;                   // an accepted or eaten outcome
  std::optional<std::int32_t> eaten_meal;  // catalog index of what was eaten at this slot, if known
  double portion = 1.0;                    // servings of eaten_meal, > 0
  std::optional<int> rating;               // 1..5
};

struct LoggedReward {
  double total = 0;
  double accept = 0;     // reward_accept * accepted
  double taste = 0;      // reward_taste * (rating - 3) / 2, or 0 unrated
  double nutrition = 0;  // reward_nutrition * adherence, or 0
  bool day_end = false;          // the slot ends the day (MealSim adds the nutrition term here)
  bool nutrition_known = false;  // day_end and the day's total was known
};

LoggedReward logged_reward(const env::Catalog& catalog, const config::MealSimConfig& config, const LoggedStep& step);

// The taste signal of a rating: (rating - 3) / 2. Throws std::invalid_argument outside 1..5.
double taste_of_rating(int rating);

}  // namespace forkcast::learning
