// The observation: what a policy sees of one user at one slot, float32, all values roughly
// in [-1, 2]. UserTracker::write_observation writes it (the simulator and the service alike);
// networks, the tabular discretizer, off-policy evaluation and the decision log read it.
// Each field's offset is computed from the one before, so adding a field moves the others
// and the static_asserts below say which stored models that breaks (every bundled model
// and logged decision has kObservationSize = 83 floats in this order).
//
//   field              size          value
//   slot               kNumSlots     one-hot of the slot asked about
//   day                1             day of the week / 6
//   hunger             1             0..1
//   kcal               1             kcal eaten today / kcal target
//   protein            1             protein today / target
//   fat                1             fat today / (30 % of the kcal target / 9)
//   carbs              1             carbs today / (50 % of the kcal target / 4)
//   sodium             1             sodium today / limit
//   fiber              1             fibre today / 30 g
//   kcal_left          1             kcal left today / target, clipped to [-1, 1]
//   accept_rate        1             decayed acceptance rate of all suggestions (prior 0.5)
//   decline_streak     1             consecutive declines / 4, clipped to 1
//   cuisine_memory     kMaxCuisines  decayed count of recent meals per cuisine
//   cuisine_accept     kMaxCuisines  decayed acceptance rate per cuisine (prior 0.5)
//   female, age, bmi,  4             female 0/1, age / 100, BMI / 40,
//     activity                        (activity factor - 1.2) / 0.7
//   goal               3             one-hot: lose, maintain, gain
//   diet               4             one-hot: none, vegetarian, vegan, pescatarian
//   budget             1             budget / 15 USD
//   cook_time          1             cook-time tolerance / 60 min
//   kcal_target        1             kcal target / 3000
//   protein_target     1             protein target / 200 g
//   sodium_limit       1             sodium limit / 2300 mg
//   tag_accept         kNumTags      decayed acceptance rate of suggestions carrying each
//                                    tag (kTagNames order, prior 0.5)
#pragma once

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::env {

inline constexpr int kNumGoals = static_cast<int>(Goal::gain) + 1;
inline constexpr int kNumDietPreferences = static_cast<int>(DietPreference::pescatarian) + 1;
inline constexpr int kProfileScalars = 4;  // female, age, BMI, activity

inline constexpr int kObsSlot = 0;
inline constexpr int kObsDay = kObsSlot + kNumSlots;
inline constexpr int kObsHunger = kObsDay + 1;
inline constexpr int kObsKcal = kObsHunger + 1;
inline constexpr int kObsProtein = kObsKcal + 1;
inline constexpr int kObsFat = kObsProtein + 1;
inline constexpr int kObsCarbs = kObsFat + 1;
inline constexpr int kObsSodium = kObsCarbs + 1;
inline constexpr int kObsFiber = kObsSodium + 1;
inline constexpr int kObsKcalLeft = kObsFiber + 1;
inline constexpr int kObsAcceptRate = kObsKcalLeft + 1;
inline constexpr int kObsDeclineStreak = kObsAcceptRate + 1;
inline constexpr int kObsCuisineMemory = kObsDeclineStreak + 1;
inline constexpr int kObsCuisineAccept = kObsCuisineMemory + kMaxCuisines;
inline constexpr int kObsProfile = kObsCuisineAccept + kMaxCuisines;  // female, age, BMI, activity
inline constexpr int kObsGoal = kObsProfile + kProfileScalars;
inline constexpr int kObsDiet = kObsGoal + kNumGoals;
inline constexpr int kObsBudget = kObsDiet + kNumDietPreferences;
inline constexpr int kObsCookTime = kObsBudget + 1;
inline constexpr int kObsKcalTarget = kObsCookTime + 1;
inline constexpr int kObsProteinTarget = kObsKcalTarget + 1;
inline constexpr int kObsSodiumLimit = kObsProteinTarget + 1;
inline constexpr int kObsTagAccept = kObsSodiumLimit + 1;
inline constexpr int kObservationSize = kObsTagAccept + kNumTags;

// The layout every stored model and logged decision was made with (docs/mealsim.md §3).
static_assert(kObsHunger == 5 && kObsKcalLeft == 12 && kObsDeclineStreak == 14);
static_assert(kObsCuisineMemory == 15 && kObsCuisineAccept == 31 && kObsProfile == 47);
static_assert(kObsGoal == 51 && kObsDiet == 54 && kObsBudget == 58 && kObsKcalTarget == 60);
static_assert(kObsTagAccept == 63 && kObservationSize == 83);

}  // namespace forkcast::env
