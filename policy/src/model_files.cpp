#include "forkcast/policy/model_files.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

#include "forkcast/policy/checkpoint.hpp"

namespace forkcast::policy {

namespace nn = agent::nn;

DqnModel load_dqn_model(const std::filesystem::path& path) {
  const auto c = load_safetensors(path);
  const std::string where = path.string();
  const auto& format = c.metadata_at("format", where);
  std::vector<std::int64_t> declared;
  try {
    declared = nlohmann::json::parse(c.metadata_at("layer_sizes", where)).get<std::vector<std::int64_t>>();
  } catch (const nlohmann::json::exception& ex) {
    throw CheckpointError(where, std::string("metadata \"layer_sizes\" is not a list of sizes: ") + ex.what());
  }
  if (declared.size() < 2) throw CheckpointError(where, "metadata \"layer_sizes\" needs at least two entries");
  // The network is allocated from this metadata before any tensor is read: sizes must be
  // plausible and the file must hold at least as many floats as the network has
  // parameters, or a 300-byte file could ask for gigabytes.
  constexpr std::int64_t kMaxLayerWidth = 65'536;
  std::vector<int> sizes;
  std::int64_t parameters = 0;
  for (std::size_t l = 0; l < declared.size(); ++l) {
    if (declared[l] < 1 || declared[l] > kMaxLayerWidth) {
      throw CheckpointError(where, "metadata \"layer_sizes\" entry " + std::to_string(declared[l]) + " is outside 1.." +
                                       std::to_string(kMaxLayerWidth));
    }
    sizes.push_back(static_cast<int>(declared[l]));
    if (l > 0) parameters += (declared[l - 1] + 1) * declared[l];
  }
  std::int64_t floats_in_file = 0;
  for (const auto& t : c.tensors) floats_in_file += static_cast<std::int64_t>(t.data.size() / sizeof(float));
  if (parameters > floats_in_file) {
    throw CheckpointError(where, "metadata \"layer_sizes\" describes " + std::to_string(parameters) +
                                     " parameters but the file holds " + std::to_string(floats_in_file) + " floats");
  }
  DqnModel model;
  model.env = c.metadata_at("env", where);
  model.env_spec = c.metadata_at("env_spec", where);
  model.metadata = c.metadata;
  model.network = std::make_unique<nn::Mlp<float>>(sizes, 0);
  if (format == kDqnModelFormat) {
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      auto w = model.network->weight(static_cast<int>(l));
      auto b = model.network->bias(static_cast<int>(l));
      const std::string prefix = std::to_string(2 * l);
      const auto& wt = c.at(prefix + ".weight");
      const auto& bt = c.at(prefix + ".bias");
      if (wt.shape != std::vector<std::int64_t>{w.rows(), w.cols()} || bt.shape != std::vector<std::int64_t>{b.size()}) {
        throw CheckpointError(where, "layer " + prefix + " has a shape that does not match layer_sizes");
      }
      const auto wv = wt.as<float>();
      const auto bv = bt.as<float>();
      std::copy(wv.begin(), wv.end(), w.data());
      std::copy(bv.begin(), bv.end(), b.data());
    }
  } else if (format == kDqnCheckpointFormat) {
    const auto values = c.at("best.params").as<float>();
    if (values.size() != model.network->num_parameters()) {
      throw CheckpointError(where, "tensor \"best.params\" does not match layer_sizes");
    }
    std::copy(values.begin(), values.end(), model.network->parameters().begin());
  } else {
    throw CheckpointError(where, "format \"" + format + "\" is not a forkcast DQN model or checkpoint");
  }
  return model;
}

namespace {

// A count in 1..4096 stored in the model's metadata under `key`; 0 when absent.
int metadata_count(const DqnModel& model, const std::filesystem::path& path, const std::string& key) {
  const auto it = model.metadata.find(key);
  if (it == model.metadata.end()) return 0;
  int value = 0;
  const auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (ec != std::errc() || end != it->second.data() + it->second.size() || value < 1 || value > 4096) {
    throw CheckpointError(path.string(), "metadata \"" + key + "\" is \"" + it->second + "\", expected 1..4096");
  }
  return value;
}

}  // namespace

int dqn_belief_particles(const DqnModel& model, const std::filesystem::path& path) {
  return metadata_count(model, path, "belief_particles");
}

int dqn_belief_top_k(const DqnModel& model, const std::filesystem::path& path) {
  return metadata_count(model, path, "belief_top_k");
}

agent::TabularQ load_tabular_checkpoint(const std::filesystem::path& path) {
  const auto c = load_safetensors(path);
  const std::string where = path.string();
  if (c.metadata_at("format", where) != kTabularCheckpointFormat) {
    throw CheckpointError(path.string(), std::string("not a forkcast tabular checkpoint (metadata format is not ") + std::string(kTabularCheckpointFormat) + ")");
  }
  const auto& t = c.at("q_table");
  if (t.shape.size() != 2 || t.shape[0] <= 0 || t.shape[1] <= 0) {
    throw CheckpointError(path.string(), "tensor \"q_table\" must be 2-D [states, actions]");
  }
  double learning_rate = 0, gamma = 0;
  try {
    const auto config = nlohmann::json::parse(c.metadata_at("config", where));
    learning_rate = config.at("learning_rate").get<double>();
    gamma = config.at("gamma").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where, std::string("metadata \"config\" is not valid: ") + e.what());
  }
  agent::TabularQ q({static_cast<int>(t.shape[0]), static_cast<int>(t.shape[1]), learning_rate, gamma, 0.0});
  q.load_table(t.as<double>());
  return q;
}

}  // namespace forkcast::policy
