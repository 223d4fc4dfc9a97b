// forkcast configuration: typed structs with in-class defaults, loaded from YAML
// (config/forkcast.yaml), then overridden by FORKCAST_<SECTION>__<KEY> environment
// variables, then validated.
//
// Ownership: a Config is a plain value; copy it freely. Nothing here keeps global state.
// Errors: every loading or validation failure throws ConfigError (an
// std::invalid_argument) whose what() is one line naming the source (file:line or the
// environment variable), the dotted key, the bad value and what is allowed, e.g.
//   config/forkcast.yaml:4: server.port: 70000 is out of range 1..65535
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace forkcast::config {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  int io_threads = 2;
  int body_limit_bytes = 64 * 1024;
  int header_limit_bytes = 8 * 1024;
  int read_timeout_ms = 10'000;
  int write_timeout_ms = 10'000;
  int idle_timeout_ms = 60'000;
  int max_connections = 1024;
  int shutdown_deadline_ms = 5'000;
};

struct DatabaseConfig {
  std::string url;  // empty: use the self-managed local instance below
  std::string data_dir = "var/pgdata";
  int port = 55432;
  int pool_size = 8;
  int checkout_timeout_ms = 2'000;
  int group_commit_window_ms = 2;
};

struct PolicyConfig {
  std::string model_dir = "models/policies";
  std::string catalog_dir = "data";
  int default_n = 3;
  int max_n = 20;
};

// Epsilon decayed per episode: eps = min + (max - min) * exp(-decay * episode).
struct ExplorationConfig {
  std::string schedule = "exponential";  // exponential | linear
  double epsilon_max = 1.0;
  double epsilon_min = 0.05;
  double decay = 0.005;           // per episode, exponential schedule
  std::int64_t linear_steps = 100'000;  // steps from max to min, linear schedule
};

struct AdviceConfig {
  bool enabled = true;
  std::string model_path = "models/advice-lm-q8_0.gguf";
  bool allow_unknown_model = false;
  int timeout_ms = 2'000;
  int max_new_tokens = 48;
  int queue_capacity = 64;
  int contexts = 2;
  int threads = 1;
};

struct TrainingConfig {
  std::string runs_dir = "runs";
  double learning_rate = 0.7;
  double gamma = 0.95;
  int max_steps = 99;             // per episode; 0 keeps the environment's own limit
  int checkpoint_every = 1'000;   // episodes
  int eval_episodes = 100;
};

struct LoggingConfig {
  std::string level = "info";     // trace | debug | info | warn | error | off
  std::string format = "text";    // text | json
};

struct Config {
  ServerConfig server;
  DatabaseConfig database;
  PolicyConfig policy;
  ExplorationConfig exploration;
  AdviceConfig advice;
  TrainingConfig training;
  LoggingConfig logging;
};

// A loading or validation error. source() is "file:line", "env FORKCAST_X__Y" or empty.
class ConfigError : public std::invalid_argument {
 public:
  ConfigError(std::string source, std::string key, std::string reason);
  const std::string& source() const noexcept { return source_; }
  const std::string& key() const noexcept { return key_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string source_;
  std::string key_;
  std::string reason_;
};

// Reads a YAML file over the defaults. Unknown sections or keys are errors with a
// did-you-mean suggestion; values are range-checked as they are read.
Config load_file(const std::filesystem::path& path);

// Parses YAML text (the same rules as load_file); `source_name` prefixes messages.
Config load_string(std::string_view yaml, std::string_view source_name = "<string>");

// Applies FORKCAST_<SECTION>__<KEY>=value overrides from `environment` (name -> value).
// Variables with the FORKCAST_ prefix but without "__" are ignored (they belong to the
// build, e.g. FORKCAST_SANITIZE); ones with "__" must name a real key.
void apply_env_overrides(Config& config, const std::map<std::string, std::string>& environment);

// The process environment as a map, for apply_env_overrides.
std::map<std::string, std::string> process_environment();

// Cross-field checks that no single key can do (e.g. epsilon_min <= epsilon_max).
void validate(const Config& config);

// The usual pipeline: defaults, then `path` if given, then the environment, then validate.
Config load(const std::optional<std::filesystem::path>& path,
            const std::map<std::string, std::string>& environment);

// Effective configuration as YAML, for `forkcast config show`.
std::string to_yaml(const Config& config);

// Every dotted key ("server.port", ...) the loader accepts, in declaration order.
std::vector<std::string> known_keys();

// The closest candidate by edit distance, if close enough to be a plausible typo.
std::optional<std::string> did_you_mean(std::string_view word,
                                        const std::vector<std::string>& candidates);

}  // namespace forkcast::config
