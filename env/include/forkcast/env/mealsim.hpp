// MealSim: one simulated user over one week (7 days x 4 slots), the world forkcast's
// agents learn in. Every equation and default is in docs/mealsim.md.
//
// At each slot the agent suggests one meal among those allowed now (the slot's meals
// that respect the user's diet and allergens: a hard mask). The user accepts with
// probability sigmoid(utility) — taste, portion fit with hunger, boredom, prep time and
// cost against tolerance, long-term satisfaction — or eats a default of their own.
// Intake, hunger, boredom memories and satisfaction move; the reward mixes acceptance,
// taste and, at the end of each day, nutrition adherence. Low satisfaction makes the user
// churn, ending the episode early.
//
// Episode end: after 28 steps (the week; the day is part of the state, so this is a
// true terminal of a finite-horizon MDP: terminated = true) or on churn (terminated).
// truncated is set only when MealSimOptions::max_steps cuts the week short.
//
// Ownership: MealSim points to the Catalog and Population it was built with; they must
// outlive it. Not thread-safe; use one simulator per thread.
// Determinism: reset(seed) draws the user and every random outcome from one stream
// seeded by `seed`; each step consumes a fixed number of draws whatever the action, so
// two policies run on the same seed face the same user and the same coin flips
// (common random numbers).
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/env.hpp"
#include "forkcast/env/observation.hpp"
#include "forkcast/env/population.hpp"
#include "forkcast/env/user_tracker.hpp"

namespace forkcast::env {

// The observation layout is env/observation.hpp.

// Per-candidate features that change with the state, written by candidate_features():
//   [0] recency of this meal (decay^(steps since eaten), 0 if never)
//   [1] decayed cuisine memory of its cuisine
//   [2] cost / budget   [3] prep time / cook-time tolerance
//   [4] kcal / kcal the user is hungry for now
inline constexpr int kCandidateDynamicFeatures = 5;

// Inputs of a candidate-scoring network for one (state, meal) pair:
//   [observation (kObservationSize) | meal static features (kMealStaticFeatures) |
//    candidate dynamic features (kCandidateDynamicFeatures)].
inline constexpr int kCandidateInputSize = kObservationSize + kMealStaticFeatures + kCandidateDynamicFeatures;

// Writes the kCandidateDynamicFeatures of `meal` from an observation and the meal's
// recency. Everything but the recency is recomputed from the observation (slot, hunger,
// budget, cook time, kcal target and cuisine memory are all in it), so a replay buffer
// only has to keep observations and recencies to rebuild any candidate later.
void write_candidate_dynamic(const Catalog& catalog, std::span<const float> observation, int meal,
                             float recency, float* out);
// Writes one full candidate input row (kCandidateInputSize floats) into `row`.
void write_candidate_input(const Catalog& catalog, std::span<const float> observation, int meal,
                           float recency, float* row);

struct MealStep {
  double reward = 0;
  bool terminated = false;
  bool truncated = false;
  bool accepted = false;
  bool churned = false;
  bool day_ended = false;
  std::int32_t eaten = -1;  // meal index the user ate (the suggestion or their default)
};

// What evaluation reports need about one finished (or running) week.
struct EpisodeStats {
  int steps = 0;
  int accepted = 0;
  std::array<int, kNumSlots> offered_by_slot{};
  std::array<int, kNumSlots> accepted_by_slot{};
  int days_completed = 0;
  std::array<double, kDaysPerWeek> kcal_error{};      // |kcal - target| / target per day
  std::array<double, kDaysPerWeek> protein_error{};   // |protein - target| / target per day
  std::array<double, kDaysPerWeek> adherence{};       // 0..1 per day
  int sodium_over_days = 0;
  int distinct_meals = 0;
  int distinct_cuisines = 0;
  int repeats = 0;             // suggestions of a meal already suggested this week
  bool churned = false;
  double final_satisfaction = 0;
};

struct MealSimOptions {
  int max_steps = 0;  // 0 = the whole week; otherwise truncate after this many steps
};

class MealSim {
 public:
  MealSim(const Catalog& catalog, const Population& population, config::MealSimConfig config = {},
          MealSimOptions options = {});

  // Starts a week for a user drawn from the population with `seed`.
  void reset(std::uint64_t seed);
  // Starts a week for the given user; `seed` drives the random outcomes.
  void reset(std::uint64_t seed, const User& user);

  // Starts a week for the next user of the current random stream (no re-seeding).
  void reset();
  // The simulator's random stream, for checkpoints of training runs.
  std::mt19937_64& generator() noexcept { return rng_; }

  // Suggests meal `meal` (catalog index). Throws EnvUsageError if the meal is outside the
  // catalog or not allowed now, before the first reset, or after the episode ended.
  MealStep step(Action meal);
  // Applies a suggestion whose outcome is already known — the user accepted `meal`, or
  // declined and ate `eaten` — with step()'s transition and no random draw; the user never
  // churns. For policies that keep a belief over hidden users as simulators of candidate
  // users and follow the real user's observed history (BeliefPolicy). Throws
  // EnvUsageError like step(), and when an accepted `eaten` is not `meal`.
  MealStep replay(Action meal, bool accepted, Action eaten);

  std::span<const float> observation() const noexcept { return observation_; }
  // 1 where a meal may be suggested now (this slot, safe for the user), else 0.
  std::span<const std::uint8_t> action_mask() const noexcept {
    return {masks_[static_cast<std::size_t>(slot_)].data(), catalog_->size()};
  }
  // Writes size() x kCandidateDynamicFeatures floats (row-major) for the current state.
  void candidate_features(std::span<float> out) const;

  int num_actions() const noexcept { return static_cast<int>(catalog_->size()); }
  Slot slot() const noexcept { return static_cast<Slot>(slot_); }
  int day() const noexcept { return day_; }
  int step_index() const noexcept { return t_; }
  bool done() const noexcept { return done_; }
  const Catalog& catalog() const noexcept { return *catalog_; }
  const User& user() const noexcept { return user_; }
  const config::MealSimConfig& config() const noexcept { return config_; }
  const EpisodeStats& stats() const noexcept { return stats_; }
  const Nutrients& intake_today() const noexcept { return tracker_.state().intake_today; }
  double kcal_target() const noexcept { return tracker_.kcal_target(); }
  double protein_target_g() const noexcept { return tracker_.protein_target_g(); }
  // The observable half of the state (what the service keeps for a real user).
  const UserTracker& tracker() const noexcept { return tracker_; }

  // --- Oracle access: hidden state, for baselines and evaluation only. ---
  double satisfaction() const noexcept { return satisfaction_; }
  // The user's taste for `meal`, centred on their average over allowed meals (oracle only).
  double taste(Action meal) const { return base_taste_[static_cast<std::size_t>(meal)]; }
  double health_centre() const noexcept { return health_centre_; }
  double hunger() const noexcept { return tracker_.state().hunger; }
  double accept_probability(Action meal) const;
  // Expected reward of suggesting `meal` now, over acceptance and the default choice,
  // including the end-of-day term when this is the day's last slot.
  double expected_reward(Action meal) const;
  // End-of-day adherence (0..1) for a day whose intake is `day_total`.
  double adherence(const Nutrients& day_total) const;
  // Boredom felt for `meal` now (the utility penalty before weights), oracle only.
  double meal_recency(Action meal) const;
  double cuisine_memory(int cuisine) const;

 private:
  double utility(const Meal& meal) const;
  void check_suggestion(Action meal, const char* caller) const;
  MealStep transition(Action meal, bool accepted, std::int32_t eaten_meal, double u_churn);
  double desired_kcal() const;
  void start_week();
  void write_observation();
  double end_day();

  const Catalog* catalog_;
  const Population* population_;
  config::MealSimConfig config_;
  MealSimOptions options_;
  std::mt19937_64 rng_;
  User user_;

  // Derived per user at reset.
  std::array<std::vector<std::uint8_t>, kNumSlots> masks_;
  std::vector<double> base_taste_;  // taste_of(user, meal) per meal, centred; hoisted out of step
  double health_centre_ = 0.5;      // median healthiness of the catalog

  // State: the observable half in tracker_, the hidden half (satisfaction) here.
  UserTracker tracker_;
  int t_ = 0, day_ = 0, slot_ = 0;
  bool started_ = false, done_ = true;
  double satisfaction_ = 0.5;
  std::vector<std::int32_t> last_offered_;   // step index, or kNever
  std::array<float, kObservationSize> observation_{};
  EpisodeStats stats_;
  std::uint64_t cuisines_seen_ = 0;
};

}  // namespace forkcast::env
