// The greedy MealSim policies on trained models, as `forkcast evaluate` and the training
// loops' own evaluations run them (the service serves a DQN model through PolicySnapshot and
// decide(), decide.hpp).
//
// Ownership: a policy points to the network or table and the catalog (and population) it
// was built with; they must outlive it. Not thread-safe; one policy per thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <random>
#include <vector>

#include "forkcast/agent/nn.hpp"
#include "forkcast/agent/tabular_q.hpp"
#include "forkcast/env/baselines.hpp"
#include "forkcast/env/belief_policy.hpp"

namespace forkcast::policy {

// Candidate positions 0..n-1 best first by a belief's planning score (planning(c) for
// candidate c), ties to the lower position (catalog order). Training's top-K candidates and
// the evaluated policy's are chosen by this one function: their tie rule must agree.
template <class Planning>
void order_by_planning(std::size_t n, Planning planning, std::vector<std::size_t>& order) {
  order.resize(n);
  for (std::size_t c = 0; c < n; ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return planning(a) > planning(b); });
}

// A MealSim policy that acts greedily on a tabular Q-table through the discretizer.
class TabularMealPolicy final : public env::MealPolicy {
 public:
  explicit TabularMealPolicy(const agent::TabularQ& q) : q_(&q) {}
  std::string_view name() const override { return "tabular"; }
  env::Action act(const env::MealSim& sim, std::mt19937_64& rng) override;

 private:
  const agent::TabularQ* q_;
};

// Greedy MealSim policy on a candidate-scoring network: scores every allowed meal of the
// state in one batched pass and takes the best (ties: lowest index).
// With belief_particles > 0 (a network trained with --belief-particles) the policy keeps
// its own MealBelief over the simulated user, following the week from what it observes
// (env::observed_outcome), and appends the belief's values to every candidate row.
class DqnMealPolicy final : public env::MealPolicy {
 public:
  // Throws std::invalid_argument when the network does not map input_size() -> 1, or a
  // belief is asked for without the population.
  DqnMealPolicy(const agent::nn::Mlp<float>& network, const env::Catalog& catalog,
                const env::Population* population = nullptr, int belief_particles = 0, int belief_top_k = 0);
  ~DqnMealPolicy() override;
  std::string_view name() const override { return "dqn"; }
  env::Action act(const env::MealSim& sim, std::mt19937_64& rng) override;
  int input_size() const;

 private:
  const agent::nn::Mlp<float>* network_;
  const env::Catalog* catalog_;
  std::unique_ptr<env::MealBelief> belief_;
  int belief_top_k_ = 0;
  std::vector<std::size_t> order_;  // scratch
  env::Action last_offered_ = -1;
  int accepted_before_ = 0;
  agent::nn::Matrix<float> rows_, scores_;
  agent::nn::Workspace<float> workspace_;
  std::vector<env::Action> allowed_;
};

}  // namespace forkcast::policy
