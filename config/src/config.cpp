#include "forkcast/config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <variant>

extern char** environ;  // POSIX

namespace forkcast::config {
namespace {

using Target = std::variant<int*, std::int64_t*, double*, bool*, std::string*>;

// One configurable key. Numeric fields carry their allowed range, string fields an
// optional list of choices; the loader, the env overrides and `to_yaml` all walk
// the same table, so a key added here is loadable, overridable and documented at once.
struct Field {
  std::string_view section;
  std::string_view key;
  Target target;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string_view> choices = {};
};

std::vector<Field> fields_of(Config& c) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const std::vector<std::string_view> levels{"trace", "debug", "info", "warn", "error", "off"};
  return {
      {"server", "host", &c.server.host},
      {"server", "port", &c.server.port, 1, 65535},
      {"server", "io_threads", &c.server.io_threads, 1, 256},
      {"server", "body_limit_bytes", &c.server.body_limit_bytes, 1024, 64 * 1024 * 1024},
      {"server", "header_limit_bytes", &c.server.header_limit_bytes, 1024, 1024 * 1024},
      {"server", "read_timeout_ms", &c.server.read_timeout_ms, 1, 3'600'000},
      {"server", "write_timeout_ms", &c.server.write_timeout_ms, 1, 3'600'000},
      {"server", "idle_timeout_ms", &c.server.idle_timeout_ms, 1, 3'600'000},
      {"server", "header_timeout_ms", &c.server.header_timeout_ms, 1, 3'600'000},
      {"server", "max_connections", &c.server.max_connections, 1, 1'000'000},
      {"server", "max_connections_per_address", &c.server.max_connections_per_address, 1, 1'000'000},
      {"server", "probe_connections", &c.server.probe_connections, 0, 10'000},
      {"server", "probe_timeout_ms", &c.server.probe_timeout_ms, 1, 60'000},
      {"server", "shutdown_deadline_ms", &c.server.shutdown_deadline_ms, 0, 600'000},
      {"server", "worker_threads", &c.server.worker_threads, 1, 1024},
      {"server", "admin_api_key", &c.server.admin_api_key},
      {"server", "rate_limit_per_second", &c.server.rate_limit_per_second, 0.001, 1e9},
      {"server", "rate_limit_burst", &c.server.rate_limit_burst, 1, 1'000'000'000},
      {"server", "decision_log_queue", &c.server.decision_log_queue, 1, 100'000'000},
      {"server", "decision_journal_dir", &c.server.decision_journal_dir},
      {"server", "user_cache_size", &c.server.user_cache_size, 1, 100'000'000},
      {"server", "follow_promotions", &c.server.follow_promotions},
      {"server", "model_check_interval_ms", &c.server.model_check_interval_ms, 10, 3'600'000},
      {"server", "simulation_clock", &c.server.simulation_clock},
      {"server", "seed", &c.server.seed, 0, 9e18},
      {"database", "url", &c.database.url},
      {"database", "data_dir", &c.database.data_dir},
      {"database", "port", &c.database.port, 1, 65535},
      {"database", "pool_size", &c.database.pool_size, 1, 1024},
      {"database", "checkout_timeout_ms", &c.database.checkout_timeout_ms, 1, 600'000},
      {"database", "group_commit_window_ms", &c.database.group_commit_window_ms, 0, 1'000},
      {"database", "bin_dir", &c.database.bin_dir},
      {"database", "supervise", &c.database.supervise},
      {"policy", "model_dir", &c.policy.model_dir},
      {"policy", "catalog_dir", &c.policy.catalog_dir},
      {"policy", "default_n", &c.policy.default_n, 1, 100},
      {"policy", "max_n", &c.policy.max_n, 1, 100},
      {"exploration", "schedule", &c.exploration.schedule, -kInf, kInf, {"exponential", "linear"}},
      {"exploration", "epsilon_max", &c.exploration.epsilon_max, 0, 1},
      {"exploration", "epsilon_min", &c.exploration.epsilon_min, 0, 1},
      {"exploration", "decay", &c.exploration.decay, 0, 1e6},
      {"exploration", "linear_steps", &c.exploration.linear_steps, 1, 1e15},
      {"exploration", "serving_epsilon_max", &c.exploration.serving_epsilon_max, 0, 1},
      {"exploration", "serving_epsilon_min", &c.exploration.serving_epsilon_min, 0, 1},
      {"exploration", "serving_decay", &c.exploration.serving_decay, 0, 1e6},
      {"exploration", "serving_temperature", &c.exploration.serving_temperature, 0, 1e6},
      {"advice", "enabled", &c.advice.enabled},
      {"advice", "model_path", &c.advice.model_path},
      {"advice", "allow_unknown_model", &c.advice.allow_unknown_model},
      {"advice", "timeout_ms", &c.advice.timeout_ms, 1, 600'000},
      // The engine's context holds 512 tokens, prompt (~150-200) and advice together: more
      // than 256 new tokens would not fit, and every request would fall back to the template.
      {"advice", "max_new_tokens", &c.advice.max_new_tokens, 1, 256},
      {"advice", "queue_capacity", &c.advice.queue_capacity, 1, 1'000'000},
      {"advice", "contexts", &c.advice.contexts, 1, 64},
      {"advice", "threads", &c.advice.threads, 1, 256},
      {"training", "runs_dir", &c.training.runs_dir},
      {"training", "learning_rate", &c.training.learning_rate, 1e-12, 1},
      {"training", "gamma", &c.training.gamma, 0, 1},
      {"training", "max_steps", &c.training.max_steps, 0, 100'000'000},
      {"training", "checkpoint_every", &c.training.checkpoint_every, 1, 1'000'000'000},
      {"training", "eval_episodes", &c.training.eval_episodes, 1, 10'000'000},
      {"dqn", "steps", &c.dqn.steps, 1, 1e12},
      {"dqn", "hidden", &c.dqn.hidden},
      {"dqn", "learning_rate", &c.dqn.learning_rate, 1e-12, 1},
      {"dqn", "gamma", &c.dqn.gamma, 0, 1},
      {"dqn", "n_step", &c.dqn.n_step, 1, 100},
      {"dqn", "batch_size", &c.dqn.batch_size, 1, 1'000'000},
      {"dqn", "target_update_every", &c.dqn.target_update_every, 1, 1'000'000'000},
      {"dqn", "tau", &c.dqn.tau, 1e-9, 1},
      {"dqn", "buffer_size", &c.dqn.buffer_size, 1, 1e10},
      {"dqn", "learning_starts", &c.dqn.learning_starts, 0, 1e12},
      {"dqn", "train_frequency", &c.dqn.train_frequency, 1, 1'000'000'000},
      {"dqn", "gradient_steps", &c.dqn.gradient_steps, 1, 1'000'000},
      {"dqn", "epsilon_start", &c.dqn.epsilon_start, 0, 1},
      {"dqn", "epsilon_end", &c.dqn.epsilon_end, 0, 1},
      {"dqn", "exploration_fraction", &c.dqn.exploration_fraction, 1e-9, 1},
      {"dqn", "eval_every", &c.dqn.eval_every, 0, 1e12},
      {"dqn", "eval_episodes_during", &c.dqn.eval_episodes_during, 1, 10'000'000},
      {"dqn", "eval_episodes", &c.dqn.eval_episodes, 0, 10'000'000},
      {"dqn", "checkpoint_every", &c.dqn.checkpoint_every, 1, 1e12},
      {"dqn", "double_dqn", &c.dqn.double_dqn},
      {"dqn", "prioritized", &c.dqn.prioritized},
      {"dqn", "quantization_aware", &c.dqn.quantization_aware},
      {"mealsim", "utility_bias", &c.mealsim.utility_bias, -10, 10},
      {"mealsim", "taste_weight", &c.mealsim.taste_weight, 0, 10},
      {"mealsim", "meal_boredom_weight", &c.mealsim.meal_boredom_weight, 0, 10},
      {"mealsim", "cuisine_boredom_weight", &c.mealsim.cuisine_boredom_weight, 0, 10},
      {"mealsim", "meal_memory_decay", &c.mealsim.meal_memory_decay, 0, 1},
      {"mealsim", "cuisine_memory_decay", &c.mealsim.cuisine_memory_decay, 0, 1},
      {"mealsim", "time_weight", &c.mealsim.time_weight, 0, 10},
      {"mealsim", "cost_weight", &c.mealsim.cost_weight, 0, 10},
      {"mealsim", "portion_weight", &c.mealsim.portion_weight, 0, 10},
      {"mealsim", "satisfaction_weight", &c.mealsim.satisfaction_weight, 0, 10},
      {"mealsim", "reward_accept", &c.mealsim.reward_accept, 0, 100},
      {"mealsim", "reward_taste", &c.mealsim.reward_taste, 0, 100},
      {"mealsim", "reward_nutrition", &c.mealsim.reward_nutrition, 0, 100},
      {"mealsim", "churn_penalty", &c.mealsim.churn_penalty, 0, 1000},
      {"mealsim", "satisfaction_initial", &c.mealsim.satisfaction_initial, 0, 1},
      {"mealsim", "satisfaction_health", &c.mealsim.satisfaction_health, 0, 1},
      {"mealsim", "satisfaction_taste", &c.mealsim.satisfaction_taste, 0, 1},
      {"mealsim", "satisfaction_boredom", &c.mealsim.satisfaction_boredom, 0, 1},
      {"mealsim", "satisfaction_day", &c.mealsim.satisfaction_day, 0, 1},
      {"mealsim", "satisfaction_reject", &c.mealsim.satisfaction_reject, 0, 1},
      {"mealsim", "churn_threshold", &c.mealsim.churn_threshold, 0, 1},
      {"mealsim", "default_portion", &c.mealsim.default_portion, 0.1, 5},
      {"learning", "learner", &c.learning.learner},
      {"learning", "models_dir", &c.learning.models_dir},
      {"learning", "reports_dir", &c.learning.reports_dir},
      {"learning", "clock", &c.learning.clock, -kInf, kInf, {"wall", "log"}},
      {"learning", "reward_wait_s", &c.learning.reward_wait_s, 0, 365.0 * 86'400},
      {"learning", "next_wait_s", &c.learning.next_wait_s, 0, 365.0 * 86'400},
      {"learning", "reward_source", &c.learning.reward_source, -kInf, kInf, {"computed", "client"}},
      {"learning", "gamma", &c.learning.gamma, 0, 1},
      {"learning", "min_transitions", &c.learning.min_transitions, 1, 1e12},
      {"learning", "window_s", &c.learning.window_s, 0, 3650.0 * 86'400},
      {"learning", "holdout_share", &c.learning.holdout_share, 0.01, 0.99},
      {"learning", "updates", &c.learning.updates, 0, 100'000'000},
      {"learning", "batch_size", &c.learning.batch_size, 1, 65'536},
      {"learning", "learning_rate", &c.learning.learning_rate, 1e-12, 1},
      {"learning", "cql_alpha", &c.learning.cql_alpha, 0, 1e6},
      {"learning", "target_update_every", &c.learning.target_update_every, 1, 100'000'000},
      {"learning", "gate_estimator", &c.learning.gate_estimator, -kInf, kInf, {"dr", "snips"}},
      {"learning", "gate_margin", &c.learning.gate_margin, 0, 1e6},
      {"learning", "gate_min_ess", &c.learning.gate_min_ess, 1, 1e12},
      {"learning", "gate_confidence", &c.learning.gate_confidence, 0.5, 0.999},
      {"learning", "gate_bootstrap_resamples", &c.learning.gate_bootstrap_resamples, 50, 1'000'000},
      {"learning", "scan_batch_size", &c.learning.scan_batch_size, 1, 100'000},
      {"learning", "seed", &c.learning.seed, 0, 9.2e18},
      {"logging", "level", &c.logging.level, -kInf, kInf, levels},
      {"logging", "format", &c.logging.format, -kInf, kInf, {"text", "json"}},
  };
}

std::string dotted(const Field& f) { return std::string(f.section) + "." + std::string(f.key); }

std::string format_number(double v) {
  std::ostringstream out;
  out.precision(15);
  out << v;
  return out.str();
}

// A YAML double-quoted scalar: `config show` output must load back to the same value (a
// path or key may hold quotes, backslashes or control characters), and error messages
// quote what they were given the same way.
std::string quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte == 0x7f) {
      out.append("\\x");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// Parses `text` into the field's type and checks its range/choices. `source` is
// used only for error messages.
void assign(const Field& field, const std::string& text, const std::string& source) {
  const std::string key = dotted(field);
  auto in_range = [&](double v) {
    if (!(v >= field.min && v <= field.max)) {
      throw ConfigError(source, key,
                        text + " is out of range " + format_number(field.min) + ".." +
                            format_number(field.max));
    }
  };
  auto parse_integer = [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    T value{};
    const auto* first = text.data();
    const auto* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec == std::errc::result_out_of_range) {
      throw ConfigError(source, key, text + " is out of range " + format_number(field.min) +
                                         ".." + format_number(field.max));
    }
    if (ec != std::errc() || ptr != last || text.empty()) {
      throw ConfigError(source, key, quote(text) + " is not an integer");
    }
    in_range(static_cast<double>(value));
    *out = value;
  };
  std::visit(
      [&](auto* target) {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<T, int> || std::is_same_v<T, std::int64_t>) {
          parse_integer(target);
        } else if constexpr (std::is_same_v<T, double>) {
          char* end = nullptr;
          const double value = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
          if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
            throw ConfigError(source, key, quote(text) + " is not a finite number");
          }
          in_range(value);
          *target = value;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (text == "true" || text == "yes" || text == "on" || text == "1") {
            *target = true;
          } else if (text == "false" || text == "no" || text == "off" || text == "0") {
            *target = false;
          } else {
            throw ConfigError(source, key, quote(text) + " is not a boolean (true or false)");
          }
        } else {
          if (!field.choices.empty() &&
              std::find(field.choices.begin(), field.choices.end(), text) == field.choices.end()) {
            std::string allowed;
            for (auto c : field.choices) allowed += (allowed.empty() ? "" : ", ") + std::string(c);
            throw ConfigError(source, key, quote(text) + " is not one of " + allowed);
          }
          *target = text;
        }
      },
      field.target);
}

std::string render(const Target& target) {
  return std::visit(
      [](auto* value) -> std::string {
        using T = std::remove_pointer_t<decltype(value)>;
        if constexpr (std::is_same_v<T, bool>) {
          return *value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return quote(*value);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_number(*value);
        } else {
          return std::to_string(*value);
        }
      },
      target);
}

std::vector<std::string> section_names(const std::vector<Field>& fields) {
  std::vector<std::string> names;
  for (const auto& f : fields) {
    if (std::find(names.begin(), names.end(), f.section) == names.end()) {
      names.emplace_back(f.section);
    }
  }
  return names;
}

std::string unknown_message(std::string_view what, std::string_view word,
                            const std::vector<std::string>& candidates) {
  std::string msg = "unknown " + std::string(what);
  if (auto guess = did_you_mean(word, candidates)) msg += " (did you mean \"" + *guess + "\"?)";
  return msg;
}

std::string at(std::string_view source_name, const YAML::Mark& mark) {
  if (mark.is_null()) return std::string(source_name);
  return std::string(source_name) + ":" + std::to_string(mark.line + 1);
}

Config from_yaml(const YAML::Node& root, std::string_view source_name) {
  Config config;
  auto fields = fields_of(config);
  if (!root || root.IsNull()) return config;
  if (!root.IsMap()) {
    throw ConfigError(at(source_name, root.Mark()), "", "top level must be a mapping of sections");
  }
  const auto sections = section_names(fields);
  for (const auto& section_entry : root) {
    const auto section = section_entry.first.as<std::string>();
    const auto& body = section_entry.second;
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      throw ConfigError(at(source_name, section_entry.first.Mark()), section,
                        unknown_message("section", section, sections));
    }
    if (body.IsNull()) continue;
    if (!body.IsMap()) {
      throw ConfigError(at(source_name, body.Mark()), section, "must be a mapping of keys");
    }
    std::vector<std::string> keys_here;
    for (const auto& f : fields) {
      if (f.section == section) keys_here.emplace_back(f.key);
    }
    for (const auto& entry : body) {
      const auto key = entry.first.as<std::string>();
      auto it = std::find_if(fields.begin(), fields.end(),
                             [&](const Field& f) { return f.section == section && f.key == key; });
      const std::string where = at(source_name, entry.first.Mark());
      if (it == fields.end()) {
        throw ConfigError(where, section + "." + key, unknown_message("key", key, keys_here));
      }
      if (!entry.second.IsScalar()) {
        throw ConfigError(where, dotted(*it), "must be a single value, not a list or mapping");
      }
      assign(*it, entry.second.Scalar(), where);
    }
  }
  return config;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

ConfigError::ConfigError(std::string source, std::string key, std::string reason)
    : std::invalid_argument((source.empty() ? "" : source + ": ") +
                            (key.empty() ? "" : key + ": ") + reason),
      source_(std::move(source)),
      key_(std::move(key)),
      reason_(std::move(reason)) {}

std::optional<std::string> did_you_mean(std::string_view word,
                                        const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    const auto d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  // A suggestion further away than about a third of the word is noise, not a typo.
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  if (!best || best_distance > limit) return std::nullopt;
  return best;
}

Config load_string(std::string_view yaml, std::string_view source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    throw ConfigError(at(source_name, e.mark), "", "malformed YAML: " + e.msg);
  }
  try {
    return from_yaml(root, source_name);
  } catch (const YAML::Exception& e) {
    throw ConfigError(at(source_name, e.mark), "", "malformed YAML: " + e.msg);
  }
}

Config load_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path.string(), "", "cannot open config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return load_string(buffer.str(), path.string());
}

void apply_env_overrides(Config& config, const std::map<std::string, std::string>& environment) {
  constexpr std::string_view kPrefix = "FORKCAST_";
  auto fields = fields_of(config);
  std::vector<std::string> env_names;
  for (const auto& f : fields) {
    std::string name = std::string(kPrefix) + std::string(f.section) + "__" + std::string(f.key);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::toupper(ch); });
    env_names.push_back(name);
  }
  for (const auto& [name, value] : environment) {
    if (!name.starts_with(kPrefix) || name.find("__") == std::string::npos) continue;
    auto it = std::find(env_names.begin(), env_names.end(), name);
    if (it == env_names.end()) {
      throw ConfigError("env " + name, "", unknown_message("variable", name, env_names));
    }
    assign(fields[static_cast<std::size_t>(it - env_names.begin())], value, "env " + name);
  }
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> result;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    result.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return result;
}

void validate(const Config& config) {
  (void)config.dqn.hidden_layers();  // throws ConfigError naming dqn.hidden
  if (config.dqn.epsilon_end > config.dqn.epsilon_start) {
    throw ConfigError("", "dqn.epsilon_end",
                      format_number(config.dqn.epsilon_end) + " is greater than dqn.epsilon_start (" +
                          format_number(config.dqn.epsilon_start) + ")");
  }
  const auto& e = config.exploration;
  if (e.epsilon_min > e.epsilon_max) {
    throw ConfigError("", "exploration.epsilon_min",
                      format_number(e.epsilon_min) + " is greater than exploration.epsilon_max (" +
                          format_number(e.epsilon_max) + ")");
  }
  if (config.policy.default_n > config.policy.max_n) {
    throw ConfigError("", "policy.default_n",
                      std::to_string(config.policy.default_n) + " is greater than policy.max_n (" +
                          std::to_string(config.policy.max_n) + ")");
  }
  if (config.server.host.empty()) throw ConfigError("", "server.host", "must not be empty");
  if (!config.database.url.empty() && !config.database.url.starts_with("postgresql://") &&
      !config.database.url.starts_with("postgres://")) {
    throw ConfigError("", "database.url",
                      quote(config.database.url) + " is not a postgresql:// or postgres:// URL");
  }
}

std::vector<int> DqnConfig::hidden_layers() const {
  const auto refuse = [&] {
    return ConfigError("", "dqn.hidden", quote(hidden) + " is not 1 to 8 layer widths in 1..65536, e.g. \"128,64\"");
  };
  std::vector<int> widths;
  std::string_view rest(hidden);
  while (true) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int width = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), width);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || width < 1 || width > 65'536) throw refuse();
    widths.push_back(width);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (widths.size() > 8) throw refuse();
  return widths;
}

Config load(const std::optional<std::filesystem::path>& path,
            const std::map<std::string, std::string>& environment) {
  Config config = path ? load_file(*path) : Config{};
  apply_env_overrides(config, environment);
  validate(config);
  return config;
}

std::string to_yaml(const Config& config) {
  Config copy = config;
  const auto fields = fields_of(copy);
  std::string out;
  std::string_view current;
  for (const auto& f : fields) {
    if (f.section != current) {
      current = f.section;
      out += std::string(f.section) + ":\n";
    }
    // Secrets are never shown: `config show` output ends up in logs and bug reports. A
    // database URL may carry a password (in several spellings), so it is hidden whole.
    const bool secret = (f.section == "server" && f.key == "admin_api_key") || (f.section == "database" && f.key == "url");
    const std::string value = render(f.target);
    out += "  " + std::string(f.key) + ": " + (secret && value != "\"\"" ? "\"<set, hidden>\"" : value) + "\n";
  }
  return out;
}

std::vector<std::string> known_keys() {
  Config scratch;
  std::vector<std::string> keys;
  for (const auto& f : fields_of(scratch)) keys.push_back(dotted(f));
  return keys;
}

}  // namespace forkcast::config
