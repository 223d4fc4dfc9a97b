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
  int header_timeout_ms = 5'000;  // a new connection's first byte must come this soon after accept
  int max_connections = 1024;
  int max_connections_per_address = 256;  // one client address cannot take every connection
  int probe_connections = 16;     // beyond max_connections: answered for /livez, /readyz, /metrics only
  int probe_timeout_ms = 250;     // such a connection's whole request must come this soon (a probe's does)
  int shutdown_deadline_ms = 5'000;
  int worker_threads = 64;        // threads for routes that wait on the database or the advice model (many: feedback writes wait for a group commit, and more waiting writers make bigger batches)
  std::string admin_api_key;      // admin routes; empty disables them. Never logged or shown
  double rate_limit_per_second = 100;  // per API key (user token, admin key or client address)
  int rate_limit_burst = 200;
  int decision_log_queue = 100'000;  // decisions waiting to be written; when full, responses say so
  // Where answered decisions are journaled until stored, so a crash loses none (one
  // directory per serve process; empty: no journal, a crash loses the last few ms).
  std::string decision_journal_dir = "var/journal";
  int user_cache_size = 100'000;     // users kept in memory; idle ones beyond this are evicted (reloaded on use)
  // Swap to the registry's production model when any process promotes one (LISTEN/NOTIFY,
  // db/registry_watch.hpp), and read the registry every model_check_interval_ms besides.
  bool follow_promotions = true;
  int model_check_interval_ms = 1'000;
  // Simulation only (forkcast simulate-traffic, docs/learning-loop.md): the event time of a
  // recommendation, feedback or meal log is the request's `time`, with no limit on how far
  // from now it is. Off, the service keeps its own clock (a deployment never turns it on).
  bool simulation_clock = false;
  std::int64_t seed = 0;          // event ids and exploration draws; 0 = from std::random_device
};

struct DatabaseConfig {
  std::string url;  // empty: use the self-managed local instance below
  std::string data_dir = "var/pgdata";
  int port = 55432;
  int pool_size = 8;
  int checkout_timeout_ms = 2'000;
  int group_commit_window_ms = 2;
  std::string bin_dir;  // PostgreSQL programs (initdb, pg_ctl); empty: found automatically
  bool supervise = true;  // serve restarts the local instance it started (db/supervisor.hpp)
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
  // Serving: per user, eps = serving_min + (serving_max - serving_min) * exp(-serving_decay * n)
  // after the user's n-th recommendation (training starts from 1.0; a new user should not).
  double serving_epsilon_max = 0.3;
  double serving_epsilon_min = 0.02;
  double serving_decay = 0.05;
  // Serving's greedy part: 0 serves the best-scored meal (epsilon-greedy); > 0 draws it from
  // softmax(score / serving_temperature) instead, mixed with epsilon uniform. A learning
  // service wants > 0: its log then supports the policies the learner may propose
  // (docs/learning-loop.md "The gate").
  double serving_temperature = 0.0;
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

// The tabular agent's training (`forkcast train --agent tabular`) and where every run goes.
struct TrainingConfig {
  std::string runs_dir = "runs";
  double learning_rate = 0.7;
  double gamma = 0.95;
  int max_steps = 99;             // per episode; 0 keeps the environment's own limit
  int checkpoint_every = 1'000;   // episodes
  int eval_episodes = 100;
};

// The MealSim DQN's training (`forkcast train --agent dqn --env mealsim`, docs/agents.md):
// the defaults are the run behind the bundled model. CartPole keeps the RL Baselines3 Zoo
// preset (training::default_dqn_options("cartpole")): it checks the learner, it is not a
// product setting. Flags of `forkcast train` override both.
struct DqnConfig {
  std::int64_t steps = 300'000;
  std::string hidden = "128,64";      // hidden layer widths, comma-separated (hidden_layers())
  double learning_rate = 5e-4;        // Adam
  double gamma = 0.9;                 // discount
  int n_step = 3;                     // n-step returns
  int batch_size = 32;
  int target_update_every = 500;      // gradient updates between hard target copies (tau 1)
  double tau = 1.0;                   // < 1: Polyak averaging after every update instead
  std::int64_t buffer_size = 50'000;  // replay capacity in transitions
  std::int64_t learning_starts = 2'000;
  int train_frequency = 4;            // environment steps between update rounds
  int gradient_steps = 1;             // updates per round
  double epsilon_start = 1.0;         // linear decay over exploration_fraction of the steps
  double epsilon_end = 0.05;
  double exploration_fraction = 0.3;
  std::int64_t eval_every = 25'000;   // steps between greedy evaluations (the best is kept); 0: none
  int eval_episodes_during = 200;     // users per evaluation during training
  int eval_episodes = 1'000;          // users of the final evaluation of the best network
  std::int64_t checkpoint_every = 50'000;  // steps
  bool double_dqn = true;
  bool prioritized = false;
  bool quantization_aware = true;     // int8 serving makes the float network's decisions

  // `hidden` as widths. Throws ConfigError (key dqn.hidden) unless it is 1..8 widths in
  // 1..65536, e.g. "128,64".
  std::vector<int> hidden_layers() const;
};

// Coefficients of the MealSim user simulator; every equation they enter is written out
// in docs/mealsim.md. Defaults are the calibrated world the shipped models learn in.
struct MealSimConfig {
  // Choice model: P(accept) = sigmoid(utility).
  double utility_bias = 0.2;
  double taste_weight = 1.2;           // taste in [-~2, ~2]
  double meal_boredom_weight = 1.6;    // times recency of this very meal
  double cuisine_boredom_weight = 0.5; // times decayed count of this cuisine
  double meal_memory_decay = 0.92;     // per slot (7 days ~ 28 slots)
  double cuisine_memory_decay = 0.75;  // per slot
  double time_weight = 0.8;            // per 30 min of prep over the user's tolerance
  double cost_weight = 0.8;            // per 100 % over budget
  double portion_weight = 0.7;         // per 100 % away from the kcal the user is hungry for
  double satisfaction_weight = 2.0;    // times (satisfaction - 0.5)
  // Reward.
  double reward_accept = 1.0;
  double reward_taste = 0.3;
  double reward_nutrition = 3.0;       // times end-of-day adherence in [0, 1]
  double churn_penalty = 3.0;
  // Long-term satisfaction (0..1) and churn.
  double satisfaction_initial = 0.6; 
  double satisfaction_health = 0.03;   // per eaten meal, times 2 (healthiness - catalog median)
  double satisfaction_taste = 0.015;   // per eaten meal, times taste
  double satisfaction_boredom = 0.05;  // per eaten meal, times its recency
  double satisfaction_day = 0.10;      // per day, times 2 (adherence - 0.5)
  double satisfaction_reject = 0.007;  // per declined suggestion
  double churn_threshold = 0.2;        // below it the user may quit at the end of a day
  // The user's own choice when they decline.
  double default_portion = 1.15;       // their own portions run larger
};

// `forkcast learn`, the learning loop (docs/learning-loop.md has what each knob does).
struct LearningConfig {
  std::string learner = "default";             // the watermark's and the lock's name
  std::string models_dir = "models/learned";   // <models_dir>/<version>/model.safetensors
  std::string reports_dir = "reports/learning"; // <reports_dir>/<version>/report.{json,md,html}
  std::string clock = "wall";                  // wall: now is the machine's; log: the newest decision's time
  std::int64_t reward_wait_s = 3'600;          // feedback counted this long after a decision
  std::int64_t next_wait_s = 86'400;           // the user's next decision within this is the next state
  std::string reward_source = "computed";      // computed (MealSim's terms) | client (the rewards clients sent)
  double gamma = 0.9;                          // discount between a user's consecutive decisions
  std::int64_t min_transitions = 2'000;        // fewer new ones since the watermark: no model, the watermark waits
  std::int64_t window_s = 28 * 86'400;         // trains and gates on the decisions of this window before `to` (0: the new ones only)
  double holdout_share = 0.25;                 // share of users held out of training for the gate
  int updates = 3'000;                         // gradient updates per cycle
  int batch_size = 64;
  double learning_rate = 1e-4;
  double cql_alpha = 1.0;                      // weight of the conservative term; 0: plain double DQN
  int target_update_every = 250;
  std::string gate_estimator = "dr";           // dr | snips: whose lower bound decides
  double gate_margin = 0.0;                    // reward per decision the lower bound must beat the log by
  double gate_min_ess = 200;                   // effective sample size the estimate needs
  double gate_confidence = 0.95;
  int gate_bootstrap_resamples = 500;
  int scan_batch_size = 5'000;                 // rows per cursor FETCH
  std::int64_t seed = 0;                       // of the update's batches; a cycle's seed is seed + cycle
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
  DqnConfig dqn;
  MealSimConfig mealsim;
  LearningConfig learning;
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
