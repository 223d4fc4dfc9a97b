#include "forkcast/learning/reward.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "forkcast/env/observation.hpp"
#include "forkcast/env/user_tracker.hpp"

namespace forkcast::learning {

namespace {

// The observation's normalisers (env/observation.hpp): targets are stored divided by these.
constexpr double kKcalTargetScale = 3000.0;
constexpr double kProteinTargetScale = 200.0;
constexpr double kSodiumLimitScale = 2300.0;

double at(std::span<const float> observation, int offset) {
  return static_cast<double>(observation[static_cast<std::size_t>(offset)]);
}

}  // namespace

double taste_of_rating(int rating) {
  if (rating < 1 || rating > 5) throw std::invalid_argument("rating: " + std::to_string(rating) + " is outside 1..5");
  return (rating - 3) / 2.0;
}

LoggedReward logged_reward(const env::Catalog& catalog, const config::MealSimConfig& config, const LoggedStep& step) {
  if (step.observation.size() != static_cast<std::size_t>(env::kObservationSize)) {
    throw std::invalid_argument("observation: " + std::to_string(step.observation.size()) + " values, expected " +
                                std::to_string(env::kObservationSize));
  }
  if (step.eaten_meal && (*step.eaten_meal < 0 || static_cast<std::size_t>(*step.eaten_meal) >= catalog.size())) {
    throw std::invalid_argument("eaten_meal: " + std::to_string(*step.eaten_meal) + " is not a meal of the catalog (0.." +
                                std::to_string(catalog.size() - 1) + ")");
  }
  if (!(step.portion > 0.0) || !std::isfinite(step.portion)) {
    throw std::invalid_argument("portion: " + std::to_string(step.portion) + " must be a finite number > 0");
  }
  LoggedReward r;
  r.accept = step.accepted ? config.reward_accept : 0.0;
  if (step.rating) r.taste = config.reward_taste * taste_of_rating(*step.rating);
  r.day_end = step.slot == env::Slot::snack;
  if (r.day_end && step.eaten_meal) {
    // The day's total: the observation's intake so far (each a fraction of its target),
    // plus this slot's meal.
    const double kcal_target = at(step.observation, env::kObsKcalTarget) * kKcalTargetScale;
    const double protein_target = at(step.observation, env::kObsProteinTarget) * kProteinTargetScale;
    const double sodium_limit = at(step.observation, env::kObsSodiumLimit) * kSodiumLimitScale;
    if (kcal_target > 0 && protein_target > 0 && sodium_limit > 0) {
      env::Nutrients day;
      day.kcal = at(step.observation, env::kObsKcal) * kcal_target;
      day.protein_g = at(step.observation, env::kObsProtein) * protein_target;
      day.sodium_mg = at(step.observation, env::kObsSodium) * sodium_limit;
      day.add_scaled(catalog.meals()[static_cast<std::size_t>(*step.eaten_meal)].per_serving, step.portion);
      r.nutrition = config.reward_nutrition * env::day_adherence(day, kcal_target, protein_target, sodium_limit);
      r.nutrition_known = true;
    }
  }
  r.total = r.accept + r.taste + r.nutrition;
  return r;
}

}  // namespace forkcast::learning
