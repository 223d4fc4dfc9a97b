#include "forkcast/env/baselines.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace forkcast::env {

namespace {

template <class Score>
Action argmax_allowed(const MealSim& sim, Score score) {
  const auto mask = sim.action_mask();
  Action best = -1;
  double best_score = -std::numeric_limits<double>::infinity();
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (!mask[m]) continue;
    const double s = score(static_cast<Action>(m));
    if (s > best_score) {
      best_score = s;
      best = static_cast<Action>(m);
    }
  }
  return best;
}

}  // namespace

Action RandomPolicy::act(const MealSim& sim, std::mt19937_64& rng) {
  allowed_.clear();
  const auto mask = sim.action_mask();
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) allowed_.push_back(static_cast<Action>(m));
  }
  return allowed_[std::uniform_int_distribution<std::size_t>(0, allowed_.size() - 1)(rng)];
}

Action PopularityPolicy::act(const MealSim& sim, std::mt19937_64&) {
  return argmax_allowed(sim, [&](Action m) { return popularity_[static_cast<std::size_t>(m)]; });
}

Action MyopicOraclePolicy::act(const MealSim& sim, std::mt19937_64&) {
  return argmax_allowed(sim, [&](Action m) { return sim.expected_reward(m); });
}

double PlanningOraclePolicy::score(const MealSim& sim, Action meal) { return terms(sim, meal).score; }

PlanningTerms PlanningOraclePolicy::terms(const MealSim& sim, Action meal) {
  const auto& cfg = sim.config();
  const auto& meals = sim.catalog().meals();
  const auto slot = static_cast<std::size_t>(sim.slot());
  const double p = sim.accept_probability(meal);
  const double expected_reward = sim.expected_reward(meal);
  double value = expected_reward;
  const auto& defaults = sim.user().taste.default_meals[slot];
  const int steps_left = kStepsPerWeek - sim.step_index() - 1;

  // 1. The rest of the day: project end-of-day intake assuming later slots land on their
  //    share of the targets, and value the adherence this choice leaves reachable.
  if (slot + 1 < kNumSlots) {
    double later_share = 0;
    for (std::size_t s = slot + 1; s < kNumSlots; ++s) later_share += kSlotKcalShare[s];
    auto projected = [&](const Nutrients& eaten, double portion) {
      Nutrients day = sim.intake_today();
      day.add_scaled(eaten, portion);
      day.kcal += later_share * sim.kcal_target();
      day.protein_g += later_share * sim.protein_target_g();
      day.sodium_mg += later_share * 0.7 * sim.user().profile.sodium_limit_mg;
      return sim.adherence(day);
    };
    double expected_adherence = p * projected(meals[static_cast<std::size_t>(meal)].per_serving, 1.0);
    for (const auto d : defaults) {
      expected_adherence += (1.0 - p) / 3.0 * projected(meals[static_cast<std::size_t>(d)].per_serving, cfg.default_portion);
    }
    value += cfg.reward_nutrition * expected_adherence;
  }

  // 2. Satisfaction: each unit raises every later acceptance logit by satisfaction_weight;
  //    near p = 0.5 that is worth about a quarter of it per remaining step.
  auto satisfaction_gain = [&](Action m) {
    const double taste = sim.taste(m) - sim.user().taste.boredom_sensitivity * sim.meal_recency(m);
    return cfg.satisfaction_health * (meals[static_cast<std::size_t>(m)].healthiness - sim.health_centre()) * 2.0 +
           cfg.satisfaction_taste * taste - cfg.satisfaction_boredom * sim.meal_recency(m);
  };
  double delta_s = p * satisfaction_gain(meal);
  for (const auto d : defaults) delta_s += (1.0 - p) / 3.0 * (satisfaction_gain(d) - cfg.satisfaction_reject);
  value += 0.25 * cfg.satisfaction_weight * cfg.reward_accept * steps_left * 0.5 * delta_s;

  // 3. Variety: eating this cuisine now bores the next few slots of it.
  const double cuisine_cost = cfg.cuisine_boredom_weight * sim.user().taste.boredom_sensitivity *
                              (cfg.cuisine_memory_decay + cfg.cuisine_memory_decay * cfg.cuisine_memory_decay) *
                              0.25 * cfg.reward_accept;
  value -= p * cuisine_cost;
  return {p, expected_reward, value};
}

Action PlanningOraclePolicy::act(const MealSim& sim, std::mt19937_64&) {
  return argmax_allowed(sim, [&](Action m) { return score(sim, m); });
}

std::vector<double> estimate_popularity(const Catalog& catalog, const Population& population,
                                        const config::MealSimConfig& config, int users, std::uint64_t seed) {
  MealSim sim(catalog, population, config);
  RandomPolicy random;
  std::mt19937_64 policy_rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::vector<double> offered(catalog.size(), 0.0), accepted(catalog.size(), 0.0);
  for (int u = 0; u < users; ++u) {
    sim.reset(seed + static_cast<std::uint64_t>(u));
    while (!sim.done()) {
      const Action a = random.act(sim, policy_rng);
      const auto result = sim.step(a);
      offered[static_cast<std::size_t>(a)] += 1;
      if (result.accepted) accepted[static_cast<std::size_t>(a)] += 1;
    }
  }
  std::vector<double> rate(catalog.size());
  for (std::size_t m = 0; m < rate.size(); ++m) rate[m] = (accepted[m] + 1.0) / (offered[m] + 2.0);
  return rate;
}

EpisodeResult run_episode(MealSim& sim, MealPolicy& policy, std::uint64_t seed, std::mt19937_64& policy_rng) {
  EpisodeResult result;
  sim.reset(seed);
  while (!sim.done()) result.total_reward += sim.step(policy.act(sim, policy_rng)).reward;
  result.stats = sim.stats();
  return result;
}

}  // namespace forkcast::env
