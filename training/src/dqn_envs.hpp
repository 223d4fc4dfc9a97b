// The environments the DQN loop (dqn_training.cpp) trains on, behind one shape, so that the
// loop reads top to bottom without asking which one it runs: CartPole with the fixed-action
// head (one Q-value per action), MealSim with the candidate-scoring head (one score per
// allowed meal, the meal's row built from the observation, the catalog and its extras).
//
// Each adapter provides:
//   reset(seed) / reset()     Gymnasium's: seeded once, then the environment's own stream
//   observation(), step(a)    the state, and {reward, terminated, truncated}
//   generator()               the environment's generator (checkpointed for --resume)
//   make_learner(o)           the DqnLearner with this environment's head
//   replay_spec(o)            the replay rows this environment's transitions need
//   choose(learner, epsilon, rng)   epsilon-greedy: explore with probability epsilon (one
//                             uniform draw, then one index draw when exploring), else the
//                             learner's greedy action; returns the action and the extras
//                             the replay keeps for it
//   store(replay, ...)        one n-step transition, with the next state's candidates
//   evaluate(network, episodes, salt)   greedy evaluation on a separate environment
//   spec()                    what checkpoints record as "env_spec"
// Private to training/src.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "forkcast/agent/dqn.hpp"
#include "forkcast/agent/replay.hpp"
#include "forkcast/env/belief_policy.hpp"
#include "forkcast/env/cartpole.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/episode_seed.hpp"
#include "forkcast/policy/greedy_policies.hpp"
#include "forkcast/training/dqn_training.hpp"

namespace forkcast::training::dqn {

namespace nn = agent::nn;

// Candidates in one MealSim slot the replay can hold (the catalog's largest slot fits).
inline constexpr int kMaxCandidates = 128;

struct StepOutcome {
  double reward;
  bool terminated, truncated;
};

// The action epsilon-greedy chose and the extras the replay stores beside it.
struct Choice {
  env::Action action = 0;
  std::vector<float> extras;
};

// Mean and spread of the greedy returns over `episodes` episodes seeded episode_seed(salt, i).
template <class Act, class Env>
EvalSummary evaluate_episodes(Env& e, int episodes, std::uint64_t salt, Act&& act) {
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < episodes; ++i) {
    e.reset(policy::episode_seed(salt, static_cast<std::uint64_t>(i)));
    double ret = 0;
    for (;;) {
      const auto r = e.step(act(e));
      ret += r.reward;
      if (r.terminated || r.truncated) break;
    }
    sum += ret;
    sum_sq += ret * ret;
  }
  EvalSummary s;
  s.episodes = episodes;
  if (episodes > 0) {
    s.mean_return = sum / episodes;
    s.std_return = std::sqrt(std::max(0.0, sum_sq / episodes - s.mean_return * s.mean_return));
  }
  return s;
}

// ---- CartPole-v1, fixed-action head ------------------------------------------------------

struct CartPoleDqnEnv {
  env::CartPoleEnv env;
  std::array<float, 4> obs{};

  static std::unique_ptr<CartPoleDqnEnv> for_evaluation(const DqnTrainOptions&) { return std::make_unique<CartPoleDqnEnv>(); }
  std::span<const float> observation() const { return obs; }
  void reset(std::uint64_t seed) { obs = env.reset(seed); }
  void reset() { obs = env.reset(); }
  std::mt19937_64& generator() { return env.generator(); }
  StepOutcome step(env::Action a) {
    const auto r = env.step(a);
    obs = r.observation;
    return {r.reward, r.terminated, r.truncated};
  }
  static constexpr int kNumActions = 2;
  std::string spec() const { return "CartPole-v1"; }

  agent::DqnLearner make_learner(const DqnTrainOptions& o) const {
    return agent::DqnLearner(o.dqn, static_cast<int>(obs.size()), kNumActions, o.seed);
  }
  agent::ReplaySpec replay_spec(const DqnTrainOptions& o) const {
    return {o.buffer_size, static_cast<int>(obs.size()), 0, 1, o.prioritized};
  }
  Choice choose(agent::DqnLearner& learner, double epsilon, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    if (unit(rng) < epsilon) return {std::uniform_int_distribution<env::Action>(0, kNumActions - 1)(rng), {}};
    return {learner.greedy_action(observation()), {}};
  }
  void store(agent::ReplayBuffer& replay, std::span<const float> observation, env::Action action, std::span<const float>,
             double ret, double discount, bool terminated) {
    replay.add(observation, action, {}, static_cast<float>(ret), terminated ? 0.0F : static_cast<float>(discount),
               this->observation());
  }
  EvalSummary evaluate(const nn::Mlp<float>& network, int episodes, std::uint64_t salt) {
    nn::Workspace<float> ws;
    nn::Matrix<float> x, y;
    return evaluate_episodes(*this, episodes, salt, [&](CartPoleDqnEnv& e) {
      const auto o = e.observation();
      x = Eigen::Map<const nn::Matrix<float>>(o.data(), 1, static_cast<Eigen::Index>(o.size()));
      network.predict(x, y, ws);
      Eigen::Index best = 0;
      y.row(0).maxCoeff(&best);
      return static_cast<env::Action>(best);
    });
  }
};

// ---- MealSim, candidate-scoring head -----------------------------------------------------

// With belief_particles > 0 the agent also keeps a belief over the user (a MealBelief that
// follows every step) and each candidate carries its values (write_belief_features). An
// environment for greedy evaluation keeps none: the policy it evaluates (DqnMealPolicy)
// follows the week with its own.
struct MealSimDqnEnv {
  MealSimDqnEnv(const std::filesystem::path& data_dir, const config::MealSimConfig& cfg, int belief_particles,
                int belief_top_k, std::uint64_t belief_seed, bool track_belief)
      : catalog(std::make_unique<env::Catalog>(env::Catalog::load(data_dir))),
        population(std::make_unique<env::Population>(env::Population::load(data_dir / "population.yaml"))),
        sim(std::make_unique<env::MealSim>(*catalog, *population, cfg)),
        belief_particles(belief_particles),
        belief_top_k(belief_top_k),
        belief_rng(belief_seed) {
    if (belief_particles > 0 && track_belief) {
      env::BeliefOptions options;
      options.particles = belief_particles;
      belief = std::make_unique<env::MealBelief>(*population, options);
    }
  }
  static std::unique_ptr<MealSimDqnEnv> for_evaluation(const DqnTrainOptions& o) {
    return std::make_unique<MealSimDqnEnv>(o.data_dir, o.mealsim, o.belief_particles, o.belief_top_k, 0, false);
  }

  std::unique_ptr<env::Catalog> catalog;
  std::unique_ptr<env::Population> population;
  std::unique_ptr<env::MealSim> sim;
  int belief_particles = 0;
  int belief_top_k = 0;
  std::vector<std::size_t> order;  // scratch of keep_top_k
  std::unique_ptr<env::MealBelief> belief;
  std::mt19937_64 belief_rng;
  std::vector<std::int16_t> allowed;
  std::vector<float> extras;      // per allowed candidate: recency, then the belief's values
  std::vector<float> scores;      // scratch of choose
  bool candidates_fresh = false;  // allowed and extras describe the current state

  int extra_size() const { return 1 + (belief_particles > 0 ? env::kBeliefCandidateFeatures : 0); }
  std::span<const float> observation() const { return sim->observation(); }
  void reset(std::uint64_t seed) {
    sim->reset(seed);
    candidates_fresh = false;
    if (belief) belief->start(*sim, belief_rng);
  }
  void reset() {
    sim->reset();
    candidates_fresh = false;
    if (belief) belief->start(*sim, belief_rng);
  }
  std::mt19937_64& generator() { return sim->generator(); }
  StepOutcome step(env::Action a) {
    const auto r = sim->step(a);
    candidates_fresh = false;
    // A truncated week still bootstraps from its next state, so the belief follows it there.
    if (belief && !r.terminated) belief->observe(a, r.accepted, r.eaten, belief_rng);
    return {r.reward, r.terminated, r.truncated};
  }
  std::string spec() const { return "MealSim catalog " + catalog->content_hash(); }

  agent::DqnLearner make_learner(const DqnTrainOptions& o) const {
    agent::CandidateFeatures f;
    f.observation_size = env::kObservationSize;
    f.static_size = env::kMealStaticFeatures;
    const bool with_belief = belief_particles > 0;
    f.dynamic_size = env::kCandidateDynamicFeatures + (with_belief ? env::kBeliefCandidateFeatures : 0);
    f.extra_size = extra_size();
    f.num_items = static_cast<int>(catalog->size());
    f.static_features = catalog->meal_features().data();
    const env::Catalog* meals = catalog.get();
    f.dynamic = [meals, with_belief](std::span<const float> obs, int item, const float* extras, float* out) {
      env::write_candidate_dynamic(*meals, obs, item, extras[0], out);
      if (with_belief) std::copy(extras + 1, extras + 1 + env::kBeliefCandidateFeatures, out + env::kCandidateDynamicFeatures);
    };
    return agent::DqnLearner(o.dqn, std::move(f), o.seed);
  }
  // A row must hold every allowed meal of a slot, or the belief's top K when only those are ranked.
  agent::ReplaySpec replay_spec(const DqnTrainOptions& o) const {
    return {o.buffer_size, env::kObservationSize, o.belief_top_k > 0 ? o.belief_top_k : kMaxCandidates, extra_size(),
            o.prioritized};
  }

  // The allowed candidates of the current state and their extras (computed once per state:
  // a belief's values cost particles x candidates planning scores).
  void refresh_candidates() {
    if (candidates_fresh) return;
    candidates_fresh = true;
    allowed.clear();
    extras.clear();
    const auto mask = sim->action_mask();
    for (std::size_t m = 0; m < mask.size(); ++m) {
      if (!mask[m]) continue;
      allowed.push_back(static_cast<std::int16_t>(m));
      extras.push_back(static_cast<float>(sim->meal_recency(static_cast<env::Action>(m))));
      if (belief) {
        float values[env::kBeliefCandidateFeatures];
        env::write_belief_features(belief->value(static_cast<env::Action>(m)), values);
        extras.insert(extras.end(), values, values + env::kBeliefCandidateFeatures);
      }
    }
    if (allowed.size() > static_cast<std::size_t>(kMaxCandidates)) {
      throw std::invalid_argument("MealSim: " + std::to_string(allowed.size()) + " candidates in one slot exceed " +
                                  std::to_string(kMaxCandidates));
    }
    if (belief && belief_top_k > 0 && allowed.size() > static_cast<std::size_t>(belief_top_k)) keep_top_k();
  }
  // Candidate generation by the belief: only the belief_top_k candidates with the highest
  // planning score stay (ties: lower catalog index), in catalog order.
  void keep_top_k() {
    const auto width = static_cast<std::size_t>(extra_size());
    // write_belief_features [2], after the recency
    policy::order_by_planning(allowed.size(), [&](std::size_t c) { return extras[c * width + 3]; }, order);
    order.resize(static_cast<std::size_t>(belief_top_k));
    std::sort(order.begin(), order.end());
    for (std::size_t k = 0; k < order.size(); ++k) {
      allowed[k] = allowed[order[k]];
      std::copy_n(extras.begin() + static_cast<std::ptrdiff_t>(order[k] * width), width,
                  extras.begin() + static_cast<std::ptrdiff_t>(k * width));
    }
    allowed.resize(order.size());
    extras.resize(order.size() * width);
  }

  Choice choose(agent::DqnLearner& learner, double epsilon, std::mt19937_64& rng) {
    refresh_candidates();
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::size_t pick = 0;
    if (unit(rng) < epsilon) {
      pick = std::uniform_int_distribution<std::size_t>(0, allowed.size() - 1)(rng);
    } else {
      scores.resize(allowed.size());
      learner.score_candidates(observation(), allowed, extras, scores);
      pick = static_cast<std::size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
    }
    const auto width = static_cast<std::size_t>(extra_size());
    return {allowed[pick], std::vector<float>(extras.begin() + static_cast<std::ptrdiff_t>(pick * width),
                                              extras.begin() + static_cast<std::ptrdiff_t>((pick + 1) * width))};
  }
  void store(agent::ReplayBuffer& replay, std::span<const float> observation, env::Action action,
             std::span<const float> action_extras, double ret, double discount, bool terminated) {
    if (!terminated) refresh_candidates();
    replay.add(observation, action, action_extras, static_cast<float>(ret), terminated ? 0.0F : static_cast<float>(discount),
               this->observation(), terminated ? std::span<const std::int16_t>{} : std::span<const std::int16_t>(allowed),
               terminated ? std::span<const float>{} : std::span<const float>(extras));
  }
  // The same greedy policy evaluation and serving use.
  EvalSummary evaluate(const nn::Mlp<float>& network, int episodes, std::uint64_t salt) {
    policy::DqnMealPolicy meal_policy(network, *catalog, population.get(), belief_particles, belief_top_k);
    std::mt19937_64 policy_rng(salt);  // greedy policies draw only for their belief, if any
    return evaluate_episodes(*this, episodes, salt,
                             [&](MealSimDqnEnv& e) { return meal_policy.act(*e.sim, policy_rng); });
  }
};

}  // namespace forkcast::training::dqn
