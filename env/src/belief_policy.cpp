#include "forkcast/env/belief_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace forkcast::env {

MealBelief::MealBelief(const Population& population, BeliefOptions options)
    : population_(&population), options_(options) {
  if (options_.particles < 1) {
    throw std::invalid_argument("BeliefOptions.particles: " + std::to_string(options_.particles) + " must be at least 1");
  }
  if (!(options_.default_evidence_floor > 0.0 && options_.default_evidence_floor <= 1.0)) {
    throw std::invalid_argument("BeliefOptions.default_evidence_floor: " + std::to_string(options_.default_evidence_floor) +
                                " is outside (0, 1]");
  }
}

double MealBelief::effective_particles() const {
  double sum_sq = 0;
  for (const double w : weight_) sum_sq += w * w;
  return sum_sq > 0 ? 1.0 / sum_sq : 0.0;
}

void MealBelief::start(const MealSim& sim, std::mt19937_64& rng) {
  if (sim.step_index() != 0) {
    throw std::invalid_argument("MealBelief::start: the week is at step " + std::to_string(sim.step_index()) +
                                "; a belief starts at a week's first step and follows every step after it");
  }
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
    // upper_bound: u == 0 must not land on a leading archetype of zero weight.
    const auto a = static_cast<int>(std::min<std::ptrdiff_t>(
        std::upper_bound(archetype_posterior_.begin(), archetype_posterior_.end(), u) - archetype_posterior_.begin(),
        static_cast<std::ptrdiff_t>(archetypes.size()) - 1));
    User user = population_->sample_archetype(sim.catalog(), a, rng);
    user.profile = profile;  // the taste is the archetype's; the profile is what the app knows
    draw_default_meals(sim.catalog(), user, rng, archetypes[static_cast<std::size_t>(a)].name);
    particle.reset(rng(), user);
  }
  log_weight_.assign(count, 0.0);
  weight_.assign(count, 1.0 / static_cast<double>(count));
}

void MealBelief::observe(Action offered, bool accepted, Action eaten, std::mt19937_64& rng) {
  if (!started()) throw std::logic_error("MealBelief::observe called before start");
  double max_log = -std::numeric_limits<double>::infinity();
  for (std::size_t k = 0; k < particles_.size(); ++k) {
    MealSim& particle = particles_[k];
    const double p = std::clamp(particle.accept_probability(offered), 1e-12, 1.0 - 1e-12);
    double log_l = std::log(accepted ? p : 1.0 - p);
    if (!accepted) {
      const auto& defaults = particle.user().taste.default_meals[static_cast<std::size_t>(particle.slot())];
      const double share = static_cast<double>(std::count(defaults.begin(), defaults.end(), eaten)) / 3.0;
      log_l += std::log(std::max(share, options_.default_evidence_floor));
    }
    log_weight_[k] += log_l;
    max_log = std::max(max_log, log_weight_[k]);
    particle.replay(offered, accepted, eaten);
  }
  double total = 0;
  for (std::size_t k = 0; k < particles_.size(); ++k) total += weight_[k] = std::exp(log_weight_[k] - max_log);
  for (auto& w : weight_) w /= total;
  if (effective_particles() < 0.5 * static_cast<double>(particles_.size())) resample(rng);
}

void MealBelief::resample(std::mt19937_64& rng) {
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

BeliefValue MealBelief::value(Action meal) const {
  BeliefValue v;
  const double negligible = 1e-6 / static_cast<double>(particles_.size());
  for (std::size_t k = 0; k < particles_.size(); ++k) {
    const double w = weight_[k];
    if (w < negligible) continue;
    const PlanningTerms t = PlanningOraclePolicy::terms(particles_[k], meal);
    v.expected_reward += w * t.expected_reward;
    v.accept_probability += w * t.accept_probability;
    v.planning_score += w * t.score;
  }
  return v;
}

void MealBelief::scores(std::span<const std::uint8_t> mask, bool plan, std::span<double> out) const {
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) out[m] = 0.0;
  }
  // Particles whose weight cannot move a score's sixth digit are skipped.
  const double negligible = 1e-6 / static_cast<double>(particles_.size());
  for (std::size_t k = 0; k < particles_.size(); ++k) {
    if (weight_[k] < negligible) continue;
    for (std::size_t m = 0; m < mask.size(); ++m) {
      if (!mask[m]) continue;
      const auto meal = static_cast<Action>(m);
      out[m] += weight_[k] * (plan ? PlanningOraclePolicy::score(particles_[k], meal) : particles_[k].expected_reward(meal));
    }
  }
}

void write_belief_features(const BeliefValue& value, float* out) {
  out[0] = static_cast<float>(value.expected_reward / 3.0);
  out[1] = static_cast<float>(value.accept_probability);
  out[2] = static_cast<float>(value.planning_score / 5.0);
}

std::pair<bool, Action> observed_outcome(const MealSim& sim, Action offered, int accepted_before) {
  if (sim.stats().accepted > accepted_before) return {true, offered};
  const auto& last_eaten = sim.tracker().state().last_eaten;
  const std::int64_t previous_step = sim.tracker().state().step - 1;
  return {false, static_cast<Action>(std::find(last_eaten.begin(), last_eaten.end(), previous_step) - last_eaten.begin())};
}

BeliefPolicy::BeliefPolicy(const Population& population, BeliefOptions options) : belief_(population, options) {}

Action BeliefPolicy::act(const MealSim& sim, std::mt19937_64& rng) {
  if (sim.step_index() == 0 || !belief_.started() || sim.step_index() != last_step_ + 1) {
    belief_.start(sim, rng);
  } else {
    const auto [accepted, eaten] = observed_outcome(sim, last_offered_, accepted_before_);
    belief_.observe(last_offered_, accepted, eaten, rng);
  }
  accepted_before_ = sim.step_index() == 0 ? 0 : sim.stats().accepted;
  const auto mask = sim.action_mask();
  score_.resize(mask.size());
  belief_.scores(mask, belief_.options().plan, score_);
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
