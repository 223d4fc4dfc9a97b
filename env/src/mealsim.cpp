#include "forkcast/env/mealsim.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace forkcast::env {

namespace {

constexpr std::int32_t kNever = -1'000'000;
// Fraction of the user's cook-time tolerance and budget that applies to each slot.
constexpr std::array<double, kNumSlots> kTimeTolerance = {0.6, 0.8, 1.0, 0.4};
constexpr std::array<double, kNumSlots> kBudgetShare = {0.7, 1.0, 1.0, 0.5};

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

MealSim::MealSim(const Catalog& catalog, const Population& population, config::MealSimConfig config,
                 MealSimOptions options)
    : catalog_(&catalog), population_(&population), config_(config), options_(options), tracker_(catalog, config) {
  const std::size_t n = catalog.size();
  for (auto& m : masks_) m.assign(n, 0);
  base_taste_.assign(n, 0.0);
  last_offered_.assign(n, kNever);
  // Healthiness is judged against the catalog's median meal: eating a typical meal of the
  // catalog neither builds nor erodes long-term satisfaction.
  std::vector<double> health;
  for (const auto& m : catalog.meals()) health.push_back(m.healthiness);
  std::nth_element(health.begin(), health.begin() + static_cast<std::ptrdiff_t>(health.size() / 2), health.end());
  health_centre_ = health.empty() ? 0.5 : health[health.size() / 2];
  if (options_.max_steps < 0 || options_.max_steps > kStepsPerWeek) {
    throw std::invalid_argument("MealSimOptions.max_steps: " + std::to_string(options_.max_steps) +
                                " is out of range 0.." + std::to_string(kStepsPerWeek));
  }
}

void MealSim::reset(std::uint64_t seed) {
  rng_.seed(seed);
  user_ = population_->sample(*catalog_, rng_);
  start_week();
}

void MealSim::reset() {
  user_ = population_->sample(*catalog_, rng_);
  start_week();
}

void MealSim::reset(std::uint64_t seed, const User& user) {
  rng_.seed(seed);
  user_ = user;
  start_week();
}

void MealSim::start_week() {
  const UserProfile& p = user_.profile;
  const auto& meals = catalog_->meals();
  for (auto& m : masks_) std::fill(m.begin(), m.end(), 0);
  double taste_sum = 0;
  int allowed = 0;
  for (std::size_t i = 0; i < meals.size(); ++i) {
    const bool ok = p.allows(meals[i]);
    masks_[static_cast<std::size_t>(meals[i].slot)][i] = ok ? 1 : 0;
    base_taste_[i] = taste_of(user_, meals[i]);
    if (ok) {
      taste_sum += base_taste_[i];
      ++allowed;
    }
  }
  // Taste is relative: centre it on the user's average over the meals they may eat, so a
  // meal picked at random is neutral for everyone, whatever their archetype's means.
  const double taste_centre = allowed > 0 ? taste_sum / allowed : 0.0;
  for (auto& t : base_taste_) t -= taste_centre;
  for (int s = 0; s < kNumSlots; ++s) {
    const auto& mask = masks_[static_cast<std::size_t>(s)];
    if (std::find(mask.begin(), mask.end(), 1) == mask.end()) {
      throw std::invalid_argument("MealSim: the user allows no " + std::string(slot_name(static_cast<Slot>(s))) +
                                  " in the catalog");
    }
  }
  t_ = day_ = slot_ = 0;
  started_ = true;
  done_ = false;
  satisfaction_ = std::clamp(config_.satisfaction_initial + std::uniform_real_distribution<double>(-0.1, 0.1)(rng_),
                             0.0, 1.0);
  tracker_.start(p);
  std::fill(last_offered_.begin(), last_offered_.end(), kNever);
  stats_ = EpisodeStats{};
  cuisines_seen_ = 0;
  write_observation();
}

double MealSim::meal_recency(Action meal) const { return tracker_.meal_recency(meal); }

double MealSim::cuisine_memory(int cuisine) const {
  return tracker_.state().cuisine_memory[static_cast<std::size_t>(cuisine)];
}

double MealSim::desired_kcal() const {
  return kSlotKcalShare[static_cast<std::size_t>(slot_)] * tracker_.kcal_target() * (0.5 + tracker_.state().hunger);
}

double MealSim::utility(const Meal& meal) const {
  const auto index = static_cast<Action>(&meal - catalog_->meals().data());
  const auto s = static_cast<std::size_t>(slot_);
  const UserProfile& p = user_.profile;
  const double boredom = config_.meal_boredom_weight * meal_recency(index) +
                         config_.cuisine_boredom_weight * cuisine_memory(meal.cuisine_index);
  const double tolerance = p.cook_time_min * kTimeTolerance[s];
  const double budget = p.budget_usd * kBudgetShare[s];
  const double desired = desired_kcal();
  return config_.utility_bias + config_.taste_weight * base_taste_[static_cast<std::size_t>(index)] -
         user_.taste.boredom_sensitivity * boredom -
         config_.time_weight * std::max(0.0, meal.prep_min - tolerance) / 30.0 -
         config_.cost_weight * std::max(0.0, meal.cost_usd - budget) / budget -
         config_.portion_weight * std::min(1.5, std::abs(meal.per_serving.kcal - desired) / desired) +
         config_.satisfaction_weight * (satisfaction_ - 0.5);
}

double MealSim::accept_probability(Action meal) const {
  return sigmoid(utility(catalog_->meals()[static_cast<std::size_t>(meal)]));
}

double MealSim::adherence(const Nutrients& day) const { return tracker_.adherence(day); }

double MealSim::expected_reward(Action meal) const {
  const auto& meals = catalog_->meals();
  const double p = accept_probability(meal);
  auto experienced = [&](std::int32_t m) {
    return base_taste_[static_cast<std::size_t>(m)] - user_.taste.boredom_sensitivity * meal_recency(m);
  };
  const auto& defaults = user_.taste.default_meals[static_cast<std::size_t>(slot_)];
  double accept_value = config_.reward_accept + config_.reward_taste * experienced(meal);
  double decline_value = 0;
  for (const auto d : defaults) decline_value += config_.reward_taste * experienced(d) / 3.0;
  if (slot_ == kNumSlots - 1) {
    Nutrients with_meal = intake_today();
    with_meal.add_scaled(meals[static_cast<std::size_t>(meal)].per_serving, 1.0);
    accept_value += config_.reward_nutrition * adherence(with_meal);
    for (const auto d : defaults) {
      Nutrients with_default = intake_today();
      with_default.add_scaled(meals[static_cast<std::size_t>(d)].per_serving, config_.default_portion);
      decline_value += config_.reward_nutrition * adherence(with_default) / 3.0;
    }
  }
  return p * accept_value + (1.0 - p) * decline_value;
}

void MealSim::check_suggestion(Action meal, const char* caller) const {
  if (!started_) throw EnvUsageError(std::string(caller) + " called before reset");
  if (done_) throw EnvUsageError(std::string(caller) + " called after the episode ended (step " + std::to_string(t_) + "); call reset");
  if (meal < 0 || meal >= num_actions()) {
    throw EnvUsageError(std::string(caller) + ": action " + std::to_string(meal) + " is outside the catalog 0.." +
                        std::to_string(num_actions() - 1));
  }
  const auto m = static_cast<std::size_t>(meal);
  if (!masks_[static_cast<std::size_t>(slot_)][m]) {
    const Meal& bad = catalog_->meals()[m];
    throw EnvUsageError(std::string(caller) + ": meal " + std::to_string(meal) + " (" + bad.id + ") is not allowed at " +
                        std::string(slot_name(slot())) + " for this user (slot " + std::string(slot_name(bad.slot)) +
                        ", allergens " + allergen_list(bad.allergens) + ")");
  }
}

MealStep MealSim::step(Action meal) {
  check_suggestion(meal, "MealSim::step");
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // Always three draws per step, whatever happens, to keep streams aligned across policies.
  const double u_accept = unit(rng_), u_default = unit(rng_), u_churn = unit(rng_);
  const bool accepted = u_accept < accept_probability(meal);
  const auto& defaults = user_.taste.default_meals[static_cast<std::size_t>(slot_)];
  const std::int32_t eaten = accepted ? meal : defaults[std::min<std::size_t>(2, static_cast<std::size_t>(u_default * 3.0))];
  return transition(meal, accepted, eaten, u_churn);
}

MealStep MealSim::replay(Action meal, bool accepted, Action eaten) {
  check_suggestion(meal, "MealSim::replay");
  if (eaten < 0 || eaten >= num_actions() || (accepted && eaten != meal)) {
    throw EnvUsageError("MealSim::replay: eaten meal " + std::to_string(eaten) + " is not " +
                        (accepted ? "the accepted suggestion " + std::to_string(meal)
                                  : "in the catalog 0.." + std::to_string(num_actions() - 1)));
  }
  return transition(meal, accepted, eaten, 2.0);  // u_churn above 1: the user stays
}

MealStep MealSim::transition(Action meal, bool accepted, std::int32_t eaten_meal, double u_churn) {
  const auto m = static_cast<std::size_t>(meal);
  MealStep out;
  const Meal& offered = catalog_->meals()[m];
  out.accepted = accepted;
  out.eaten = eaten_meal;

  // Statistics of the suggestion.
  ++stats_.steps;
  ++stats_.offered_by_slot[static_cast<std::size_t>(slot_)];
  if (last_offered_[m] != kNever) ++stats_.repeats;
  if (last_offered_[m] == kNever) ++stats_.distinct_meals;
  last_offered_[m] = t_;
  if (!((cuisines_seen_ >> offered.cuisine_index) & 1U)) {
    cuisines_seen_ |= 1ULL << offered.cuisine_index;
    ++stats_.distinct_cuisines;
  }
  tracker_.record_offer(meal, out.accepted);
  if (out.accepted) {
    ++stats_.accepted;
    ++stats_.accepted_by_slot[static_cast<std::size_t>(slot_)];
  }

  // The meal eaten: reward for taste as experienced (boredom dulls it), satisfaction.
  const Meal& eaten = catalog_->meals()[static_cast<std::size_t>(out.eaten)];
  const double recency = meal_recency(out.eaten);
  const double taste = base_taste_[static_cast<std::size_t>(out.eaten)] - user_.taste.boredom_sensitivity * recency;
  out.reward = (out.accepted ? config_.reward_accept : 0.0) + config_.reward_taste * taste;
  satisfaction_ += config_.satisfaction_health * (eaten.healthiness - health_centre_) * 2.0 +
                   config_.satisfaction_taste * taste - config_.satisfaction_boredom * recency -
                   (out.accepted ? 0.0 : config_.satisfaction_reject);
  satisfaction_ = std::clamp(satisfaction_, 0.0, 1.0);
  tracker_.record_eaten(out.eaten, out.accepted ? 1.0 : config_.default_portion);

  if (slot_ == kNumSlots - 1) {
    out.day_ended = true;
    out.reward += end_day();
    if (satisfaction_ < config_.churn_threshold &&
        u_churn < (config_.churn_threshold - satisfaction_) / config_.churn_threshold) {
      out.churned = true;
      stats_.churned = true;
      out.reward -= config_.churn_penalty;
    }
  }

  tracker_.advance_slot();
  ++t_;
  slot_ = t_ % kNumSlots;
  day_ = t_ / kNumSlots;
  out.terminated = out.churned || t_ >= kStepsPerWeek;
  out.truncated = !out.terminated && options_.max_steps > 0 && t_ >= options_.max_steps;
  done_ = out.terminated || out.truncated;
  stats_.final_satisfaction = satisfaction_;
  // A truncated week still has a next state to bootstrap from; a terminated one has none.
  if (!out.terminated) write_observation();
  return out;
}

double MealSim::end_day() {
  const Nutrients& intake = intake_today();
  const double a = adherence(intake);
  const auto d = static_cast<std::size_t>(day_);
  stats_.kcal_error[d] = std::abs(intake.kcal - kcal_target()) / kcal_target();
  stats_.protein_error[d] = std::abs(intake.protein_g - protein_target_g()) / protein_target_g();
  stats_.adherence[d] = a;
  if (intake.sodium_mg > user_.profile.sodium_limit_mg) ++stats_.sodium_over_days;
  ++stats_.days_completed;
  satisfaction_ = std::clamp(satisfaction_ + config_.satisfaction_day * (a - 0.5) * 2.0, 0.0, 1.0);
  return config_.reward_nutrition * a;  // the tracker starts the next day's intake
}

void MealSim::write_observation() { tracker_.write_observation(observation_, tracker_.slot()); }

void MealSim::candidate_features(std::span<float> out) const {
  const std::size_t n = catalog_->size();
  if (out.size() < n * kCandidateDynamicFeatures) {
    throw std::invalid_argument("MealSim::candidate_features: buffer of " + std::to_string(out.size()) +
                                " floats is smaller than " + std::to_string(n * kCandidateDynamicFeatures));
  }
  for (std::size_t m = 0; m < n; ++m) {
    write_candidate_dynamic(*catalog_, observation_, static_cast<int>(m),
                            static_cast<float>(meal_recency(static_cast<Action>(m))),
                            out.data() + m * kCandidateDynamicFeatures);
  }
}

void write_candidate_dynamic(const Catalog& catalog, std::span<const float> o, int meal, float recency, float* out) {
  std::size_t slot = 0;
  for (std::size_t s = 1; s < kNumSlots; ++s) {
    if (o[kObsSlot + s] > o[kObsSlot + slot]) slot = s;
  }
  const Meal& m = catalog.meals()[static_cast<std::size_t>(meal)];
  const double budget = std::max(0.1, o[kObsBudget] * 15.0 * kBudgetShare[slot]);
  const double tolerance = std::max(1.0, o[kObsCookTime] * 60.0 * kTimeTolerance[slot]);
  const double desired = std::max(1.0, kSlotKcalShare[slot] * o[kObsKcalTarget] * 3000.0 * (0.5 + o[kObsHunger]));
  out[0] = recency;
  out[1] = o[static_cast<std::size_t>(kObsCuisineMemory + m.cuisine_index)];
  out[2] = static_cast<float>(m.cost_usd / budget);
  out[3] = static_cast<float>(m.prep_min / tolerance);
  out[4] = static_cast<float>(m.per_serving.kcal / desired);
}

void write_candidate_input(const Catalog& catalog, std::span<const float> observation, int meal, float recency,
                           float* row) {
  std::copy(observation.begin(), observation.begin() + kObservationSize, row);
  const float* features = catalog.meal_features().data() + static_cast<std::size_t>(meal) * kMealStaticFeatures;
  std::copy(features, features + kMealStaticFeatures, row + kObservationSize);
  write_candidate_dynamic(catalog, observation, meal, recency, row + kObservationSize + kMealStaticFeatures);
}

}  // namespace forkcast::env
