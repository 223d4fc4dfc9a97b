// The observable state of one user: everything an app can know from what it suggested,
// what the user accepted and what they ate — intake today against targets, hunger, the
// decayed memory of recent meals and cuisines, acceptance history by cuisine and tag, and
// the profile. It is the half of MealSim that is not hidden (taste and long-term
// satisfaction stay in the simulator), so the simulator and the service keep their users
// with the same code and a policy sees the same observation layout in both worlds
// (env/observation.hpp documents the layout).
//
// Time is counted in slots: step = day * kNumSlots + slot, from the user's first day. The
// simulator restarts it every week; the service keeps counting (the observation's day is
// the day within the current week).
//
// Ownership: the tracker points to the Catalog it was built with (it must outlive it) and
// copies the config. Its whole state is the plain TrackerState, which callers may save and
// restore (the service stores it in PostgreSQL). Not thread-safe.
// Errors: meal indices outside the catalog (record_offer, record_eaten), non-finite portions
// and state of the wrong size throw std::invalid_argument naming the field and the value.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/observation.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::env {

inline constexpr int kDaysPerWeek = 7;
inline constexpr int kStepsPerWeek = kDaysPerWeek * kNumSlots;
// Share of the day's kcal target each slot is meant to cover.
inline constexpr std::array<double, kNumSlots> kSlotKcalShare = {0.25, 0.35, 0.30, 0.10};
// Hunger added when a slot begins (overnight before breakfast is the largest gap).
inline constexpr std::array<double, kNumSlots> kHungerRise = {0.55, 0.45, 0.45, 0.25};
// Hunger at the start of a user's first breakfast.
inline constexpr double kInitialHunger = kHungerRise[0] + 0.15;
// Memory of acceptance statistics, per suggestion.
inline constexpr double kRateDecay = 0.9;
// Step value of a meal never eaten.
inline constexpr std::int64_t kNeverEaten = -1'000'000'000;

struct TrackerState {
  std::int64_t step = 0;  // day * kNumSlots + slot since the user's first day
  double hunger = kInitialHunger;  // 0..1
  Nutrients intake_today;
  double offered_decayed = 0, accepted_decayed = 0;  // suggestions, decayed by kRateDecay
  int decline_streak = 0;
  std::array<double, kMaxCuisines> cuisine_memory{};    // decayed count of cuisines eaten
  std::array<double, kMaxCuisines> cuisine_offered{}, cuisine_accepted{};
  std::array<double, kNumTags> tag_offered{}, tag_accepted{};
  std::vector<std::int64_t> last_eaten;  // per catalog meal: the step it was last eaten, or kNeverEaten
};

// End-of-day nutrition adherence in [0, 1] of a day whose whole intake was `day_total`
// (docs/mealsim.md, "End-of-day adherence"):
//   clamp(1 - 1.5 |kcal - target| / target - max(0, protein shortfall) / protein target
//         - 0.5 max(0, sodium - limit) / limit, 0, 1).
// The one definition MealSim's reward and the learner's reward from logs share
// (learning/reward.hpp). Targets must be > 0.
double day_adherence(const Nutrients& day_total, double kcal_target, double protein_target_g, double sodium_limit_mg);

class UserTracker {
 public:
  UserTracker(const Catalog& catalog, const config::MealSimConfig& config);

  // Starts over for `profile` at step 0 with the initial hunger and nothing remembered.
  void start(const UserProfile& profile);
  // Continues from a saved state (last_eaten must have one entry per catalog meal).
  void restore(const UserProfile& profile, TrackerState state);
  // Replaces the profile (e.g. the user edited it), keeping the history.
  void set_profile(const UserProfile& profile);

  // The user was offered `meal` and accepted it or not: acceptance statistics.
  void record_offer(std::int32_t meal, bool accepted);
  // The user ate `portion` servings of `meal`: intake, hunger, meal and cuisine memory.
  void record_eaten(std::int32_t meal, double portion);
  // Moves to the next slot: hunger rises; the day's intake restarts at a new day.
  void advance_slot();

  // decay^(steps since `meal` was eaten), 0 if never: the boredom a repeat carries. The
  // index is not checked (it is asked for every candidate of every decision): pass a meal
  // of the catalog.
  double meal_recency(std::int32_t meal) const;
  // Writes the kObservationSize features of env/observation.hpp for `slot`: the tracker's
  // own slot() as a rule; an earlier slot (a late request) keeps the state as it is and
  // changes only the slot one-hot. Throws std::invalid_argument for a buffer of fewer than
  // kObservationSize floats.
  void write_observation(std::span<float> out, Slot slot) const;

  const TrackerState& state() const noexcept { return state_; }
  const UserProfile& profile() const noexcept { return profile_; }
  Slot slot() const noexcept { return static_cast<Slot>(state_.step % kNumSlots); }
  int day_of_week() const noexcept { return static_cast<int>((state_.step / kNumSlots) % 7); }
  double kcal_target() const noexcept { return kcal_target_; }
  double protein_target_g() const noexcept { return protein_target_; }
  // day_adherence() against this user's targets and sodium limit.
  double adherence(const Nutrients& day_total) const {
    return day_adherence(day_total, kcal_target_, protein_target_, profile_.sodium_limit_mg);
  }

 private:
  void check_meal(std::int32_t meal, const char* field) const;

  const Catalog* catalog_;
  config::MealSimConfig config_;
  UserProfile profile_;
  double kcal_target_ = 2000, protein_target_ = 60;
  TrackerState state_;
  std::vector<double> meal_decay_pow_;  // meal_memory_decay^k for k = 0..kMealDecayTable
};

}  // namespace forkcast::env
