// Pieces both training loops (tabular_training.cpp, dqn_training.cpp) share to make a
// run resumable: generator states as checkpoint metadata, and the checks that a checkpoint
// belongs to the run resuming from it. Private to training/src.
#pragma once

#include <random>
#include <sstream>
#include <string>

#include "forkcast/policy/checkpoint.hpp"

namespace forkcast::training {

using policy::Checkpoint;
using policy::CheckpointError;

// std::mt19937_64's full state as text (its standard stream format).
inline std::string generator_state(const std::mt19937_64& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

inline void restore_generator(const Checkpoint& c, const std::string& key, const std::string& source,
                              std::mt19937_64& rng) {
  std::istringstream in(c.metadata_at(key, source));
  in >> rng;
  if (!in) throw CheckpointError(source, "metadata \"" + key + "\" is not a generator state");
}

// Refuses a checkpoint of another format, environment or environment spec (for MealSim the
// spec carries the catalog's sha256, so a changed catalog is refused too).
inline void check_resumable(const Checkpoint& c, const std::string& source, const std::string& format,
                            const std::string& env, const std::string& spec, const std::string& what) {
  if (c.metadata_at("format", source) != format) throw CheckpointError(source, "not a forkcast " + what + " checkpoint");
  if (c.metadata_at("env", source) != env) {
    throw CheckpointError(source, "trained on env \"" + c.metadata_at("env", source) + "\", not \"" + env + "\"");
  }
  if (c.metadata_at("env_spec", source) != spec) {
    throw CheckpointError(source, "environment spec \"" + c.metadata_at("env_spec", source) + "\" differs from \"" +
                                      spec + "\" (for MealSim: the catalog changed)");
  }
}

}  // namespace forkcast::training
