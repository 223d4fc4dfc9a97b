#include "forkcast/policy/greedy_policies.hpp"

#include <limits>
#include <stdexcept>
#include <string>

#include "forkcast/agent/mealsim_discretizer.hpp"
#include "forkcast/env/mealsim.hpp"

namespace forkcast::policy {

namespace nn = agent::nn;

env::Action TabularMealPolicy::act(const env::MealSim& sim, std::mt19937_64&) {
  return q_->greedy_action(agent::MealSimDiscretizer::state(sim.observation()), sim.action_mask());
}


DqnMealPolicy::DqnMealPolicy(const nn::Mlp<float>& network, const env::Catalog& catalog,
                             const env::Population* population, int belief_particles, int belief_top_k)
    : network_(&network), catalog_(&catalog), belief_top_k_(belief_top_k) {
  if (belief_top_k < 0 || (belief_top_k > 0 && belief_particles <= 0)) {
    throw std::invalid_argument("DqnMealPolicy: belief_top_k " + std::to_string(belief_top_k) +
                                " needs a belief (belief_particles > 0); 0 ranks every allowed meal");
  }
  if (belief_particles > 0) {
    if (population == nullptr) throw std::invalid_argument("DqnMealPolicy: a belief needs the population");
    env::BeliefOptions options;
    options.particles = belief_particles;
    belief_ = std::make_unique<env::MealBelief>(*population, options);
  }
  const int expected = input_size();
  if (network.input_size() != expected || network.output_size() != 1) {
    throw std::invalid_argument("DqnMealPolicy: the network maps " + std::to_string(network.input_size()) + " -> " +
                                std::to_string(network.output_size()) + ", a MealSim candidate scorer" +
                                (belief_ ? " on a belief" : "") + " maps " + std::to_string(expected) + " -> 1");
  }
}

DqnMealPolicy::~DqnMealPolicy() = default;

int DqnMealPolicy::input_size() const {
  return env::kCandidateInputSize + (belief_ ? env::kBeliefCandidateFeatures : 0);
}

env::Action DqnMealPolicy::act(const env::MealSim& sim, std::mt19937_64& rng) {
  if (belief_) {
    // Follow the week as an app would: the belief starts with it and learns each answer.
    if (sim.step_index() == 0 || !belief_->started() || belief_->step_index() != sim.step_index() - 1) {
      belief_->start(sim, rng);  // throws unless the week is at its first step
    } else {
      const auto [accepted, eaten] = env::observed_outcome(sim, last_offered_, accepted_before_);
      belief_->observe(last_offered_, accepted, eaten, rng);
    }
    accepted_before_ = sim.step_index() == 0 ? 0 : sim.stats().accepted;
  }
  allowed_.clear();
  const auto mask = sim.action_mask();
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) allowed_.push_back(static_cast<env::Action>(m));
  }
  rows_.resize(static_cast<Eigen::Index>(allowed_.size()), input_size());
  for (std::size_t c = 0; c < allowed_.size(); ++c) {
    float* row = rows_.row(static_cast<Eigen::Index>(c)).data();
    env::write_candidate_input(*catalog_, sim.observation(), allowed_[c], static_cast<float>(sim.meal_recency(allowed_[c])),
                               row);
    if (belief_) env::write_belief_features(belief_->value(allowed_[c]), row + env::kCandidateInputSize);
  }
  network_->predict(rows_, scores_, workspace_);
  if (belief_top_k_ > 0 && allowed_.size() > static_cast<std::size_t>(belief_top_k_)) {
    // Only the belief's top_k by planning score are candidates (as in training).
    order_by_planning(
        allowed_.size(), [&](std::size_t c) { return rows_(static_cast<Eigen::Index>(c), env::kCandidateInputSize + 2); },
        order_);
    for (std::size_t k = static_cast<std::size_t>(belief_top_k_); k < order_.size(); ++k) {
      scores_(static_cast<Eigen::Index>(order_[k]), 0) = -std::numeric_limits<float>::infinity();
    }
  }
  Eigen::Index best = 0;
  scores_.col(0).maxCoeff(&best);
  last_offered_ = allowed_[static_cast<std::size_t>(best)];
  return last_offered_;
}

}  // namespace forkcast::policy
