#include "forkcast/env/belief_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace forkcast::env {

BeliefPolicy::BeliefPolicy(const Population& population, BeliefOptions options)
    : population_(&population), options_(options) {
  if (options_.particles < 1) {
    throw std::invalid_argument("BeliefOptions.particles: " + std::to_string(options_.particles) + " must be at least 1");
  }
  if (!(options_.default_evidence_floor > 0.0 && options_.default_evidence_floor <= 1.0)) {
    throw std::invalid_argument("BeliefOptions.default_evidence_floor: " + std::to_string(options_.default_evidence_floor) +
                                " is outside (0, 1]");
  }
}

double BeliefPolicy::effective_particles() const {
  double sum_sq = 0;
  for (const double w : weight_) sum_sq += w * w;
  return sum_sq > 0 ? 1.0 / sum_sq : 0.0;
}

void BeliefPolicy::start_week(const MealSim& sim, std::mt19937_64& rng) {
  const auto count = static_cast<std::size_t>(options_.particles);
  if (particles_.empty() || &particles_.front().catalog() != &sim.catalog()) {
    particles_.clear();
    for (std::size_t k = 0; k < count; ++k) particles_.emplace_back(sim.catalog(), *population_, sim.config());
  }
  const UserProfile& profile = sim.tracker().profile();
  const auto& archetypes = population_->archetypes();
  archetype_posterior_.assign(archetypes.size(), 0.0);
  double total = 0;
  for (std::size_t a = 0; a < archetypes.size(); ++a) {
    total += archetypes[a].share * profile_likelihood(archetypes[a], profile);
    archetype_posterior_[a] = total;
  }
  if (!(total > 0)) {
    // A profile no archetype draws (edited by hand): fall back on the shares alone.
    total = 0;
    for (std::size_t a = 0; a < archetypes.size(); ++a) archetype_posterior_[a] = total += archetypes[a].share;
  }
  std::uniform_real_distribution<double> unit(0.0, total);
  for (auto& particle : particles_) {
    const double u = unit(rng);
    const auto a = static_cast<int>(std::min<std::ptrdiff_t>(
        std::lower_bound(archetype_posterior_.begin(), archetype_posterior_.end(), u) - archetype_posterior_.begin(),
        static_cast<std::ptrdiff_t>(archetypes.size()) - 1));
    User user = population_->sample_archetype(sim.catalog(), a, rng);
    user.profile = profile;  // the taste is the archetype's; the profile is what the app knows
    draw_default_meals(sim.catalog(), user, rng, archetypes[static_cast<std::size_t>(a)].name);
    particle.reset(rng(), user);
  }
  log_weight_.assign(count, 0.0);
  weight_.assign(count, 1.0 / static_cast<double>(count));
  accepted_before_ = 0;
}

void BeliefPolicy::observe(const MealSim& sim) {
  const bool accepted = sim.stats().accepted > accepted_before_;
  accepted_before_ = sim.stats().accepted;
  Action eaten = last_offered_;
  if (!accepted) {
    const auto& last_eaten = sim.tracker().state().last_eaten;
    const std::int64_t previous_step = sim.tracker().state().step - 1;
    eaten = static_cast<Action>(std::find(last_eaten.begin(), last_eaten.end(), previous_step) - last_eaten.begin());
  }
  double max_log = -std::numeric_limits<double>::infinity();
  for (std::size_t k = 0; k < particles_.size(); ++k) {
    MealSim& particle = particles_[k];
    const double p = std::clamp(particle.accept_probability(last_offered_), 1e-12, 1.0 - 1e-12);
    double log_l = std::log(accepted ? p : 1.0 - p);
    if (!accepted) {
      const auto& defaults = particle.user().taste.default_meals[static_cast<std::size_t>(particle.slot())];
      const double share = static_cast<double>(std::count(defaults.begin(), defaults.end(), eaten)) / 3.0;
      log_l += std::log(std::max(share, options_.default_evidence_floor));
    }
    log_weight_[k] += log_l;
    max_log = std::max(max_log, log_weight_[k]);
    particle.replay(last_offered_, accepted, eaten);
  }
  double total = 0;
  for (std::size_t k = 0; k < particles_.size(); ++k) total += weight_[k] = std::exp(log_weight_[k] - max_log);
  for (auto& w : weight_) w /= total;
}

void BeliefPolicy::resample(std::mt19937_64& rng) {
  // Systematic resampling: one uniform offset, particles kept in proportion to weight.
  const std::size_t n = particles_.size();
  resampled_.clear();
  const double step = 1.0 / static_cast<double>(n);
  double u = std::uniform_real_distribution<double>(0.0, step)(rng), cumulative = weight_[0];
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    while (u > cumulative && k + 1 < n) cumulative += weight_[++k];
    resampled_.push_back(particles_[k]);
    u += step;
  }
  particles_.swap(resampled_);
  std::fill(log_weight_.begin(), log_weight_.end(), 0.0);
  std::fill(weight_.begin(), weight_.end(), step);
}

Action BeliefPolicy::act(const MealSim& sim, std::mt19937_64& rng) {
  if (sim.step_index() == 0 || particles_.empty() || sim.step_index() != last_step_ + 1) {
    start_week(sim, rng);
  } else {
    observe(sim);
    if (effective_particles() < 0.5 * static_cast<double>(particles_.size())) resample(rng);
  }
  const auto mask = sim.action_mask();
  score_.assign(mask.size(), 0.0);
  const double negligible = 1e-6 / static_cast<double>(particles_.size());
  for (std::size_t k = 0; k < particles_.size(); ++k) {
    if (weight_[k] < negligible) continue;
    for (std::size_t m = 0; m < mask.size(); ++m) {
      if (!mask[m]) continue;
      const auto meal = static_cast<Action>(m);
      score_[m] += weight_[k] * (options_.plan ? PlanningOraclePolicy::score(particles_[k], meal)
                                               : particles_[k].expected_reward(meal));
    }
  }
  Action best = -1;
  double best_score = -std::numeric_limits<double>::infinity();
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m] && score_[m] > best_score) {
      best_score = score_[m];
      best = static_cast<Action>(m);
    }
  }
  last_offered_ = best;
  last_step_ = sim.step_index();
  return best;
}

}  // namespace forkcast::env
