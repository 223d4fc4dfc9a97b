// Offline training of the deep Q-network (agent/dqn.hpp) on CartPole-v1 (fixed-action
// head) or MealSim (candidate-scoring head): the loop behind `forkcast train --agent dqn`.
// It reads top to bottom like CleanRL's dqn.py: act epsilon-greedily (linear schedule over
// steps), store n-step transitions, update every train_frequency steps after
// learning_starts, refresh the target network, evaluate greedily now and then and keep
// the best network.
//
// Run folder (<runs_dir>/<run-id>/): metrics.jsonl (one JSON object per log interval),
// latest.safetensors (at the first episode end after every checkpoint_every steps;
// networks, optimizer, replay and generator states: --resume continues bit-exactly, except
// for runs on a belief, whose particles are not saved and which refuse --resume),
// final.safetensors (the same, at the end or on Ctrl-C), model.safetensors (the best
// network alone, with its layer sizes and env spec in __metadata__: what evaluation and
// serving load; tensors named like PyTorch's nn.Sequential of Linear layers), summary.json.
// Training is deterministic for a given seed (single-threaded kernels).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "forkcast/agent/dqn.hpp"
#include "forkcast/config/config.hpp"
#include "forkcast/env/baselines.hpp"
#include "forkcast/training/eval_summary.hpp"

namespace forkcast::training {

struct DqnTrainOptions {
  std::string env = "cartpole";  // cartpole | mealsim
  std::int64_t total_steps = 150'000;
  std::uint64_t seed = 0;
  agent::DqnConfig dqn;
  std::size_t buffer_size = 100'000;
  bool prioritized = false;
  std::int64_t learning_starts = 1'000;
  int train_frequency = 4;   // environment steps between update rounds
  int gradient_steps = 1;    // updates per round
  double epsilon_start = 1.0;
  double epsilon_end = 0.05;
  double exploration_fraction = 0.1;  // of total_steps, linear decay from start to end
  std::int64_t eval_every = 5'000;    // steps between greedy evaluations (0: none)
  int eval_episodes_during = 10;      // episodes (users for MealSim) per evaluation
  int eval_episodes = 100;            // final evaluation of the best network
  // Stop early once a during-training evaluation reaches this mean return (CartPole: its
  // maximum, 500); NaN: never.
  double stop_at_eval_return = std::numeric_limits<double>::quiet_NaN();
  std::int64_t checkpoint_every = 50'000;
  std::int64_t log_every = 1'000;     // steps between metrics records
  std::filesystem::path run_dir;
  std::filesystem::path data_dir = "data";
  config::MealSimConfig mealsim;
  std::optional<std::filesystem::path> resume_from;
  std::string numa = "auto";  // auto | off
  std::string git_revision = "unknown";
  // MealSim: > 0 trains on a belief over the user (env/belief_policy.hpp) of this many
  // particles, whose values every candidate row carries; 0: the observation alone.
  int belief_particles = 0;
  // With a belief: > 0 keeps only this many candidates per state, those with the highest
  // planning score (candidate generation by the belief, ranking by the network); 0: all.
  int belief_top_k = 0;
  const std::atomic<bool>* stop = nullptr;
  bool show_progress = true;
};

struct DqnTrainResult {
  std::int64_t steps_done = 0;
  std::int64_t episodes = 0;
  bool interrupted = false;
  std::filesystem::path checkpoint;  // final.safetensors
  std::filesystem::path model;       // model.safetensors (best network)
  std::int64_t best_step = 0;        // step at which the best network was evaluated
  double best_during_eval = 0;
  EvalSummary greedy_eval;           // of the best network, eval_episodes episodes
  double wall_s = 0;
};

DqnTrainResult train_dqn(const DqnTrainOptions& options);

// The documented defaults per environment (docs/agents.md): CartPole's are the RL Baselines3
// Zoo preset (a greedy 475+ within 150 000 steps); MealSim's are dqn_options(config::DqnConfig{}),
// the run behind the bundled model. Throws std::invalid_argument for another env.
DqnTrainOptions default_dqn_options(const std::string& env);
// MealSim options from the config's `dqn` section (config::DqnConfig; every key there has its
// field here). Throws config::ConfigError for a malformed dqn.hidden.
DqnTrainOptions dqn_options(const config::DqnConfig& dqn);

// Greedy mean return of a CartPole network over the shared evaluation seeds.
EvalSummary evaluate_cartpole(const agent::nn::Mlp<float>& network, int episodes);

}  // namespace forkcast::training
