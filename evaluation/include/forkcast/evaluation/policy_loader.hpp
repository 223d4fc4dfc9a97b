// Turns what `forkcast evaluate --policy` names into MealSim policies: a built-in baseline
// (random, popularity, myopic-oracle, planning-oracle) or a checkpoint file.
//
// Checkpoints are dispatched on their metadata "format" through a CheckpointFormats
// registry, so a new agent's checkpoints need one line in builtin_checkpoint_formats()
// (policy/src/policy_loader.cpp) and no change here or in the evaluator:
//
//   formats.add("forkcast.dqn.v1", make_dqn_meal_policy);
//
// Before a format's factory runs, the loader checks what every MealSim checkpoint must
// satisfy: the file exists and is valid safetensors, its metadata has "format", "env" is
// "mealsim", and "env_spec" equals "MealSim catalog <sha256>" of the catalog being
// evaluated (a checkpoint trained on another catalog is refused, naming the file and both
// hashes). Every refusal is a CheckpointError "<file>: <problem>".
//
// Ownership: a LoadedPolicy owns everything its policies point to; the Catalog and
// Population of the PolicyLoadContext must outlive it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/config/config.hpp"
#include "forkcast/env/baselines.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/evaluation/ope.hpp"

namespace forkcast::evaluation {

using policy::Checkpoint;

struct PolicyLoadContext {
  const env::Catalog* catalog = nullptr;        // required
  const env::Population* population = nullptr;  // required
  config::MealSimConfig mealsim;
  // The serving schedule of exploration, for "served:<model>" (exploration.serving_*).
  config::ExplorationConfig exploration;
  // The popularity baseline's estimate: `popularity_users` weeks of the random policy from
  // `popularity_seed` (the numbers docs/agents.md uses).
  int popularity_users = 2000;
  std::uint64_t popularity_seed = 77;
};

// What the report says about a checkpoint.
struct CheckpointInfo {
  std::filesystem::path path;
  std::string sha256;   // of the file's bytes
  std::string format;   // metadata "format"
  std::string env_spec; // metadata "env_spec"
  // Metadata strings, without generator states (they are long and say nothing to a reader).
  std::map<std::string, std::string> metadata;
};

struct LoadedPolicy {
  std::string label;        // unique name in reports, e.g. "random" or "tabular[final]"
  std::string spec;         // what --policy said
  std::string kind;         // "built-in" or "checkpoint"
  std::string description;  // one line for the report
  bool reads_hidden_state = false;  // the oracles: a bound, not a deployable policy
  std::unique_ptr<env::MealPolicy> policy;
  // Null when the policy cannot be evaluated from logs; ope_unavailable then says why.
  std::unique_ptr<OpeTarget> ope_target;
  std::string ope_unavailable;
  std::optional<CheckpointInfo> checkpoint;
};

// Builds the policy of one checkpoint whose common checks passed. `checkpoint` is the parsed
// file (tensors included), `path` its location. Fills policy (required), ope_target (or
// ope_unavailable), label and description; the loader fills spec, kind and checkpoint info.
// Throws CheckpointError naming the file on a checkpoint it cannot use.
using CheckpointPolicyFactory =
    std::function<LoadedPolicy(const policy::Checkpoint& checkpoint, const std::filesystem::path& path,
                               const PolicyLoadContext& context)>;

class CheckpointFormats {
 public:
  // Throws std::invalid_argument when `format` is already registered.
  void add(std::string format, CheckpointPolicyFactory factory);
  // nullptr when unknown.
  const CheckpointPolicyFactory* find(std::string_view format) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, CheckpointPolicyFactory, std::less<>> factories_;
};

// The DQN's factory (policy/src/dqn_policy_format.cpp): a greedy candidate scorer, with an
// off-policy target that scores the logged candidates from the logged observation.
LoadedPolicy make_dqn_meal_policy(const policy::Checkpoint& checkpoint, const std::filesystem::path& path,
                                  const PolicyLoadContext& context);

// The formats this build can evaluate: forkcast.tabular.v1, forkcast.dqn-model.v1, forkcast.dqn.v1.
CheckpointFormats builtin_checkpoint_formats();

// The names load_meal_policy accepts besides checkpoint paths.
std::vector<std::string> builtin_policy_names();

// `spec` is a built-in name, a checkpoint path, or "served:<model path>": the DQN model as
// the service serves it (ServedMealPolicy, served_policy.hpp: PolicySnapshot and
// policy::decide, exploration by context.exploration), refused like `forkcast serve` refuses
// it (belief models, other shapes). Throws std::invalid_argument for an
// unknown name that is not a file, CheckpointError for a checkpoint that is missing,
// corrupted, of an unknown format, for another environment or another catalog.
LoadedPolicy load_meal_policy(std::string_view spec, const PolicyLoadContext& context,
                              const CheckpointFormats& formats = builtin_checkpoint_formats());

// Makes labels unique by appending "#2", "#3", ... to repeats.
void make_labels_unique(std::vector<LoadedPolicy>& policies);

}  // namespace forkcast::evaluation
