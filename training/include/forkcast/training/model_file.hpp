// Writes a trained network as the model file evaluation and serving load
// (policy/model_files.hpp, format forkcast.dqn-model.v1): tensors named like PyTorch's
// nn.Sequential of Linear layers ("0.weight", "0.bias", "2.weight", ...), the metadata as
// given (the parent model's env, env_spec and layer_sizes, plus what the learner adds).
// Atomic (policy::save_safetensors); the directory must exist.
// Errors: policy::CheckpointError naming the path; std::invalid_argument when the metadata's
// layer_sizes or format disagree with the network (a file that would not load back).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "forkcast/agent/nn.hpp"

namespace forkcast::training {

void save_model_file(const std::filesystem::path& path, const agent::nn::Mlp<float>& network,
                     std::map<std::string, std::string> metadata);

}  // namespace forkcast::training
