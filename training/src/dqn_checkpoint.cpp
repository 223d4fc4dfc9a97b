#include "dqn_checkpoint.hpp"

#include <algorithm>
#include <string>
#include <type_traits>

#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/model_files.hpp"
#include "forkcast/training/model_file.hpp"
#include "training_state.hpp"

namespace forkcast::training::dqn {

using policy::Checkpoint;
using policy::CheckpointError;
using policy::Tensor;

namespace {

namespace nn = agent::nn;

template <class Matrix>
auto whole(Matrix& m) {
  return std::span<typename Matrix::Scalar>(m.data(), static_cast<std::size_t>(m.size()));
}

std::string layer_sizes_json(const std::vector<int>& sizes) { return nlohmann::json(sizes).dump(); }

}  // namespace

std::vector<StateTensor> state_tensors(RunState& s, const DqnTrainOptions& o) {
  auto& learner = s.learner;
  auto& replay = s.replay;
  const auto flat = [](std::size_t size) { return std::vector<std::int64_t>{static_cast<std::int64_t>(size)}; };
  const auto n = static_cast<std::int64_t>(replay.capacity());
  const auto width = static_cast<std::int64_t>(replay.spec().observation_size);
  std::vector<StateTensor> t;
  t.push_back({"online.params", flat(learner.online().parameters().size()), learner.online().parameters()});
  t.push_back({"target.params", flat(learner.target().parameters().size()), learner.target().parameters()});
  t.push_back({"adam.m", flat(learner.optimizer().first_moment().size()), learner.optimizer().first_moment()});
  t.push_back({"adam.v", flat(learner.optimizer().second_moment().size()), learner.optimizer().second_moment()});
  t.push_back({"best.params", flat(s.best_params.size()), std::span<float>(s.best_params)});
  t.push_back({"replay.observations", {n, width}, whole(replay.observations())});
  t.push_back({"replay.next_observations", {n, width}, whole(replay.next_observations())});
  t.push_back({"replay.actions", flat(replay.actions().size()), std::span<std::int32_t>(replay.actions())});
  // "recency" names kept from before candidates had other extras (same layout with one).
  t.push_back({"replay.action_recency", flat(replay.action_extras().size()), std::span<float>(replay.action_extras())});
  t.push_back({"replay.rewards", flat(replay.rewards().size()), std::span<float>(replay.rewards())});
  t.push_back({"replay.discounts", flat(replay.discounts().size()), std::span<float>(replay.discounts())});
  if (replay.spec().max_candidates > 0) {
    const auto k = static_cast<std::int64_t>(replay.spec().max_candidates);
    const auto kx = k * static_cast<std::int64_t>(replay.spec().candidate_extras);
    t.push_back({"replay.candidates", {n, k}, whole(replay.candidates())});
    t.push_back({"replay.candidate_recency", {n, kx}, whole(replay.candidate_extras())});
    t.push_back({"replay.candidate_counts", flat(replay.candidate_counts().size()),
                 std::span<std::int16_t>(replay.candidate_counts())});
  }
  if (o.prioritized) t.push_back({"replay.priority_tree", flat(replay.priority_tree().size()), std::span<double>(replay.priority_tree())});
  if (o.dqn.quantization_aware) t.push_back({"latent.params", flat(learner.latent().size()), learner.latent()});
  return t;
}

nlohmann::json options_json(const DqnTrainOptions& o) {
  nlohmann::json j = {{"env", o.env},
                      {"total_steps", o.total_steps},
                      {"seed", o.seed},
                      {"hidden", o.dqn.hidden},
                      {"learning_rate", o.dqn.learning_rate},
                      {"gamma", o.dqn.gamma},
                      {"n_step", o.dqn.n_step},
                      {"batch_size", o.dqn.batch_size},
                      {"huber_delta", o.dqn.huber_delta},
                      {"max_grad_norm", o.dqn.max_grad_norm},
                      {"double_dqn", o.dqn.double_dqn},
                      {"tau", o.dqn.tau},
                      {"target_update_every", o.dqn.target_update_every},
                      {"buffer_size", o.buffer_size},
                      {"prioritized", o.prioritized},
                      {"learning_starts", o.learning_starts},
                      {"train_frequency", o.train_frequency},
                      {"gradient_steps", o.gradient_steps},
                      {"epsilon_start", o.epsilon_start},
                      {"epsilon_end", o.epsilon_end},
                      {"exploration_fraction", o.exploration_fraction}};
  // Only when on, so that the settings of runs without it (and their checkpoints) read as before.
  if (o.dqn.quantization_aware) j["quantization_aware"] = true;
  if (o.belief_particles > 0) j["belief_particles"] = o.belief_particles;
  if (o.belief_top_k > 0) j["belief_top_k"] = o.belief_top_k;
  return j;
}

void add_belief_metadata(std::map<std::string, std::string>& metadata, const DqnTrainOptions& o) {
  if (o.belief_particles > 0) metadata["belief_particles"] = std::to_string(o.belief_particles);
  if (o.belief_top_k > 0) metadata["belief_top_k"] = std::to_string(o.belief_top_k);
}

void save_checkpoint(const std::filesystem::path& path, RunState& s, const DqnTrainOptions& o,
                     const std::string& env_spec, const std::mt19937_64& env_rng) {
  Checkpoint c;
  for (const auto& t : state_tensors(s, o)) {
    std::visit(
        [&](auto values) {
          using T = std::remove_const_t<typename decltype(values)::element_type>;
          c.tensors.push_back(Tensor::from_span<T>(t.name, t.shape, std::span<const T>(values.data(), values.size())));
        },
        t.values);
  }
  const auto rs = s.replay.state();
  c.metadata = {{"format", std::string(policy::kDqnCheckpointFormat)},
                {"env", o.env},
                {"env_spec", env_spec},
                {"layer_sizes", layer_sizes_json(s.learner.online().layer_sizes())},
                {"config", options_json(o).dump()},
                {"step", std::to_string(s.step)},
                {"episodes", std::to_string(s.episodes)},
                {"updates", std::to_string(s.learner.updates())},
                {"adam_steps", std::to_string(s.learner.optimizer().steps())},
                {"rng_state", generator_state(s.rng)},
                {"env_rng_state", generator_state(env_rng)},
                {"replay_state", nlohmann::json{{"size", rs.size}, {"next", rs.next}, {"max_priority", rs.max_priority}}.dump()},
                {"best", nlohmann::json{{"score", s.best_score}, {"step", s.best_step}}.dump()},
                {"recent_returns", s.recent.to_json().dump()},
                {"git_revision", o.git_revision}};
  add_belief_metadata(c.metadata, o);
  policy::save_safetensors(path, c);
}

void restore_checkpoint(const std::filesystem::path& path, RunState& s, const DqnTrainOptions& o,
                        const std::string& env_spec, std::mt19937_64& env_rng) {
  const auto c = policy::load_safetensors(path);
  const std::string where = path.string();
  check_resumable(c, where, std::string(policy::kDqnCheckpointFormat), o.env, env_spec, "DQN training");
  if (c.metadata_at("config", where) != options_json(o).dump()) {
    throw CheckpointError(where, "was trained with other settings: " + c.metadata_at("config", where));
  }
  for (const auto& t : state_tensors(s, o)) {
    std::visit(
        [&](auto dst) {
          using T = std::remove_const_t<typename decltype(dst)::element_type>;
          const auto values = c.at(t.name).template as<T>();
          if (values.size() != dst.size()) {
            throw CheckpointError(where, "tensor \"" + t.name + "\" has " + std::to_string(values.size()) +
                                             " values, expected " + std::to_string(dst.size()));
          }
          std::copy(values.begin(), values.end(), dst.begin());
        },
        t.values);
  }
  try {
    const auto rs = nlohmann::json::parse(c.metadata_at("replay_state", where));
    s.replay.restore_state({rs.at("size").get<std::size_t>(), rs.at("next").get<std::size_t>(), rs.at("max_priority").get<double>()});
    try {
      s.replay.check_contents(s.learner.action_bound());
    } catch (const std::invalid_argument& ex) {
      throw CheckpointError(where, ex.what());
    }
    const auto best = nlohmann::json::parse(c.metadata_at("best", where));
    s.best_score = best.at("score").is_number() ? best.at("score").get<double>() : -std::numeric_limits<double>::infinity();
    s.best_step = best.at("step").get<std::int64_t>();
    s.recent.restore(nlohmann::json::parse(c.metadata_at("recent_returns", where)));
  } catch (const nlohmann::json::exception& ex) {
    throw CheckpointError(where, std::string("metadata is not valid: ") + ex.what());
  }
  s.step = std::stoll(c.metadata_at("step", where));
  s.episodes = std::stoll(c.metadata_at("episodes", where));
  s.learner.set_updates(std::stoll(c.metadata_at("updates", where)));
  s.learner.optimizer().set_steps(std::stoll(c.metadata_at("adam_steps", where)));
  restore_generator(c, "rng_state", where, s.rng);
  restore_generator(c, "env_rng_state", where, env_rng);
}

void save_model(const std::filesystem::path& path, const nn::Mlp<float>& network, const DqnTrainOptions& o,
                const std::string& env_spec, std::int64_t step) {
  std::map<std::string, std::string> metadata = {{"env", o.env},
                                                 {"env_spec", env_spec},
                                                 {"config", options_json(o).dump()},
                                                 {"step", std::to_string(step)},
                                                 {"git_revision", o.git_revision}};
  add_belief_metadata(metadata, o);
  save_model_file(path, network, std::move(metadata));
}

}  // namespace forkcast::training::dqn
