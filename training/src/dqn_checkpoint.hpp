// A DQN training run's whole state and its checkpoint (forkcast.dqn.v1): networks, Adam
// moments, the best network so far, the replay, counters and generator states, so that
// --resume continues bit-exactly. One tensor table (state_tensors) is what save writes and
// restore reads back. Private to training/src.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "forkcast/agent/dqn.hpp"
#include "forkcast/agent/replay.hpp"
#include "forkcast/training/dqn_training.hpp"
#include "run_log.hpp"

namespace forkcast::training::dqn {

// Everything a run changes as it goes; the loop reads and writes it, checkpoints hold it.
struct RunState {
  RunState(agent::DqnLearner learner_, const agent::ReplaySpec& replay_spec, std::uint64_t seed)
      : learner(std::move(learner_)),
        replay(replay_spec),
        rng(seed ^ 0xa5a5'a5a5'a5a5'a5a5ULL),
        best_params(learner.online().parameters().begin(), learner.online().parameters().end()) {}

  agent::DqnLearner learner;
  agent::ReplayBuffer replay;
  std::mt19937_64 rng;                 // exploration and minibatches
  std::vector<float> best_params;      // the best-evaluated online network
  double best_score = -std::numeric_limits<double>::infinity();
  std::int64_t best_step = 0;
  std::int64_t step = 0;
  std::int64_t episodes = 0;
  RecentReturns recent;
};

// One tensor of the checkpoint: name, shape, and the state it is saved from and restored into.
struct StateTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::variant<std::span<float>, std::span<std::int32_t>, std::span<std::int16_t>, std::span<double>> values;
};
// Every tensor of a checkpoint of `state`, in file order.
std::vector<StateTensor> state_tensors(RunState& state, const DqnTrainOptions& o);

// The settings a checkpoint must share to be resumed (metadata "config").
nlohmann::json options_json(const DqnTrainOptions& o);
// Metadata every file of the run carries (belief settings only when on, so that older
// files read as before).
void add_belief_metadata(std::map<std::string, std::string>& metadata, const DqnTrainOptions& o);

void save_checkpoint(const std::filesystem::path& path, RunState& state, const DqnTrainOptions& o,
                     const std::string& env_spec, const std::mt19937_64& env_rng);
// Restores `state` and the environment's generator from a checkpoint of the same settings.
// Throws CheckpointError naming the file for another format, env, spec, settings, a tensor
// of the wrong size, replay contents out of range, or malformed metadata.
void restore_checkpoint(const std::filesystem::path& path, RunState& state, const DqnTrainOptions& o,
                        const std::string& env_spec, std::mt19937_64& env_rng);

// The best network alone (model.safetensors, forkcast.dqn-model.v1).
void save_model(const std::filesystem::path& path, const agent::nn::Mlp<float>& network, const DqnTrainOptions& o,
                const std::string& env_spec, std::int64_t step);

}  // namespace forkcast::training::dqn
