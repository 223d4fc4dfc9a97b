#include "forkcast/training/model_file.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <vector>

#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/model_files.hpp"

namespace forkcast::training {

void save_model_file(const std::filesystem::path& path, const agent::nn::Mlp<float>& network,
                     std::map<std::string, std::string> metadata) {
  const std::string sizes = nlohmann::json(network.layer_sizes()).dump();
  if (const auto it = metadata.find("layer_sizes"); it != metadata.end() && it->second != sizes) {
    throw std::invalid_argument("metadata layer_sizes " + it->second + " is not the network's " + sizes);
  }
  if (const auto it = metadata.find("format"); it != metadata.end() && it->second != policy::kDqnModelFormat) {
    throw std::invalid_argument("metadata format '" + it->second + "' is not " + std::string(policy::kDqnModelFormat));
  }
  metadata["layer_sizes"] = sizes;
  metadata["format"] = std::string(policy::kDqnModelFormat);
  policy::Checkpoint model;
  model.metadata = std::move(metadata);
  for (int l = 0; l < network.num_layers(); ++l) {
    const auto w = network.weight(l);
    const auto b = network.bias(l);
    // nn.Sequential(Linear, ReLU, Linear, ...): the Linear layers sit at even indices.
    const std::string prefix = std::to_string(2 * l);
    model.tensors.push_back(policy::Tensor::from_span<float>(
        prefix + ".weight", {w.rows(), w.cols()}, std::span<const float>(w.data(), static_cast<std::size_t>(w.size()))));
    model.tensors.push_back(policy::Tensor::from_span<float>(
        prefix + ".bias", {b.size()}, std::span<const float>(b.data(), static_cast<std::size_t>(b.size()))));
  }
  policy::save_safetensors(path, model);
}

}  // namespace forkcast::training
