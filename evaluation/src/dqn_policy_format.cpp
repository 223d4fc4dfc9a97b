// The DQN's checkpoint formats for the policy loader (policy_loader.hpp): evaluate a
// trained candidate-scoring network from model.safetensors or a training checkpoint.
#include <cmath>
#include <limits>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/greedy_policies.hpp"
#include "forkcast/policy/model_files.hpp"
#include "forkcast/evaluation/policy_loader.hpp"

namespace forkcast::evaluation {

using policy::Checkpoint;
using policy::CheckpointError;
using policy::DqnMealPolicy;
using policy::dqn_belief_particles;
using policy::dqn_belief_top_k;
using policy::load_dqn_model;

namespace {

namespace nn = agent::nn;

// Owns the network the policy points to.
class OwnedDqnPolicy final : public env::MealPolicy {
 public:
  OwnedDqnPolicy(std::shared_ptr<const nn::Mlp<float>> network, const env::Catalog& catalog,
                 const env::Population& population, int belief_particles, int belief_top_k)
      : network_(std::move(network)), policy_(*network_, catalog, &population, belief_particles, belief_top_k) {}
  std::string_view name() const override { return "dqn"; }
  env::Action act(const env::MealSim& sim, std::mt19937_64& rng) override { return policy_.act(sim, rng); }

 private:
  std::shared_ptr<const nn::Mlp<float>> network_;
  DqnMealPolicy policy_;
};

// Greedy on the network's scores of the logged candidates. The logged state features must
// be a MealSim observation; a candidate's recency comes from the logged candidate features
// (first dynamic feature) when they are there, else it counts as never eaten.
class DqnOpeTarget final : public OpeTarget {
 public:
  DqnOpeTarget(std::shared_ptr<const nn::Mlp<float>> network, const env::Catalog& catalog)
      : network_(std::move(network)), catalog_(&catalog) {}
  std::string_view name() const override { return "dqn"; }
  void pmf(const LoggedDecision& d, std::span<double> pmf) override {
    if (d.state_features.size() != static_cast<std::size_t>(env::kObservationSize)) {
      throw std::invalid_argument("decision " + d.event_id + " (line " + std::to_string(d.line) + "): state_features has " +
                                  std::to_string(d.state_features.size()) + " values, a MealSim observation has " +
                                  std::to_string(env::kObservationSize));
    }
    rows_.resize(static_cast<Eigen::Index>(d.candidates.size()), env::kCandidateInputSize);
    for (std::size_t c = 0; c < d.candidates.size(); ++c) {
      float recency = 0.0F;
      if (d.candidate_feature_dim > 0 && d.candidate_features.size() >= (c + 1) * static_cast<std::size_t>(d.candidate_feature_dim)) {
        recency = d.candidate_features[c * static_cast<std::size_t>(d.candidate_feature_dim)];
      }
      env::write_candidate_input(*catalog_, d.state_features, d.candidates[c], recency,
                                 rows_.row(static_cast<Eigen::Index>(c)).data());
    }
    network_->predict(rows_, scores_, workspace_);
    Eigen::Index best = 0;
    scores_.col(0).maxCoeff(&best);
    for (std::size_t c = 0; c < pmf.size(); ++c) pmf[c] = static_cast<Eigen::Index>(c) == best ? 1.0 : 0.0;
  }

 private:
  std::shared_ptr<const nn::Mlp<float>> network_;
  const env::Catalog* catalog_;
  nn::Matrix<float> rows_, scores_;
  nn::Workspace<float> workspace_;
};

}  // namespace

LoadedPolicy make_dqn_meal_policy(const Checkpoint& checkpoint, const std::filesystem::path& path,
                                  const PolicyLoadContext& context) {
  auto model = load_dqn_model(path);
  const int belief_particles = dqn_belief_particles(model, path);
  const int belief_top_k = dqn_belief_top_k(model, path);
  if (belief_top_k > 0 && belief_particles == 0) {
    throw CheckpointError(path.string(), "metadata \"belief_top_k\" (" + std::to_string(belief_top_k) +
                                             ") needs \"belief_particles\", which the file lacks");
  }
  const int expected = env::kCandidateInputSize + (belief_particles > 0 ? env::kBeliefCandidateFeatures : 0);
  if (model.network->input_size() != expected || model.network->output_size() != 1) {
    throw CheckpointError(path.string(), "is not a MealSim candidate scorer (" + std::to_string(model.network->input_size()) +
                                             " -> " + std::to_string(model.network->output_size()) + ", expected " +
                                             std::to_string(expected) + " -> 1)");
  }
  std::shared_ptr<const nn::Mlp<float>> network = std::move(model.network);
  LoadedPolicy p;
  p.label = "dqn[" + path.parent_path().filename().string() + "/" + path.stem().string() + "]";
  if (path.parent_path().filename().empty()) p.label = "dqn[" + path.stem().string() + "]";
  const auto step = checkpoint.metadata.find("step");
  p.description = "DQN candidate scorer " + model.metadata["layer_sizes"] + ", greedy" +
                  (belief_particles > 0 ? ", on a belief of " + std::to_string(belief_particles) + " particles" : "") +
                  (belief_top_k > 0 ? ", among its " + std::to_string(belief_top_k) + " best-planned meals" : "") +
                  (step != checkpoint.metadata.end() ? ", network of training step " + step->second : "");
  p.policy = std::make_unique<OwnedDqnPolicy>(network, *context.catalog, *context.population, belief_particles,
                                              belief_top_k);
  if (belief_particles > 0) {
    p.ope_unavailable = "its belief replays each week's history; logs hold single decisions";
  } else {
    p.ope_target = std::make_unique<DqnOpeTarget>(network, *context.catalog);
  }
  return p;
}

}  // namespace forkcast::evaluation
