#include "forkcast/evaluation/policy_loader.hpp"

#include <algorithm>
#include <charconv>
#include <array>
#include <stdexcept>
#include <system_error>

#include "forkcast/agent/mealsim_discretizer.hpp"
#include "forkcast/agent/tabular_q.hpp"
#include "forkcast/env/belief_policy.hpp"
#include "forkcast/evaluation/served_policy.hpp"
#include "forkcast/policy/greedy_policies.hpp"
#include "forkcast/policy/snapshot.hpp"
#include "forkcast/policy/model_files.hpp"

namespace forkcast::evaluation {

using policy::Checkpoint;
using policy::CheckpointError;
using policy::TabularMealPolicy;
using policy::kTabularCheckpointFormat;
using policy::load_tabular_checkpoint;
using policy::sha256_file_hex;
using policy::load_safetensors;

namespace {

// Metadata that is state for --resume, not information for a reader of the report.
constexpr std::array<std::string_view, 3> kHiddenMetadata = {"rng_state", "env_rng_state", "recent_returns"};

// Greedy on a Q-table through the MealSim discretizer; owns the table so the policy can
// outlive the loader.
class OwnedTabularPolicy final : public env::MealPolicy {
 public:
  explicit OwnedTabularPolicy(std::shared_ptr<const agent::TabularQ> q) : q_(std::move(q)), greedy_(*q_) {}
  std::string_view name() const override { return "tabular"; }
  env::Action act(const env::MealSim& sim, std::mt19937_64& rng) override { return greedy_.act(sim, rng); }

 private:
  std::shared_ptr<const agent::TabularQ> q_;
  TabularMealPolicy greedy_;
};

// The same greedy choice from a logged decision: the discretizer reads the logged
// observation, the candidates stand for the mask. Ties go to the lowest catalog index, as
// TabularQ::greedy_action does.
class TabularOpeTarget final : public OpeTarget {
 public:
  explicit TabularOpeTarget(std::shared_ptr<const agent::TabularQ> q) : q_(std::move(q)) {}
  std::string_view name() const override { return "tabular"; }
  void pmf(const LoggedDecision& d, std::span<double> pmf) override {
    if (d.state_features.size() != static_cast<std::size_t>(env::kObservationSize)) {
      throw std::invalid_argument("tabular target: decision " + d.event_id + " has " +
                                  std::to_string(d.state_features.size()) + " state_features, the MealSim observation has " +
                                  std::to_string(env::kObservationSize));
    }
    const auto values = q_->values(agent::MealSimDiscretizer::state(d.state_features));
    std::size_t best = 0;
    for (std::size_t j = 1; j < d.candidates.size(); ++j) {
      const auto a = static_cast<std::size_t>(d.candidates[j]);
      const auto b = static_cast<std::size_t>(d.candidates[best]);
      if (values[a] > values[b] || (values[a] == values[b] && a < b)) best = j;
    }
    std::fill(pmf.begin(), pmf.end(), 0.0);
    pmf[best] = 1.0;
  }

 private:
  std::shared_ptr<const agent::TabularQ> q_;
};

LoadedPolicy make_tabular_policy(const Checkpoint& checkpoint, const std::filesystem::path& path,
                                 const PolicyLoadContext& context) {
  // load_tabular_checkpoint re-validates the format and the table's shape.
  auto q = std::make_shared<const agent::TabularQ>(load_tabular_checkpoint(path));
  if (q->num_states() != agent::MealSimDiscretizer::kNumStates ||
      q->num_actions() != static_cast<int>(context.catalog->size())) {
    throw CheckpointError(path.string(), "q_table is [" + std::to_string(q->num_states()) + ", " +
                                             std::to_string(q->num_actions()) + "], MealSim with this catalog needs [" +
                                             std::to_string(agent::MealSimDiscretizer::kNumStates) + ", " +
                                             std::to_string(context.catalog->size()) + "]");
  }
  LoadedPolicy p;
  p.label = "tabular[" + path.parent_path().filename().string() + "/" + path.stem().string() + "]";
  if (path.parent_path().filename().empty()) p.label = "tabular[" + path.stem().string() + "]";
  const auto episode = checkpoint.metadata.find("episode");
  p.description = "tabular Q-learning, greedy through the MealSim discretizer (" +
                  std::to_string(agent::MealSimDiscretizer::kNumStates) + " states)" +
                  (episode != checkpoint.metadata.end() ? ", " + episode->second + " training episodes" : "");
  p.policy = std::make_unique<OwnedTabularPolicy>(q);
  p.ope_target = std::make_unique<TabularOpeTarget>(q);
  return p;
}

std::string hash_of_spec(std::string_view spec) {
  constexpr std::string_view kPrefix = "MealSim catalog ";
  return spec.starts_with(kPrefix) ? std::string(spec.substr(kPrefix.size())) : std::string(spec);
}

}  // namespace

void CheckpointFormats::add(std::string format, CheckpointPolicyFactory factory) {
  if (factories_.contains(format)) throw std::invalid_argument("checkpoint format \"" + format + "\" is already registered");
  factories_.emplace(std::move(format), std::move(factory));
}

const CheckpointPolicyFactory* CheckpointFormats::find(std::string_view format) const {
  const auto it = factories_.find(format);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> CheckpointFormats::names() const {
  std::vector<std::string> out;
  for (const auto& [name, factory] : factories_) out.push_back(name);
  return out;
}

CheckpointFormats builtin_checkpoint_formats() {
  CheckpointFormats formats;
  formats.add(std::string(kTabularCheckpointFormat), make_tabular_policy);
  // The DQN: its served network (model.safetensors) and its training checkpoints, whose
  // best network the factory takes (policy/src/dqn_policy_format.cpp).
  formats.add("forkcast.dqn-model.v1", make_dqn_meal_policy);
  formats.add("forkcast.dqn.v1", make_dqn_meal_policy);
  return formats;
}

std::vector<std::string> builtin_policy_names() {
  return {"random", "popularity", "myopic-oracle", "planning-oracle", "belief-myopic", "belief-planner"};
}

namespace {

constexpr std::string_view kServedPrefix = "served:";

// "served:<model>": the model file passes the checkpoint checks of any other file (through
// load_meal_policy), then is loaded as the service loads it and acts through decide().
LoadedPolicy load_served_policy(std::string_view spec, const PolicyLoadContext& context,
                                const CheckpointFormats& formats) {
  const std::string model_path(spec.substr(kServedPrefix.size()));
  if (model_path.empty()) throw std::invalid_argument("--policy \"" + std::string(spec) + "\": write served:<model file>");
  LoadedPolicy p = load_meal_policy(model_path, context, formats);
  auto snapshot = policy::PolicySnapshot::load(model_path, *context.catalog, "served");
  p.spec = std::string(spec);
  const auto bracket = p.label.find('[');
  p.label = bracket == std::string::npos ? "served[" + p.label + "]" : "served" + p.label.substr(bracket);
  p.description = "the service's decision path (policy::decide) on this model: float32 scores, epsilon-greedy by the "
                  "serving schedule over each user's decisions, seeded draws";
  p.policy = std::make_unique<ServedMealPolicy>(std::move(snapshot), context.exploration);
  p.ope_target.reset();
  p.ope_unavailable = "explores by each user's decision count, which a logged decision does not carry";
  return p;
}

}  // namespace

LoadedPolicy load_meal_policy(std::string_view spec, const PolicyLoadContext& context, const CheckpointFormats& formats) {
  if (context.catalog == nullptr || context.population == nullptr) {
    throw std::invalid_argument("PolicyLoadContext: catalog and population must be set");
  }
  if (spec.starts_with(kServedPrefix)) return load_served_policy(spec, context, formats);
  LoadedPolicy p;
  p.spec = std::string(spec);
  p.kind = "built-in";
  if (spec == "random") {
    p.policy = std::make_unique<env::RandomPolicy>();
    p.ope_target = std::make_unique<UniformTarget>();
    p.description = "uniform among the meals allowed now";
  } else if (spec == "popularity") {
    auto popularity = env::estimate_popularity(*context.catalog, *context.population, context.mealsim,
                                               context.popularity_users, context.popularity_seed);
    p.ope_target = std::make_unique<MealScoreGreedyTarget>("popularity", popularity);
    p.policy = std::make_unique<env::PopularityPolicy>(std::move(popularity));
    p.description = "the allowed meal most often accepted in " + std::to_string(context.popularity_users) +
                    " simulated weeks of the random policy (seed " + std::to_string(context.popularity_seed) + ")";
  } else if (spec == "myopic-oracle") {
    p.policy = std::make_unique<env::MyopicOraclePolicy>();
    p.reads_hidden_state = true;
    p.description = "knows the hidden taste; maximises this step's expected reward (a bound, not deployable)";
  } else if (spec == "planning-oracle") {
    p.policy = std::make_unique<env::PlanningOraclePolicy>();
    p.reads_hidden_state = true;
    p.description = "knows the hidden taste; also values the rest of the day, satisfaction and boredom (a bound)";
  } else if (spec == "belief-myopic" || spec == "belief-planner" || spec.starts_with("belief-myopic:") ||
             spec.starts_with("belief-planner:")) {
    // "belief-planner" or "belief-planner:N" for N particles (1..4096).
    env::BeliefOptions belief;
    belief.plan = spec.starts_with("belief-planner");
    const std::string_view base = belief.plan ? "belief-planner" : "belief-myopic";
    if (spec.size() > base.size()) {
      const std::string_view count = spec.substr(base.size() + 1);
      int particles = 0;
      const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), particles);
      if (ec != std::errc() || end != count.data() + count.size() || particles < 1 ||
          particles > 4096) {
        throw std::invalid_argument("--policy \"" + std::string(spec) + "\": write " + std::string(base) + " or " +
                                    std::string(base) + ":N with N particles in 1..4096");
      }
      belief.particles = particles;
    }
    p.policy = std::make_unique<env::BeliefPolicy>(*context.population, belief);
    p.description = std::string(belief.plan ? "the planning oracle's" : "the myopic oracle's") +
                    " rule on a belief over the hidden taste (" + std::to_string(belief.particles) +
                    " simulated users filtered by the week's answers; reads no hidden state)";
    p.ope_unavailable = "replays each week's history through its belief; logs hold single decisions";
  }
  if (p.policy) {
    p.label = std::string(spec);
    if (p.reads_hidden_state) p.ope_unavailable = "reads hidden simulator state (taste, satisfaction) that logs do not hold";
    return p;
  }

  const std::filesystem::path path{std::string(spec)};
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::string names;
    for (const auto& n : builtin_policy_names()) names += (names.empty() ? "" : ", ") + n;
    if (!spec.empty() && spec.find('/') == std::string_view::npos && !spec.ends_with(".safetensors")) {
      throw std::invalid_argument("--policy \"" + std::string(spec) + "\": not a built-in policy (" + names +
                                  ") and no such checkpoint file");
    }
    throw CheckpointError(path.string(), "no such checkpoint file");
  }
  if (!std::filesystem::is_regular_file(path, ec)) throw CheckpointError(path.string(), "not a regular file");

  const Checkpoint checkpoint = load_safetensors(path);  // throws CheckpointError on a corrupt file
  const std::string& format = checkpoint.metadata_at("format", path.string());
  const std::string& env_name = checkpoint.metadata_at("env", path.string());
  if (env_name != "mealsim") {
    throw CheckpointError(path.string(), "trained on env \"" + env_name + "\"; forkcast evaluate --env mealsim needs a MealSim checkpoint");
  }
  const std::string& env_spec = checkpoint.metadata_at("env_spec", path.string());
  const std::string expected_spec = "MealSim catalog " + context.catalog->content_hash();
  if (env_spec != expected_spec) {
    throw CheckpointError(path.string(), "environment spec mismatch: trained on catalog " + hash_of_spec(env_spec) +
                                             ", evaluating catalog " + context.catalog->content_hash() +
                                             " (the catalog changed since training; retrain or evaluate with its --data-dir)");
  }
  const auto* factory = formats.find(format);
  if (factory == nullptr) {
    std::string known;
    for (const auto& n : formats.names()) known += (known.empty() ? "" : ", ") + n;
    throw CheckpointError(path.string(), "unknown checkpoint format \"" + format + "\" (this build evaluates " + known + ")");
  }
  LoadedPolicy loaded = (*factory)(checkpoint, path, context);
  if (!loaded.policy) throw CheckpointError(path.string(), "format \"" + format + "\" produced no policy");
  loaded.spec = std::string(spec);
  loaded.kind = "checkpoint";
  if (loaded.label.empty()) loaded.label = path.stem().string();
  if (!loaded.ope_target && loaded.ope_unavailable.empty()) {
    loaded.ope_unavailable = "format \"" + format + "\" provides no off-policy target";
  }
  CheckpointInfo info;
  info.path = path;
  info.sha256 = sha256_file_hex(path);
  info.format = format;
  info.env_spec = env_spec;
  for (const auto& [key, value] : checkpoint.metadata) {
    if (std::find(kHiddenMetadata.begin(), kHiddenMetadata.end(), key) == kHiddenMetadata.end()) info.metadata[key] = value;
  }
  loaded.checkpoint = std::move(info);
  return loaded;
}

void make_labels_unique(std::vector<LoadedPolicy>& policies) {
  for (std::size_t i = 0; i < policies.size(); ++i) {
    int n = 1;
    for (std::size_t j = 0; j < i; ++j) {
      if (policies[j].label == policies[i].label || policies[j].label.starts_with(policies[i].label + "#")) ++n;
    }
    if (n > 1) policies[i].label += "#" + std::to_string(n);
  }
}

}  // namespace forkcast::evaluation
