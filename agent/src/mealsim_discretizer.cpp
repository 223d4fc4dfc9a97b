#include "forkcast/agent/mealsim_discretizer.hpp"

#include <array>
#include <stdexcept>

#include "forkcast/env/mealsim.hpp"

namespace forkcast::agent {

namespace fe = forkcast::env;

std::int32_t MealSimDiscretizer::state(std::span<const float> o) {
  if (o.size() != static_cast<std::size_t>(fe::kObservationSize)) {
    throw std::invalid_argument("observation: " + std::to_string(o.size()) + " values, expected " +
                                std::to_string(fe::kObservationSize));
  }
  int slot = 0;
  for (int s = 0; s < kSlots; ++s) {
    if (o[static_cast<std::size_t>(fe::kObsSlot + s)] > 0.5F) slot = s;
  }
  int diet = 0;
  for (int d = 0; d < kDiets; ++d) {
    if (o[static_cast<std::size_t>(fe::kObsDiet + d)] > 0.5F) diet = d;
  }
  double expected_share = 0;
  for (int s = 0; s < slot; ++s) expected_share += fe::kSlotKcalShare[static_cast<std::size_t>(s)];
  const double kcal_gap = o[fe::kObsKcal] - expected_share;
  const int kcal = kcal_gap < -0.1 ? 0 : (kcal_gap > 0.1 ? 2 : 1);
  const int protein = o[fe::kObsProtein] < expected_share - 0.1 ? 0 : 1;
  int cuisine = kCuisineBuckets - 1;  // none
  float strongest = 0.3F;              // a single meal two slots ago still counts
  for (int c = 0; c < fe::kMaxCuisines; ++c) {
    const float m = o[static_cast<std::size_t>(fe::kObsCuisineMemory + c)];
    if (m > strongest) {
      strongest = m;
      cuisine = c;
    }
  }
  return (((slot * kDiets + diet) * kKcalBuckets + kcal) * kProteinBuckets + protein) * kCuisineBuckets + cuisine;
}

std::string MealSimDiscretizer::state_name(std::int32_t state, std::span<const std::string> cuisines) {
  if (state < 0 || state >= kNumStates) {
    throw std::invalid_argument("state: " + std::to_string(state) + " is out of range 0.." + std::to_string(kNumStates - 1));
  }
  static constexpr std::array<const char*, 3> kKcal = {"under", "on", "over"};
  static constexpr std::array<const char*, 2> kProtein = {"short", "ok"};
  const int cuisine = state % kCuisineBuckets;
  state /= kCuisineBuckets;
  const int protein = state % kProteinBuckets;
  state /= kProteinBuckets;
  const int kcal = state % kKcalBuckets;
  state /= kKcalBuckets;
  const int diet = state % kDiets;
  const int slot = state / kDiets;
  std::string recent = "none";
  if (cuisine < kCuisineBuckets - 1) {
    recent = static_cast<std::size_t>(cuisine) < cuisines.size() ? cuisines[static_cast<std::size_t>(cuisine)]
                                                                  : "cuisine#" + std::to_string(cuisine);
  }
  return std::string(fe::slot_name(static_cast<fe::Slot>(slot))) + " diet=" +
         std::string(fe::diet_preference_name(static_cast<fe::DietPreference>(diet))) + " kcal=" + kKcal[static_cast<std::size_t>(kcal)] +
         " protein=" + kProtein[static_cast<std::size_t>(protein)] + " recent=" + recent;
}

}  // namespace forkcast::agent
