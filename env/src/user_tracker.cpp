#include "forkcast/env/user_tracker.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>


namespace forkcast::env {

namespace {
// Recencies within a week come from a table (the simulator asks for them millions of
// times); older ones, which only the service sees, from std::pow.
constexpr std::int64_t kMealDecayTable = kStepsPerWeek;
}  // namespace

UserTracker::UserTracker(const Catalog& catalog, const config::MealSimConfig& config)
    : catalog_(&catalog), config_(config) {
  for (std::int64_t k = 0; k <= kMealDecayTable; ++k) {
    meal_decay_pow_.push_back(std::pow(config_.meal_memory_decay, static_cast<double>(k)));
  }
  state_.last_eaten.assign(catalog.size(), kNeverEaten);
}

void UserTracker::set_profile(const UserProfile& profile) {
  profile_ = profile;
  kcal_target_ = profile.kcal_target();
  protein_target_ = profile.protein_target_g();
}

void UserTracker::start(const UserProfile& profile) {
  set_profile(profile);
  std::vector<std::int64_t> last_eaten = std::move(state_.last_eaten);
  last_eaten.assign(catalog_->size(), kNeverEaten);
  state_ = TrackerState{};
  state_.last_eaten = std::move(last_eaten);
}

void UserTracker::restore(const UserProfile& profile, TrackerState state) {
  if (state.last_eaten.size() != catalog_->size()) {
    throw std::invalid_argument("TrackerState.last_eaten: " + std::to_string(state.last_eaten.size()) +
                                " entries, expected one per catalog meal (" + std::to_string(catalog_->size()) + ")");
  }
  if (state.step < 0) throw std::invalid_argument("TrackerState.step: " + std::to_string(state.step) + " is negative");
  set_profile(profile);
  state_ = std::move(state);
}

void UserTracker::check_meal(std::int32_t meal, const char* field) const {
  if (meal < 0 || static_cast<std::size_t>(meal) >= catalog_->size()) {
    throw std::invalid_argument(std::string(field) + ": meal index " + std::to_string(meal) +
                                " is outside the catalog 0.." + std::to_string(catalog_->size() - 1));
  }
}

void UserTracker::record_offer(std::int32_t meal, bool accepted) {
  check_meal(meal, "offered meal");
  const Meal& offered = catalog_->meals()[static_cast<std::size_t>(meal)];
  TrackerState& s = state_;
  s.offered_decayed = kRateDecay * s.offered_decayed + 1.0;
  s.accepted_decayed = kRateDecay * s.accepted_decayed + (accepted ? 1.0 : 0.0);
  for (std::size_t c = 0; c < kMaxCuisines; ++c) {
    s.cuisine_offered[c] *= kRateDecay;
    s.cuisine_accepted[c] *= kRateDecay;
  }
  s.cuisine_offered[static_cast<std::size_t>(offered.cuisine_index)] += 1.0;
  for (std::size_t t = 0; t < kNumTags; ++t) {
    s.tag_offered[t] *= kRateDecay;
    s.tag_accepted[t] *= kRateDecay;
  }
  for (std::uint32_t bits = offered.tags; bits != 0; bits &= bits - 1) {
    const auto t = static_cast<std::size_t>(__builtin_ctz(bits));
    s.tag_offered[t] += 1.0;
    if (accepted) s.tag_accepted[t] += 1.0;
  }
  if (accepted) {
    s.cuisine_accepted[static_cast<std::size_t>(offered.cuisine_index)] += 1.0;
    s.decline_streak = 0;
  } else {
    ++s.decline_streak;
  }
}

void UserTracker::record_eaten(std::int32_t meal, double portion) {
  check_meal(meal, "eaten meal");
  if (!std::isfinite(portion) || portion <= 0.0) {
    throw std::invalid_argument("portion: " + std::to_string(portion) + " must be a finite number > 0");
  }
  const Meal& eaten = catalog_->meals()[static_cast<std::size_t>(meal)];
  TrackerState& s = state_;
  s.intake_today.add_scaled(eaten.per_serving, portion);
  s.hunger = std::clamp(s.hunger - 0.6 * eaten.per_serving.kcal * portion /
                                       (kSlotKcalShare[static_cast<std::size_t>(slot())] * kcal_target_),
                        0.0, 1.0);
  for (auto& c : s.cuisine_memory) c *= config_.cuisine_memory_decay;
  s.cuisine_memory[static_cast<std::size_t>(eaten.cuisine_index)] += 1.0;
  s.last_eaten[static_cast<std::size_t>(meal)] = s.step;
}

void UserTracker::advance_slot() {
  if (slot() == static_cast<Slot>(kNumSlots - 1)) state_.intake_today = Nutrients{};
  ++state_.step;
  state_.hunger = std::clamp(state_.hunger + kHungerRise[static_cast<std::size_t>(slot())], 0.0, 1.0);
}

double day_adherence(const Nutrients& day, double kcal_target, double protein_target_g, double sodium_limit_mg) {
  const double kcal_error = std::abs(day.kcal - kcal_target) / kcal_target;
  const double protein_short = std::max(0.0, (protein_target_g - day.protein_g) / protein_target_g);
  const double sodium_over = std::max(0.0, (day.sodium_mg - sodium_limit_mg) / sodium_limit_mg);
  return std::clamp(1.0 - 1.5 * kcal_error - 1.0 * protein_short - 0.5 * sodium_over, 0.0, 1.0);
}

double UserTracker::meal_recency(std::int32_t meal) const {
  const std::int64_t last = state_.last_eaten[static_cast<std::size_t>(meal)];
  if (last == kNeverEaten) return 0.0;
  const std::int64_t age = state_.step - last;
  return age <= kMealDecayTable ? meal_decay_pow_[static_cast<std::size_t>(age)]
                                : std::pow(config_.meal_memory_decay, static_cast<double>(age));
}

void UserTracker::write_observation(std::span<float> o, Slot slot) const {
  if (o.size() < static_cast<std::size_t>(kObservationSize)) {
    throw std::invalid_argument("observation buffer: " + std::to_string(o.size()) + " floats, need " +
                                std::to_string(kObservationSize));
  }
  std::fill(o.begin(), o.begin() + kObservationSize, 0.0F);
  const UserProfile& p = profile_;
  const TrackerState& s = state_;
  const Nutrients& intake = s.intake_today;
  o[static_cast<std::size_t>(kObsSlot) + static_cast<std::size_t>(slot)] = 1.0F;
  o[kObsDay] = static_cast<float>(day_of_week()) / 6.0F;
  o[kObsHunger] = static_cast<float>(s.hunger);
  o[kObsKcal] = static_cast<float>(intake.kcal / kcal_target_);
  o[kObsProtein] = static_cast<float>(intake.protein_g / protein_target_);
  o[kObsFat] = static_cast<float>(intake.fat_g / (0.3 * kcal_target_ / 9.0));
  o[kObsCarbs] = static_cast<float>(intake.carbs_g / (0.5 * kcal_target_ / 4.0));
  o[kObsSodium] = static_cast<float>(intake.sodium_mg / p.sodium_limit_mg);
  o[kObsFiber] = static_cast<float>(intake.fiber_g / 30.0);
  o[kObsKcalLeft] = static_cast<float>(std::clamp((kcal_target_ - intake.kcal) / kcal_target_, -1.0, 1.0));
  o[kObsAcceptRate] = static_cast<float>((s.accepted_decayed + 0.5) / (s.offered_decayed + 1.0));
  o[kObsDeclineStreak] = static_cast<float>(std::min(1.0, s.decline_streak / 4.0));
  for (std::size_t c = 0; c < kMaxCuisines; ++c) {
    o[kObsCuisineMemory + c] = static_cast<float>(s.cuisine_memory[c]);
    o[kObsCuisineAccept + c] = static_cast<float>((s.cuisine_accepted[c] + 0.5) / (s.cuisine_offered[c] + 1.0));
  }
  for (std::size_t t = 0; t < kNumTags; ++t) {
    o[kObsTagAccept + t] = static_cast<float>((s.tag_accepted[t] + 0.5) / (s.tag_offered[t] + 1.0));
  }
  o[kObsProfile] = p.sex == Sex::female ? 1.0F : 0.0F;
  o[kObsProfile + 1] = static_cast<float>(p.age / 100.0);
  o[kObsProfile + 2] = static_cast<float>(p.weight_kg / ((p.height_cm / 100.0) * (p.height_cm / 100.0)) / 40.0);
  o[kObsProfile + 3] = static_cast<float>((activity_factor(p.activity) - 1.2) / 0.7);
  o[kObsGoal + static_cast<std::size_t>(p.goal)] = 1.0F;
  o[kObsDiet + static_cast<std::size_t>(p.diet)] = 1.0F;
  o[kObsBudget] = static_cast<float>(p.budget_usd / 15.0);
  o[kObsCookTime] = static_cast<float>(p.cook_time_min / 60.0);
  o[kObsKcalTarget] = static_cast<float>(kcal_target_ / 3000.0);
  o[kObsProteinTarget] = static_cast<float>(protein_target_ / 200.0);
  o[kObsSodiumLimit] = static_cast<float>(p.sodium_limit_mg / 2300.0);
}

}  // namespace forkcast::env
