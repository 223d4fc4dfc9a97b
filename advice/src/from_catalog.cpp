#include "forkcast/advice/from_catalog.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace forkcast::advice {

AdviceFacts facts_from_catalog(const env::Catalog& catalog, const env::Meal& meal,
                               const env::UserProfile& profile, const DayIntake& eaten,
                               const env::Meal* side) {
  (void)catalog;  // kept in the signature: facts may grow fields that need it (cuisine names)
  AdviceFacts f;
  f.meal_id = meal.id;
  f.meal_name = meal.name;
  f.slot = std::string(env::slot_name(meal.slot));
  f.cuisine = meal.cuisine;
  const auto& n = meal.per_serving;
  f.per_serving = {n.kcal, n.protein_g, n.carbs_g, n.fat_g, n.fiber_g, n.sodium_mg};
  f.day_kcal_target = profile.kcal_target();
  f.day_protein_target_g = profile.protein_target_g();
  f.eaten_kcal = eaten.kcal;
  f.eaten_protein_g = eaten.protein_g;
  f.goal = std::string(env::goal_name(profile.goal));
  f.diet = std::string(env::diet_preference_name(profile.diet));
  for (int a = 0; a < env::kNumAllergens; ++a) {
    if (env::has(profile.excluded, static_cast<env::Allergen>(a))) {
      f.excluded.emplace_back(env::allergen_name(static_cast<env::Allergen>(a)));
    }
  }
  if (side != nullptr) {
    f.side_name = side->name;
    f.side_kcal = side->per_serving.kcal;
  }
  return f;
}

const env::Meal* pick_side(const env::Catalog& catalog, const env::Meal& meal,
                           const env::UserProfile& profile, const DayIntake& eaten,
                           std::size_t salt) {
  const double left_after = profile.kcal_target() - eaten.kcal - meal.per_serving.kcal;
  std::vector<const env::Meal*> fitting;
  for (const auto& m : catalog.meals()) {
    if (m.slot != env::Slot::snack || m.id == meal.id || !profile.allows(m)) continue;
    if (m.per_serving.kcal <= left_after) fitting.push_back(&m);
  }
  if (fitting.empty()) return nullptr;
  std::sort(fitting.begin(), fitting.end(), [](const env::Meal* a, const env::Meal* b) {
    return a->per_serving.kcal != b->per_serving.kcal ? a->per_serving.kcal < b->per_serving.kcal
                                                      : a->id < b->id;
  });
  return fitting[salt % fitting.size()];
}

}  // namespace forkcast::advice
