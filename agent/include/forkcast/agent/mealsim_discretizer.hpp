// Maps a MealSim observation (env/mealsim.hpp layout) to one of kNumStates discrete
// states for tabular Q-learning.
//
//   state = (((slot * 4 + diet) * 3 + kcal_bucket) * 2 + protein_bucket) * 17 + cuisine
//
// Why these features: the slot decides which meals are candidates at all; the diet
// decides which of them are allowed and which the user is likely to enjoy (it is the
// strongest observable proxy for taste); the calorie bucket — kcal eaten today against
// the share expected by this slot (under by > 10 % of the target, within, over) — is
// what end-of-day adherence rewards; the protein bucket (below the expected share by more
// than 10 % of the target, or not) is the other adherence term; and the cuisine most
// present in the decayed memory (or none) is what boredom punishes repeating. Hunger,
// the day and the profile's numbers add little beyond these and would multiply the table
// (1 632 states x meals already leaves ~10 visits per state-action in 50 000 weeks).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace forkcast::agent {

class MealSimDiscretizer {
 public:
  static constexpr int kSlots = 4, kDiets = 4, kKcalBuckets = 3, kProteinBuckets = 2, kCuisineBuckets = 17;
  static constexpr int kNumStates = kSlots * kDiets * kKcalBuckets * kProteinBuckets * kCuisineBuckets;

  // Throws std::invalid_argument when the observation has the wrong size.
  static std::int32_t state(std::span<const float> observation);
  // e.g. "lunch diet=vegan kcal=under protein=ok recent=thai" (cuisine names from the catalog
  // when given, else "cuisine#3").
  static std::string state_name(std::int32_t state, std::span<const std::string> cuisines = {});
};

}  // namespace forkcast::agent
