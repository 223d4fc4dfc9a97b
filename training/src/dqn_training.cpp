// The DQN training loop, top to bottom like CleanRL's dqn.py: set up, act epsilon-greedily,
// store n-step transitions, update every train_frequency steps after learning_starts,
// evaluate greedily now and then (keeping the best network), log, checkpoint, and at the end
// write the model and the summary. What differs between CartPole and MealSim is in the
// environment adapters (dqn_envs.hpp); what a checkpoint holds is in dqn_checkpoint.hpp.
#include "forkcast/training/dqn_training.hpp"

#include <numa.h>
#include <sched.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <limits>

#include "dqn_checkpoint.hpp"
#include "dqn_envs.hpp"
#include "forkcast/policy/explore.hpp"
#include "forkcast/policy/progress.hpp"
#include "run_log.hpp"

namespace forkcast::training {

namespace {

namespace nn = agent::nn;
using dqn::kMaxCandidates;
constexpr std::uint64_t kEvalSeedSalt = 0xe7a1'5eed'0000'0000ULL;

void place_numa(const std::string& mode) {
  if (mode == "off") {
    spdlog::debug("NUMA placement off");
    return;
  }
  if (numa_available() < 0) {
    spdlog::info("NUMA: not available on this machine; placement unchanged");
    return;
  }
  const int nodes = numa_num_configured_nodes();
  if (nodes <= 1) {
    spdlog::info("NUMA: one node; placement unchanged");
    return;
  }
  // One training worker: run it and allocate its buffers (networks, replay) on the node
  // it starts on, so every access is local.
  const int node = numa_node_of_cpu(sched_getcpu());
  numa_run_on_node(node);
  numa_set_preferred(node);
  spdlog::info("NUMA: {} nodes; training worker and its buffers placed on node {}", nodes, node);
}

void validate(const DqnTrainOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (o.env != "cartpole" && o.env != "mealsim") bad("--env: \"" + o.env + "\" is not one of cartpole, mealsim (dqn)");
  if (o.total_steps <= 0) bad("--steps: " + std::to_string(o.total_steps) + " must be > 0");
  if (o.buffer_size == 0) bad("--buffer-size: must be > 0");
  if (o.train_frequency <= 0) bad("--train-frequency: must be > 0");
  if (o.gradient_steps <= 0) bad("--gradient-steps: must be > 0");
  if (!(o.exploration_fraction > 0 && o.exploration_fraction <= 1)) bad("--exploration-fraction: must be in (0, 1]");
  if (o.checkpoint_every <= 0) bad("--checkpoint-every: must be > 0");
  if (o.log_every <= 0) bad("log_every: must be > 0");
  if (o.numa != "auto" && o.numa != "off") bad("--numa: \"" + o.numa + "\" is not one of auto, off");
  if (o.run_dir.empty()) bad("run_dir: must be set");
  if (o.belief_particles < 0 || o.belief_particles > 4096) {
    bad("--belief-particles: " + std::to_string(o.belief_particles) + " is outside 0..4096");
  }
  if (o.belief_particles > 0 && o.env != "mealsim") bad("--belief-particles: only mealsim has a hidden user to believe in");
  if (o.belief_top_k < 0 || o.belief_top_k > kMaxCandidates || (o.belief_top_k > 0 && o.belief_particles == 0)) {
    bad("--belief-top-k: " + std::to_string(o.belief_top_k) + " must be 0 (all) or 1.." + std::to_string(kMaxCandidates) +
        " with --belief-particles > 0");
  }
  if (o.belief_particles > 0 && o.resume_from) {
    bad("--resume: runs with --belief-particles cannot resume yet (the belief's particles are not checkpointed)");
  }
  policy::epsilon_linear(o.epsilon_start, o.epsilon_end, 0, 1);  // validates the epsilons
}

// The last n_step steps, not yet stored: each becomes one transition once its n-step
// return is known (or the episode ends).
class NStepWindow {
 public:
  explicit NStepWindow(double gamma) : gamma_(gamma) {}
  struct Step {
    std::vector<float> observation;
    env::Action action = 0;
    std::vector<float> extras;  // the chosen candidate's (candidate head)
    double reward = 0;
  };
  void push(std::span<const float> observation, dqn::Choice choice) {
    steps_.push_back({std::vector<float>(observation.begin(), observation.end()), choice.action, std::move(choice.extras), 0.0});
  }
  Step& back() { return steps_.back(); }
  std::size_t size() const { return steps_.size(); }
  void clear() { steps_.clear(); }
  // Stores the oldest `count` steps as transitions ending at the environment's current state.
  template <class Env>
  void emit(Env& e, agent::ReplayBuffer& replay, bool terminated, std::size_t count) {
    for (std::size_t k = 0; k < count; ++k) {
      double ret = 0, discount = 1;
      for (const auto& p : steps_) {
        ret += discount * p.reward;
        discount *= gamma_;
      }
      const Step& head = steps_.front();
      e.store(replay, head.observation, head.action, head.extras, ret, discount, terminated);
      steps_.pop_front();
    }
  }

 private:
  double gamma_;
  std::deque<Step> steps_;
};

template <class Env>
DqnTrainResult run(Env& e, const DqnTrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto wall_s = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  place_numa(o.numa);
  // One thread: deterministic sums, and a threaded OpenBLAS would allocate per call.
  nn::set_blas_threads(1);
  std::filesystem::create_directories(o.run_dir);
  const std::string spec = e.spec();

  // ---- the run's state, fresh or from a checkpoint
  dqn::RunState s(e.make_learner(o), e.replay_spec(o), o.seed);
  if (o.resume_from) {
    dqn::restore_checkpoint(*o.resume_from, s, o, spec, e.generator());
    spdlog::info("resuming dqn on {} from step {} ({})", o.env, s.step, o.resume_from->string());
  }
  MetricsLog metrics(o.run_dir / "metrics.jsonl", "step", o.resume_from ? std::optional<std::int64_t>(s.step) : std::nullopt);
  // A separate environment for evaluation, so evaluating never disturbs training's stream.
  const auto eval_env = Env::for_evaluation(o);
  policy::ProgressReporter progress(stderr, "steps");
  const auto exploration_steps =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(o.exploration_fraction * static_cast<double>(o.total_steps)));
  NStepWindow window(o.dqn.gamma);
  double loss = 0, last_eval = std::numeric_limits<double>::quiet_NaN(), epsilon = o.epsilon_start;
  bool interrupted = false, solved = false;
  std::int64_t next_checkpoint = (s.step / o.checkpoint_every + 1) * o.checkpoint_every;
  bool first_reset = !o.resume_from;

  while (s.step < o.total_steps && !solved) {
    if (o.stop != nullptr && o.stop->load(std::memory_order_relaxed)) {
      interrupted = true;
      break;
    }
    // ---- one episode
    if (first_reset) {
      e.reset(o.seed);
      first_reset = false;
    } else {
      e.reset();
    }
    double episode_return = 0;
    for (;;) {
      // act
      epsilon = policy::epsilon_linear(o.epsilon_start, o.epsilon_end, s.step, exploration_steps);
      dqn::Choice choice = e.choose(s.learner, epsilon, s.rng);
      const env::Action action = choice.action;
      window.push(e.observation(), std::move(choice));
      const auto r = e.step(action);
      window.back().reward = r.reward;
      episode_return += r.reward;
      ++s.step;
      // store
      if (r.terminated || r.truncated) {
        window.emit(e, s.replay, r.terminated, window.size());
      } else if (window.size() == static_cast<std::size_t>(o.dqn.n_step)) {
        window.emit(e, s.replay, false, 1);
      }
      // learn
      if (s.step > o.learning_starts && s.step % o.train_frequency == 0) {
        for (int g = 0; g < o.gradient_steps; ++g) loss = s.learner.update(s.replay, s.rng);
      }
      // evaluate, keeping the best network
      if (o.eval_every > 0 && s.step % o.eval_every == 0) {
        last_eval = eval_env->evaluate(s.learner.online(), o.eval_episodes_during, kEvalSeedSalt ^ 0x1ULL).mean_return;
        if (last_eval > s.best_score) {
          s.best_score = last_eval;
          s.best_step = s.step;
          std::copy(s.learner.online().parameters().begin(), s.learner.online().parameters().end(), s.best_params.begin());
        }
        if (last_eval >= o.stop_at_eval_return) solved = true;
      }
      // log
      if (s.step % o.log_every == 0) {
        const double wall = wall_s();
        nlohmann::json record = {{"step", s.step},          {"episode", s.episodes},
                                 {"epsilon", epsilon},      {"loss", loss},
                                 {"mean_return_100", s.recent.mean()},
                                 {"updates", s.learner.updates()},
                                 {"wall_s", wall}};
        if (!std::isnan(last_eval)) record["eval_return"] = last_eval;
        metrics.write(record);
        if (o.show_progress) {
          progress.update({s.step, o.total_steps, wall > 0 ? static_cast<double>(s.step) / wall : 0.0, s.recent.mean(), epsilon});
        }
      }
      if (r.terminated || r.truncated || s.step >= o.total_steps || solved) break;
    }
    window.clear();  // an episode cut by total_steps leaves no partial window behind
    s.recent.add(episode_return);
    ++s.episodes;
    if (s.step >= next_checkpoint) {
      metrics.flush();
      dqn::save_checkpoint(o.run_dir / "latest.safetensors", s, o, spec, e.generator());
      next_checkpoint = (s.step / o.checkpoint_every + 1) * o.checkpoint_every;
    }
  }
  metrics.flush();

  // ---- the end: final checkpoint, the best network as the model, its evaluation, summary
  if (s.best_score == -std::numeric_limits<double>::infinity()) {
    // Without any evaluation, the last network is the one we keep.
    std::copy(s.learner.online().parameters().begin(), s.learner.online().parameters().end(), s.best_params.begin());
    s.best_step = s.step;
  }
  DqnTrainResult result;
  result.steps_done = s.step;
  result.episodes = s.episodes;
  result.interrupted = interrupted;
  result.checkpoint = o.run_dir / "final.safetensors";
  dqn::save_checkpoint(result.checkpoint, s, o, spec, e.generator());
  result.best_step = s.best_step;
  result.best_during_eval = s.best_score;

  nn::Mlp<float> best = s.learner.online();
  std::copy(s.best_params.begin(), s.best_params.end(), best.parameters().begin());
  result.model = o.run_dir / "model.safetensors";
  dqn::save_model(result.model, best, o, spec, s.best_step);
  if (!interrupted && o.eval_episodes > 0) result.greedy_eval = eval_env->evaluate(best, o.eval_episodes, kEvalSeedSalt);
  if (o.show_progress) progress.finish({s.step, o.total_steps, 0.0, 0.0, epsilon});
  result.wall_s = wall_s();
  std::ofstream(o.run_dir / "summary.json")
      << nlohmann::json{{"env", o.env},
                        {"agent", "dqn"},
                        {"seed", o.seed},
                        {"steps_done", s.step},
                        {"episodes", s.episodes},
                        {"interrupted", interrupted},
                        {"wall_s", result.wall_s},
                        {"best_step", s.best_step},
                        {"solved_early", solved},
                        {"best_during_eval", std::isfinite(s.best_score) ? s.best_score : 0.0},
                        {"greedy_eval", {{"episodes", result.greedy_eval.episodes},
                                         {"mean_return", result.greedy_eval.mean_return},
                                         {"std_return", result.greedy_eval.std_return}}},
                        {"model", result.model.string()},
                        {"checkpoint", result.checkpoint.string()}}
             .dump(2)
      << "\n";
  return result;
}

}  // namespace

DqnTrainOptions default_dqn_options(const std::string& env) {
  DqnTrainOptions o;
  o.env = env;
  if (env == "cartpole") {
    // RL Baselines3 Zoo's CartPole-v1 DQN (train 128 updates after every 256 steps against
    // a target frozen for those updates, epsilon over the first 8 000 steps), on a
    // 128-128 network, with a 150 000-step budget and an early stop once solved.
    o.total_steps = 150'000;
    o.dqn.hidden = {128, 128};
    o.dqn.learning_rate = 2.3e-3;
    o.dqn.gamma = 0.99;
    o.dqn.batch_size = 64;
    o.dqn.target_update_every = 128;
    o.buffer_size = 100'000;
    o.learning_starts = 1'000;
    o.train_frequency = 256;
    o.gradient_steps = 128;
    o.exploration_fraction = 8'000.0 / 150'000.0;
    o.epsilon_end = 0.04;
    o.eval_every = 5'000;
    o.eval_episodes_during = 10;
    o.stop_at_eval_return = 500.0;
  } else if (env == "mealsim") {
    o = dqn_options(config::DqnConfig{});
  } else {
    throw std::invalid_argument("--env: \"" + env + "\" is not one of cartpole, mealsim (dqn)");
  }
  return o;
}

DqnTrainOptions dqn_options(const config::DqnConfig& c) {
  DqnTrainOptions o;
  o.env = "mealsim";
  o.total_steps = c.steps;
  o.dqn.hidden = c.hidden_layers();
  o.dqn.learning_rate = c.learning_rate;
  o.dqn.gamma = c.gamma;
  o.dqn.n_step = c.n_step;
  o.dqn.batch_size = c.batch_size;
  o.dqn.target_update_every = c.target_update_every;
  o.dqn.tau = c.tau;
  o.dqn.double_dqn = c.double_dqn;
  // Served policies: the int8 path must make the float network's decisions (issue 5;
  // docs/agents.md, "Serving").
  o.dqn.quantization_aware = c.quantization_aware;
  o.buffer_size = static_cast<std::size_t>(c.buffer_size);
  o.prioritized = c.prioritized;
  o.learning_starts = c.learning_starts;
  o.train_frequency = c.train_frequency;
  o.gradient_steps = c.gradient_steps;
  o.epsilon_start = c.epsilon_start;
  o.epsilon_end = c.epsilon_end;
  o.exploration_fraction = c.exploration_fraction;
  o.eval_every = c.eval_every;
  o.eval_episodes_during = c.eval_episodes_during;
  o.eval_episodes = c.eval_episodes;
  o.checkpoint_every = c.checkpoint_every;
  return o;
}

DqnTrainResult train_dqn(const DqnTrainOptions& options) {
  validate(options);
  if (options.env == "cartpole") {
    dqn::CartPoleDqnEnv e;
    return run(e, options);
  }
  dqn::MealSimDqnEnv e(options.data_dir, options.mealsim, options.belief_particles, options.belief_top_k,
                       options.seed ^ 0xb0b0'be11'efULL, true);
  return run(e, options);
}

EvalSummary evaluate_cartpole(const agent::nn::Mlp<float>& network, int episodes) {
  dqn::CartPoleDqnEnv e;
  return e.evaluate(network, episodes, kEvalSeedSalt);
}

}  // namespace forkcast::training
