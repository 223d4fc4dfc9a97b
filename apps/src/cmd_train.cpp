// `forkcast train`: offline training runs.
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <iostream>
#include <optional>
#include <utility>

#include "build_info.hpp"
#include "commands.hpp"
#include "forkcast/training/dqn_training.hpp"
#include "forkcast/training/tabular_training.hpp"

namespace forkcast::apps {
namespace {

// The one process-wide flag a signal handler may touch; the training loop only sees it
// through TabularTrainOptions::stop.
std::atomic<bool> g_stop_requested{false};

extern "C" void request_stop(int) { g_stop_requested.store(true); }

struct TrainCli {
  std::string agent = "tabular";
  std::string run_id, runs_dir, data_dir, resume, export_q;
  bool no_progress = false;
  training::TabularTrainOptions options;
  // DQN flags; unset ones keep the config's dqn section (mealsim) or the CartPole preset.
  std::optional<std::int64_t> steps, learning_starts, eval_every, buffer_size;
  std::vector<int> hidden;
  std::optional<int> batch_size, n_step, train_frequency, gradient_steps, target_update, belief_particles, belief_top_k;
  std::optional<double> tau, exploration_fraction, dqn_lr, dqn_gamma;
  bool per = false, no_double = false, quantization_aware = false, no_quantization_aware = false;
  std::string numa = "auto";
  bool eval_episodes_given = false, checkpoint_every_given = false, eps_max_given = false, eps_min_given = false;
};

// A flag that only means something to the tabular agent, given with --agent dqn: refused,
// naming the DQN's own (it was silently ignored once).
void refuse_tabular_flags(const CLI::App& sub) {
  const std::pair<const char*, const char*> flags[] = {{"--gamma", "--dqn-gamma (config dqn.gamma)"},
                                                       {"--lr", "--dqn-lr (config dqn.learning_rate)"},
                                                       {"--eps-decay", "--exploration-fraction (config dqn.exploration_fraction)"},
                                                       {"--max-steps", "nothing: the environment's own time limit ends episodes"},
                                                       {"--episodes", "--steps (config dqn.steps)"}};
  for (const auto& [flag, instead] : flags) {
    if (sub.count(flag) > 0) {
      throw std::invalid_argument(std::string(flag) + ": a tabular setting; the dqn agent's is " + instead);
    }
  }
}

void run_dqn(const config::Config& cfg, TrainCli& cli) {
  // MealSim: the config's dqn section; CartPole: its preset (a check of the learner).
  auto o = cli.options.env == "mealsim" ? training::dqn_options(cfg.dqn) : training::default_dqn_options(cli.options.env);
  o.seed = cli.options.seed;
  if (cli.steps) o.total_steps = *cli.steps;
  if (!cli.hidden.empty()) o.dqn.hidden = cli.hidden;
  if (cli.batch_size) o.dqn.batch_size = *cli.batch_size;
  if (cli.n_step) o.dqn.n_step = *cli.n_step;
  if (cli.train_frequency) o.train_frequency = *cli.train_frequency;
  if (cli.gradient_steps) o.gradient_steps = *cli.gradient_steps;
  if (cli.target_update) o.dqn.target_update_every = *cli.target_update;
  if (cli.tau) o.dqn.tau = *cli.tau;
  if (cli.exploration_fraction) o.exploration_fraction = *cli.exploration_fraction;
  if (cli.dqn_lr) o.dqn.learning_rate = *cli.dqn_lr;
  if (cli.dqn_gamma) o.dqn.gamma = *cli.dqn_gamma;
  if (cli.learning_starts) o.learning_starts = *cli.learning_starts;
  if (cli.eval_every) o.eval_every = *cli.eval_every;
  if (cli.buffer_size) o.buffer_size = static_cast<std::size_t>(*cli.buffer_size);
  if (cli.eval_episodes_given) o.eval_episodes = cli.options.eval_episodes;
  if (cli.checkpoint_every_given) o.checkpoint_every = cli.options.checkpoint_every;
  if (cli.eps_max_given) o.epsilon_start = cli.options.epsilon_max;
  if (cli.eps_min_given) o.epsilon_end = cli.options.epsilon_min;
  if (cli.per) o.prioritized = true;
  if (cli.no_double) o.dqn.double_dqn = false;
  if (cli.quantization_aware) o.dqn.quantization_aware = true;
  if (cli.no_quantization_aware) o.dqn.quantization_aware = false;
  if (cli.belief_particles) o.belief_particles = *cli.belief_particles;
  if (cli.belief_top_k) o.belief_top_k = *cli.belief_top_k;
  o.numa = cli.numa;
  o.mealsim = cfg.mealsim;
  o.data_dir = cli.options.data_dir;
  o.run_dir = cli.options.run_dir;
  o.resume_from = cli.options.resume_from;
  o.git_revision = cli.options.git_revision;
  o.show_progress = cli.options.show_progress;
  o.stop = cli.options.stop;
  if (cli.options.export_q_csv) throw std::invalid_argument("--export-q: only the tabular agent has a Q-table");
  spdlog::info("training DQN on {} for {} steps, seed {}, run {}", o.env, o.total_steps, o.seed, o.run_dir.string());
  const auto r = training::train_dqn(o);
  if (r.interrupted) {
    std::cout << "interrupted after " << r.steps_done << " steps; checkpoint " << r.checkpoint.string()
              << "\nresume with: forkcast train --agent dqn --env " << o.env << " --steps " << o.total_steps << " --seed "
              << o.seed << " --run-id " << o.run_dir.filename().string() << " --resume " << r.checkpoint.string() << "\n";
    throw CLI::RuntimeError(130);
  }
  std::cout << "trained " << r.steps_done << " steps (" << r.episodes << " episodes) in " << r.wall_s
            << " s\nbest network at step " << r.best_step << "; greedy evaluation over " << r.greedy_eval.episodes
            << " episodes: mean return " << r.greedy_eval.mean_return << " (std " << r.greedy_eval.std_return
            << ")\nmodel " << r.model.string() << "\ncheckpoint " << r.checkpoint.string() << "\nmetrics "
            << (o.run_dir / "metrics.jsonl").string() << "\n";
}

std::string default_run_id(const TrainCli& cli) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::gmtime(&now));
  return cli.options.env + "-" + cli.agent + "-s" + std::to_string(cli.options.seed) + "-" + stamp;
}

void run_train(const GlobalOptions& global, TrainCli& cli, CLI::App& sub) {
  const auto cfg = load_config_and_logging(global);
  auto& o = cli.options;
  if (cli.agent == "dqn" && o.env != "cartpole" && o.env != "mealsim") {
    throw std::invalid_argument("--env " + o.env + ": the dqn agent trains on cartpole or mealsim");
  }
  if (cli.agent == "tabular" && o.env == "cartpole") {
    throw std::invalid_argument("--env cartpole: its observation is continuous; the tabular agent needs taxi, "
                                "frozenlake, frozenlake-slippery or mealsim");
  }
  if (cli.agent == "tabular" && sub.count("--episodes") == 0) throw std::invalid_argument("--episodes: required by the tabular agent");
  // Flags not given on the command line come from the configuration file.
  if (sub.count("--lr") == 0) o.learning_rate = cfg.training.learning_rate;
  if (sub.count("--gamma") == 0) o.gamma = cfg.training.gamma;
  if (sub.count("--max-steps") == 0) o.max_steps = cfg.training.max_steps;
  if (sub.count("--checkpoint-every") == 0) o.checkpoint_every = cfg.training.checkpoint_every;
  if (sub.count("--eval-episodes") == 0) o.eval_episodes = cfg.training.eval_episodes;
  if (sub.count("--eps-max") == 0) o.epsilon_max = cfg.exploration.epsilon_max;
  if (sub.count("--eps-min") == 0) o.epsilon_min = cfg.exploration.epsilon_min;
  if (sub.count("--eps-decay") == 0) o.epsilon_decay = cfg.exploration.decay;
  if (cli.agent == "tabular" && cfg.exploration.schedule != "exponential") {  // the DQN decays linearly over --exploration-fraction
    throw std::invalid_argument("exploration.schedule: \"" + cfg.exploration.schedule +
                                "\" is not supported by the tabular agent (episodes use the exponential schedule)");
  }
  o.mealsim = cfg.mealsim;
  o.data_dir = cli.data_dir.empty() ? std::filesystem::path(cfg.policy.catalog_dir) : std::filesystem::path(cli.data_dir);
  const std::filesystem::path runs = cli.runs_dir.empty() ? cfg.training.runs_dir : cli.runs_dir;
  o.run_dir = runs / (cli.run_id.empty() ? default_run_id(cli) : cli.run_id);
  if (!cli.resume.empty()) o.resume_from = cli.resume;
  if (!cli.export_q.empty()) o.export_q_csv = cli.export_q;
  o.git_revision = build_info::kGitRevision;
  o.show_progress = !cli.no_progress;
  o.stop = &g_stop_requested;
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  if (cli.agent == "dqn") {
    refuse_tabular_flags(sub);
    cli.eval_episodes_given = sub.count("--eval-episodes") > 0;
    cli.checkpoint_every_given = sub.count("--checkpoint-every") > 0;
    cli.eps_max_given = sub.count("--eps-max") > 0;
    cli.eps_min_given = sub.count("--eps-min") > 0;
    run_dqn(cfg, cli);
    return;
  }

  spdlog::info("training tabular Q-learning on {} for {} episodes, seed {}, run {}", o.env, o.episodes, o.seed,
               o.run_dir.string());
  const auto r = training::train_tabular(o);
  if (r.interrupted) {
    std::cout << "interrupted after " << r.episodes_done << " episodes; checkpoint " << r.checkpoint.string()
              << "\nresume with: forkcast train --agent tabular --env " << o.env << " --episodes " << o.episodes
              << " --seed " << o.seed << " --run-id " << o.run_dir.filename().string() << " --resume "
              << r.checkpoint.string() << "\n";
    throw CLI::RuntimeError(130);
  }
  std::cout << "trained " << r.episodes_done << " episodes (" << r.total_steps << " steps) in " << r.wall_s
            << " s\ngreedy evaluation over " << r.greedy_eval.episodes << " episodes: mean return "
            << r.greedy_eval.mean_return << " (std " << r.greedy_eval.std_return << ")\ncheckpoint "
            << r.checkpoint.string() << "\nmetrics " << (o.run_dir / "metrics.jsonl").string() << "\n";
  if (o.export_q_csv) std::cout << "Q-table " << o.export_q_csv->string() << "\n";
}

}  // namespace

void add_train_command(CLI::App& app, const GlobalOptions& global) {
  auto cli = std::make_shared<TrainCli>();
  auto* sub = app.add_subcommand("train", "Train an agent offline; writes runs/<run-id>/ (metrics.jsonl, checkpoints)");
  auto& o = cli->options;
  sub->add_option("--agent", cli->agent, "tabular | dqn")->check(CLI::IsMember({"tabular", "dqn"}));
  sub->add_option("--env", o.env, "taxi | frozenlake | frozenlake-slippery | mealsim (tabular); cartpole (dqn)")
      ->required()
      ->check(CLI::IsMember({"taxi", "frozenlake", "frozenlake-slippery", "mealsim", "cartpole"}));
  sub->add_option("--episodes", o.episodes, "training episodes (tabular)")->check(CLI::PositiveNumber);
  sub->add_option("--steps", cli->steps, "environment steps (dqn; default dqn.steps for mealsim, 150000 cartpole)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--hidden", cli->hidden, "hidden layer sizes (dqn), e.g. --hidden 256 256")->expected(1, 8);
  sub->add_option("--batch-size", cli->batch_size, "minibatch size (dqn)")->check(CLI::PositiveNumber);
  sub->add_option("--buffer-size", cli->buffer_size, "replay capacity in transitions (dqn)")->check(CLI::PositiveNumber);
  sub->add_option("--learning-starts", cli->learning_starts, "steps before the first update (dqn)");
  sub->add_option("--train-frequency", cli->train_frequency, "steps between update rounds (dqn)")->check(CLI::PositiveNumber);
  sub->add_option("--gradient-steps", cli->gradient_steps, "updates per round (dqn)")->check(CLI::PositiveNumber);
  sub->add_option("--target-update", cli->target_update, "updates between hard target copies (dqn)")->check(CLI::PositiveNumber);
  sub->add_option("--tau", cli->tau, "Polyak factor; < 1 averages the target after every update (dqn)");
  sub->add_option("--n-step", cli->n_step, "n-step returns (dqn)")->check(CLI::PositiveNumber);
  sub->add_option("--exploration-fraction", cli->exploration_fraction,
                  "fraction of --steps over which epsilon decays linearly (dqn)");
  sub->add_option("--dqn-lr", cli->dqn_lr, "Adam learning rate (dqn; default dqn.learning_rate)");
  sub->add_option("--dqn-gamma", cli->dqn_gamma, "discount (dqn; default dqn.gamma)");
  sub->add_option("--eval-every", cli->eval_every, "steps between greedy evaluations; the best network is kept (dqn)");
  sub->add_flag("--per", cli->per, "prioritized replay (dqn; default dqn.prioritized)");
  sub->add_flag("--no-double", cli->no_double, "plain DQN targets instead of double DQN (dqn; default dqn.double_dqn)");
  auto* qat = sub->add_flag("--quantization-aware", cli->quantization_aware,
                            "train on the int8 weight grid, so int8 serving makes the float network's decisions "
                            "(dqn; the default for mealsim)");
  sub->add_flag("--no-quantization-aware", cli->no_quantization_aware, "train plain float32 weights (dqn)")->excludes(qat);
  sub->add_option("--belief-particles", cli->belief_particles,
                  "mealsim: train on a belief over the user of this many particles, 0 = none (dqn; such a model is "
                  "evaluated, not served)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--belief-top-k", cli->belief_top_k,
                  "with --belief-particles: rank only the belief's K best-planned meals per state, 0 = all (dqn)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--numa", cli->numa, "auto | off: place the training worker and its buffers with libnuma (dqn)")
      ->check(CLI::IsMember({"auto", "off"}));
  sub->add_option("--seed", o.seed, "run seed (environment, exploration and, for dqn, network initialisation)")->default_val(0);
  sub->add_option("--max-steps", o.max_steps, "steps per episode, 0 = the environment's limit (tabular; default training.max_steps)");
  sub->add_option("--lr", o.learning_rate, "learning rate (tabular; default training.learning_rate)");
  sub->add_option("--gamma", o.gamma, "discount (tabular; default training.gamma)");
  sub->add_option("--eps-max", o.epsilon_max, "initial epsilon (tabular: default exploration.epsilon_max; dqn: dqn.epsilon_start)");
  sub->add_option("--eps-min", o.epsilon_min, "final epsilon (tabular: default exploration.epsilon_min; dqn: dqn.epsilon_end)");
  sub->add_option("--eps-decay", o.epsilon_decay,
                  "per-episode decay: eps = min + (max - min) * exp(-decay * episode) (tabular; default exploration.decay)");
  sub->add_option("--checkpoint-every", o.checkpoint_every, "episodes (tabular) or steps (dqn) between checkpoints (default training.checkpoint_every; dqn.checkpoint_every)");
  sub->add_option("--eval-episodes", o.eval_episodes, "greedy evaluation episodes at the end (default training.eval_episodes; dqn.eval_episodes)");
  sub->add_option("--run-id", cli->run_id, "run folder name (default <env>-<agent>-s<seed>-<UTC time>)");
  sub->add_option("--runs-dir", cli->runs_dir, "parent of run folders (default training.runs_dir)");
  sub->add_option("--data-dir", cli->data_dir, "catalog and population folder for mealsim (default policy.catalog_dir)");
  sub->add_option("--resume", cli->resume, "continue from this checkpoint (same env, seed and settings)")
      ->check(CLI::ExistingFile);
  sub->add_option("--export-q", cli->export_q, "write the Q-table as CSV with state and action names");
  sub->add_flag("--no-progress", cli->no_progress, "no progress bar or progress lines");
  sub->footer("Ctrl-C stops after the current episode and leaves final.safetensors to --resume from.\n"
              "Exit codes: 0 trained, 130 interrupted (checkpoint written), 1 failure, 2 bad usage.");
  sub->callback([&global, cli, sub] { run_train(global, *cli, *sub); });
}

}  // namespace forkcast::apps
