#include "forkcast/training/tabular_training.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "forkcast/agent/mealsim_discretizer.hpp"
#include "forkcast/env/frozen_lake.hpp"
#include "forkcast/env/taxi.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/episode_seed.hpp"
#include "forkcast/policy/explore.hpp"
#include "forkcast/policy/model_files.hpp"
#include "forkcast/policy/progress.hpp"
#include "run_log.hpp"
#include "training_state.hpp"

namespace forkcast::training {

using policy::Checkpoint;
using policy::CheckpointError;
using policy::ProgressFields;
using policy::ProgressReporter;
using policy::episode_seed;
using policy::epsilon_exponential;
using policy::load_safetensors;
using policy::save_safetensors;
using policy::Tensor;

namespace {

constexpr const char* kFormat = policy::kTabularCheckpointFormat.data();
// Evaluation episodes use one fixed seed list whatever the training seed (like the Deep
// RL course's eval_seed list): runs are compared on the same start states.
constexpr std::uint64_t kEvalSeedSalt = 0x5eed'e7a1'0000'0000ULL;

// --- Environment adapters: one discrete shape (reset -> state, step -> DiscreteStep,
// mask) over Taxi, FrozenLake and MealSim, so the training loop is one template. ---

struct TaxiAdapter {
  explicit TaxiAdapter(int max_steps) : env(env::TaxiConfig{max_steps > 0 ? max_steps : 200}) {}
  std::int32_t reset(std::uint64_t seed) { return env.reset(seed); }
  std::int32_t reset() { return env.reset(); }
  std::mt19937_64& generator() { return env.generator(); }
  env::DiscreteStep step(env::Action a) { return env.step(a); }
  std::span<const std::uint8_t> mask() const { return {}; }
  static int num_states() { return env::TaxiEnv::kNumStates; }
  static int num_actions() { return env::TaxiEnv::kNumActions; }
  std::string state_name(int s) const { return env::TaxiEnv::state_name(s); }
  std::string action_name(int a) const { return std::string(env::TaxiEnv::action_name(a)); }
  std::string spec() const { return "Taxi-v3"; }
  env::TaxiEnv env;
};

struct FrozenLakeAdapter {
  FrozenLakeAdapter(bool slippery, int max_steps)
      : env([&] {
          env::FrozenLakeConfig c;
          c.is_slippery = slippery;
          if (max_steps > 0) c.max_episode_steps = max_steps;
          return c;
        }()) {}
  std::int32_t reset(std::uint64_t seed) { return env.reset(seed); }
  std::int32_t reset() { return env.reset(); }
  std::mt19937_64& generator() { return env.generator(); }
  env::DiscreteStep step(env::Action a) { return env.step(a); }
  std::span<const std::uint8_t> mask() const { return {}; }
  int num_states() const { return env.num_states(); }
  static int num_actions() { return env::FrozenLakeEnv::kNumActions; }
  std::string state_name(int s) const { return env.state_name(s); }
  std::string action_name(int a) const { return std::string(env::FrozenLakeEnv::action_name(a)); }
  std::string spec() const { return std::string("FrozenLake-v1 4x4 ") + (env.is_slippery() ? "slippery" : "not slippery"); }
  env::FrozenLakeEnv env;
};

struct MealSimAdapter {
  MealSimAdapter(const std::filesystem::path& data_dir, const config::MealSimConfig& cfg, int max_steps)
      : catalog(std::make_unique<env::Catalog>(env::Catalog::load(data_dir))),
        population(std::make_unique<env::Population>(env::Population::load(data_dir / "population.yaml"))),
        sim(*catalog, *population, cfg, env::MealSimOptions{max_steps > 0 && max_steps < env::kStepsPerWeek ? max_steps : 0}) {}
  std::int32_t reset(std::uint64_t seed) {
    sim.reset(seed);
    return agent::MealSimDiscretizer::state(sim.observation());
  }
  std::int32_t reset() {
    sim.reset();
    return agent::MealSimDiscretizer::state(sim.observation());
  }
  std::mt19937_64& generator() { return sim.generator(); }
  env::DiscreteStep step(env::Action a) {
    const auto r = sim.step(a);
    env::DiscreteStep out;
    out.reward = r.reward;
    out.terminated = r.terminated;
    out.truncated = r.truncated;
    // A terminated transition does not bootstrap and its observation is not refreshed (any
    // state index will do); a truncated one (--max-steps) bootstraps from the real next
    // state, which the simulator has written.
    out.observation = r.terminated ? 0 : agent::MealSimDiscretizer::state(sim.observation());
    return out;
  }
  std::span<const std::uint8_t> mask() const { return sim.action_mask(); }
  static int num_states() { return agent::MealSimDiscretizer::kNumStates; }
  int num_actions() const { return sim.num_actions(); }
  std::string state_name(int s) const { return agent::MealSimDiscretizer::state_name(s, catalog->cuisines()); }
  std::string action_name(int a) const { return catalog->meals()[static_cast<std::size_t>(a)].id; }
  std::string spec() const { return "MealSim catalog " + catalog->content_hash(); }
  std::unique_ptr<env::Catalog> catalog;
  std::unique_ptr<env::Population> population;
  env::MealSim sim;
};

template <class Fn>
auto with_env(const TabularTrainOptions& o, Fn&& fn) {
  if (o.env == "taxi") {
    TaxiAdapter e(o.max_steps);
    return fn(e);
  }
  if (o.env == "frozenlake" || o.env == "frozenlake-slippery") {
    FrozenLakeAdapter e(o.env == "frozenlake-slippery", o.max_steps);
    return fn(e);
  }
  if (o.env == "mealsim") {
    MealSimAdapter e(o.data_dir, o.mealsim, o.max_steps);
    return fn(e);
  }
  throw std::invalid_argument("--env: \"" + o.env + "\" is not one of taxi, frozenlake, frozenlake-slippery, mealsim");
}

// Uniform among allowed actions; `mask` empty means all of `n` are allowed.
env::Action random_allowed(std::span<const std::uint8_t> mask, int n, std::mt19937_64& rng) {
  if (mask.empty()) return static_cast<env::Action>(std::uniform_int_distribution<int>(0, n - 1)(rng));
  int allowed = 0;
  for (const auto m : mask) allowed += m;
  int pick = std::uniform_int_distribution<int>(0, allowed - 1)(rng);
  for (std::size_t a = 0; a < mask.size(); ++a) {
    if (mask[a] && pick-- == 0) return static_cast<env::Action>(a);
  }
  return -1;  // unreachable: allowed > 0 is checked by greedy_action first
}

std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

void validate(const TabularTrainOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (o.episodes <= 0) bad("--episodes: " + std::to_string(o.episodes) + " must be > 0");
  if (o.max_steps < 0) bad("--max-steps: " + std::to_string(o.max_steps) + " must be >= 0");
  if (!(o.learning_rate > 0 && o.learning_rate <= 1)) bad("--lr: " + number(o.learning_rate) + " is not in (0, 1]");
  if (!(o.gamma >= 0 && o.gamma <= 1)) bad("--gamma: " + number(o.gamma) + " is not in [0, 1]");
  if (o.checkpoint_every <= 0) bad("--checkpoint-every: " + std::to_string(o.checkpoint_every) + " must be > 0");
  if (o.log_every <= 0) bad("log_every: " + std::to_string(o.log_every) + " must be > 0");
  if (o.eval_episodes < 0) bad("--eval-episodes: " + std::to_string(o.eval_episodes) + " must be >= 0");
  if (o.run_dir.empty()) bad("run_dir: must be set");
  epsilon_exponential(o.epsilon_max, o.epsilon_min, o.epsilon_decay, 0);  // validates the schedule
}

Checkpoint make_checkpoint(const agent::TabularQ& q, const TabularTrainOptions& o, std::int64_t episode,
                           const std::mt19937_64& rng, const std::string& spec) {
  Checkpoint c;
  const auto values = q.table();
  c.tensors.push_back(Tensor::from_span<double>(
      "q_table", {q.num_states(), q.num_actions()}, values));
  nlohmann::json options = {{"env", o.env},
                            {"episodes", o.episodes},
                            {"seed", o.seed},
                            {"max_steps", o.max_steps},
                            {"learning_rate", o.learning_rate},
                            {"gamma", o.gamma},
                            {"epsilon_max", o.epsilon_max},
                            {"epsilon_min", o.epsilon_min},
                            {"epsilon_decay", o.epsilon_decay}};
  c.metadata = {{"format", kFormat},
                {"env", o.env},
                {"env_spec", spec},
                {"episode", std::to_string(episode)},
                {"seed", std::to_string(o.seed)},
                {"config", options.dump()},
                {"rng_state", generator_state(rng)},
                {"git_revision", o.git_revision}};
  return c;
}

template <class Adapter>
EvalSummary evaluate_greedy(Adapter& e, const agent::TabularQ& q, const TabularTrainOptions& o, int episodes) {
  EvalSummary s;
  s.episodes = episodes;
  if (episodes == 0) return s;
  const int limit = o.max_steps > 0 ? o.max_steps : 1'000'000;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < episodes; ++i) {
    std::int32_t state = e.reset(episode_seed(kEvalSeedSalt, static_cast<std::uint64_t>(i)));
    double ret = 0;
    for (int t = 0; t < limit; ++t) {
      const auto r = e.step(q.greedy_action(state, e.mask()));
      ret += r.reward;
      state = r.observation;
      if (r.terminated || r.truncated) break;
    }
    sum += ret;
    sum_sq += ret * ret;
  }
  s.mean_return = sum / episodes;
  s.std_return = std::sqrt(std::max(0.0, sum_sq / episodes - s.mean_return * s.mean_return));
  return s;
}

template <class Adapter>
TabularTrainResult run(Adapter& e, const TabularTrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::filesystem::create_directories(o.run_dir);
  agent::TabularQ q({e.num_states(), e.num_actions(), o.learning_rate, o.gamma, 0.0});
  std::mt19937_64 rng(o.seed);
  std::int64_t start_episode = 0;
  RecentReturns recent;
  if (o.resume_from) {
    const auto c = load_safetensors(*o.resume_from);
    const std::string where = o.resume_from->string();
    check_resumable(c, where, kFormat, o.env, e.spec(), "tabular");
    if (c.metadata_at("seed", where) != std::to_string(o.seed)) {
      throw CheckpointError(where, "trained with seed " + c.metadata_at("seed", where) + ", not --seed " + std::to_string(o.seed));
    }
    q.load_table(c.at("q_table").template as<double>());
    restore_generator(c, "rng_state", where, rng);
    restore_generator(c, "env_rng_state", where, e.generator());
    start_episode = std::stoll(c.metadata_at("episode", where));
    if (const auto it = c.metadata.find("recent_returns"); it != c.metadata.end()) {
      recent.restore(nlohmann::json::parse(it->second));
    }
    spdlog::info("resuming {} from episode {} ({})", o.env, start_episode, o.resume_from->string());
  }
  MetricsLog metrics(o.run_dir / "metrics.jsonl", "episode",
                     o.resume_from ? std::optional<std::int64_t>(start_episode) : std::nullopt);

  const int limit = o.max_steps > 0 ? o.max_steps : 1'000'000;
  std::int64_t steps = 0;
  std::int64_t episode = start_episode;
  double epsilon = o.epsilon_max;
  ProgressReporter progress(stderr, "ep");
  auto fields = [&] {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return ProgressFields{episode, o.episodes, wall > 0 ? static_cast<double>(steps) / wall : 0.0, recent.mean(),
                          epsilon};
  };
  auto save = [&](const std::filesystem::path& path, std::int64_t completed) {
    auto c = make_checkpoint(q, o, completed, rng, e.spec());
    c.metadata["env_rng_state"] = generator_state(e.generator());
    // The last-100 window travels with the checkpoint so resumed progress reads the same.
    c.metadata["recent_returns"] = recent.to_json().dump();
    save_safetensors(path, c);
  };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  bool interrupted = false;
  for (; episode < o.episodes; ++episode) {
    if (o.stop != nullptr && o.stop->load(std::memory_order_relaxed)) {
      interrupted = true;
      break;
    }
    epsilon = epsilon_exponential(o.epsilon_max, o.epsilon_min, o.epsilon_decay, episode);
    // Seeded once; later episodes continue the environment's stream (Gymnasium's reset()).
    std::int32_t state = episode == start_episode && !o.resume_from ? e.reset(o.seed) : e.reset();
    double ret = 0;
    for (int t = 0; t < limit; ++t) {
      // Epsilon-greedy: sampling epsilon_greedy_pmf() with the greedy mass on the lowest
      // tied index, drawn as "explore with probability epsilon" to stay O(1) per step.
      const auto mask = e.mask();
      const env::Action action = unit(rng) < epsilon ? random_allowed(mask, e.num_actions(), rng)
                                                     : q.greedy_action(state, mask);
      const auto r = e.step(action);
      q.update({state, action, r.reward, r.observation, r.terminated, r.terminated ? std::span<const std::uint8_t>{} : e.mask()});
      ret += r.reward;
      ++steps;
      state = r.observation;
      if (r.terminated || r.truncated) break;
    }
    recent.add(ret);
    const std::int64_t done = episode + 1;
    if (done % o.log_every == 0 || done == o.episodes) {
      const auto f = fields();
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      metrics.write({{"episode", done},
                     {"epsilon", epsilon},
                     {"episode_return", ret},
                     {"mean_return_100", f.mean_return},
                     {"env_steps", steps},
                     {"steps_per_s", f.steps_per_s},
                     {"wall_s", wall}});
    }
    if (done % o.checkpoint_every == 0) {
      metrics.flush();
      save(o.run_dir / "latest.safetensors", done);
    }
    if (o.show_progress) {
      auto f = fields();
      f.done = done;
      progress.update(f);
    }
  }
  metrics.flush();
  TabularTrainResult result;
  result.episodes_done = episode;
  result.interrupted = interrupted;
  result.total_steps = steps;
  result.checkpoint = o.run_dir / "final.safetensors";
  save(result.checkpoint, episode);
  if (o.show_progress) progress.finish(fields());
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!interrupted) result.greedy_eval = evaluate_greedy(e, q, o, o.eval_episodes);
  if (o.export_q_csv) {
    export_q_csv(q, [&](int s) { return e.state_name(s); }, [&](int a) { return e.action_name(a); }, *o.export_q_csv);
  }
  std::ofstream(o.run_dir / "summary.json")
      << nlohmann::json{{"env", o.env},
                        {"agent", "tabular"},
                        {"seed", o.seed},
                        {"episodes_done", result.episodes_done},
                        {"interrupted", interrupted},
                        {"env_steps", steps},
                        {"wall_s", result.wall_s},
                        {"greedy_eval", {{"episodes", result.greedy_eval.episodes},
                                         {"mean_return", result.greedy_eval.mean_return},
                                         {"std_return", result.greedy_eval.std_return}}},
                        {"checkpoint", result.checkpoint.string()}}
             .dump(2)
      << "\n";
  return result;
}

}  // namespace

TabularTrainResult train_tabular(const TabularTrainOptions& options) {
  validate(options);
  return with_env(options, [&](auto& e) { return run(e, options); });
}

EvalSummary evaluate_tabular_greedy(const agent::TabularQ& q, const TabularTrainOptions& options, int episodes) {
  return with_env(options, [&](auto& e) { return evaluate_greedy(e, q, options, episodes); });
}

void export_q_csv(const agent::TabularQ& q, const std::function<std::string(int)>& state_name,
                  const std::function<std::string(int)>& action_name, const std::filesystem::path& path) {
  auto quoted = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (const char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return out + "\"";
  };
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::invalid_argument("--export-q: cannot write " + path.string());
    out << "state";
    for (int a = 0; a < q.num_actions(); ++a) out << "," << quoted(action_name(a));
    out << "\n";
    out.precision(17);
    for (int s = 0; s < q.num_states(); ++s) {
      out << quoted(state_name(s));
      for (const double v : q.values(s)) out << "," << v;
      out << "\n";
    }
    out.flush();
    if (!out) {  // e.g. the disk filled up: keep the previous export, not half of this one
      out.close();
      std::filesystem::remove(tmp);
      throw std::runtime_error("--export-q: writing " + tmp + " failed");
    }
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace forkcast::training
