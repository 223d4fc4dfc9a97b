// Offline training of the tabular Q-learning agent (agent/tabular_q.hpp) on Taxi-v3,
// FrozenLake-v1 or MealSim (through agent/mealsim_discretizer.hpp), the loop behind
// `forkcast train --agent tabular`.
//
// The environment is reset with `seed` once, then continues its own stream episode after
// episode (Gymnasium's reset()); epsilon follows eps = min + (max - min) * exp(-decay * e)
// for episode e; actions are epsilon-greedy over the allowed ones; each transition is one
// Q-learning update. Exploration draws come from a std::mt19937_64 seeded with `seed`.
// Both generators' states are saved in every checkpoint, so --resume continues
// bit-exactly: the same table as a run that was never interrupted.
//
// Run folder (<runs_dir>/<run-id>/): metrics.jsonl (one JSON object per log interval),
// latest.safetensors (every checkpoint_every episodes, atomically replaced),
// final.safetensors (at the end or on interruption), summary.json.
// Errors: bad options throw std::invalid_argument naming the option and value; a
// checkpoint that does not fit (other env, shape, seed or catalog) is refused by name.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "forkcast/agent/tabular_q.hpp"
#include "forkcast/config/config.hpp"
#include "forkcast/env/baselines.hpp"
#include "forkcast/training/eval_summary.hpp"

namespace forkcast::training {

// Defaults are the config's (config::TrainingConfig, config::ExplorationConfig): one place.
struct TabularTrainOptions {
  std::string env = "taxi";  // taxi | frozenlake | frozenlake-slippery | mealsim
  std::int64_t episodes = 25'000;
  std::uint64_t seed = 0;
  int max_steps = config::TrainingConfig{}.max_steps;  // per episode; 0 keeps the environment's own time limit
  double learning_rate = config::TrainingConfig{}.learning_rate;
  double gamma = config::TrainingConfig{}.gamma;
  double epsilon_max = config::ExplorationConfig{}.epsilon_max;
  double epsilon_min = config::ExplorationConfig{}.epsilon_min;
  double epsilon_decay = config::ExplorationConfig{}.decay;
  std::int64_t checkpoint_every = config::TrainingConfig{}.checkpoint_every;
  std::int64_t log_every = 100;
  int eval_episodes = config::TrainingConfig{}.eval_episodes;
  std::filesystem::path run_dir;                     // required
  std::filesystem::path data_dir = "data";           // MealSim catalog and population
  config::MealSimConfig mealsim;
  std::optional<std::filesystem::path> resume_from;  // a checkpoint of the same run settings
  std::optional<std::filesystem::path> export_q_csv;
  std::string git_revision = "unknown";
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGINT) to stop after the current episode
  bool show_progress = true;
};

struct TabularTrainResult {
  std::int64_t episodes_done = 0;
  bool interrupted = false;
  std::filesystem::path checkpoint;  // final.safetensors
  EvalSummary greedy_eval;
  std::int64_t total_steps = 0;      // environment steps = Q-updates in this process
  double wall_s = 0;
};

TabularTrainResult train_tabular(const TabularTrainOptions& options);

// Greedy evaluation on a fixed list of episode seeds, the same for every training seed.
EvalSummary evaluate_tabular_greedy(const agent::TabularQ& q, const TabularTrainOptions& options, int episodes);

// Writes the table as CSV: header "state,<action names>", one row per state named in words.
void export_q_csv(const agent::TabularQ& q, const std::function<std::string(int)>& state_name,
                  const std::function<std::string(int)>& action_name, const std::filesystem::path& path);

}  // namespace forkcast::training
