// The model files forkcast writes and reads back, by format (metadata "format"):
//
//   forkcast.tabular.v1    a tabular Q-table ("q_table" [states, actions], float64) with its
//                          training config; written by training/tabular_training
//   forkcast.dqn.v1        a DQN training checkpoint (networks, optimizer, replay, generator
//                          states); its best network is "best.params"
//   forkcast.dqn-model.v1  a DQN network alone (model.safetensors): layer sizes and env spec in
//                          the metadata, tensors named like PyTorch's nn.Sequential of Linear
//                          layers ("0.weight", "0.bias", "2.weight", ...)
//
// Readers live here, beside the checkpoint format, because evaluation, serving and training
// all read models; only training writes them.
// Errors: every refusal is a CheckpointError "<file>: <problem>".
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "forkcast/agent/nn.hpp"
#include "forkcast/agent/tabular_q.hpp"

namespace forkcast::policy {

inline constexpr std::string_view kTabularCheckpointFormat = "forkcast.tabular.v1";
inline constexpr std::string_view kDqnCheckpointFormat = "forkcast.dqn.v1";
inline constexpr std::string_view kDqnModelFormat = "forkcast.dqn-model.v1";

// A trained network as evaluation and serving need it: layer sizes, weights, env spec.
struct DqnModel {
  std::string env;
  std::string env_spec;
  std::unique_ptr<agent::nn::Mlp<float>> network;
  std::map<std::string, std::string> metadata;
};

// Loads model.safetensors (or a final/latest checkpoint's best network). The layer sizes are
// checked to be plausible (1..65536) and backed by the file's floats before the network is
// allocated. Throws CheckpointError naming the file and the problem.
DqnModel load_dqn_model(const std::filesystem::path& path);
// The particles of the belief a MealSim model was trained on (metadata
// "belief_particles"; 0 when absent). Throws CheckpointError for a malformed value.
int dqn_belief_particles(const DqnModel& model, const std::filesystem::path& path);
// Candidates a belief model keeps per state (metadata "belief_top_k"; 0 = all).
int dqn_belief_top_k(const DqnModel& model, const std::filesystem::path& path);

// Loads a tabular checkpoint's table (validated: format, shape, config). Throws CheckpointError.
agent::TabularQ load_tabular_checkpoint(const std::filesystem::path& path);

}  // namespace forkcast::policy
