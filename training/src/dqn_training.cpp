#include "forkcast/training/dqn_training.hpp"

#include <numa.h>
#include <sched.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <limits>
#include <sstream>

#include "forkcast/env/belief_policy.hpp"
#include "forkcast/env/cartpole.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/episode_seed.hpp"
#include "forkcast/policy/explore.hpp"
#include "forkcast/policy/greedy_policies.hpp"
#include "forkcast/policy/model_files.hpp"
#include "forkcast/policy/progress.hpp"
#include "training_state.hpp"

namespace forkcast::training {

using policy::Checkpoint;
using policy::CheckpointError;
using policy::DqnMealPolicy;
using policy::ProgressReporter;
using policy::Tensor;
using policy::episode_seed;
using policy::load_safetensors;
using policy::save_safetensors;
using policy::epsilon_linear;
using policy::order_by_planning;

namespace {

namespace nn = agent::nn;
constexpr const char* kFormat = policy::kDqnCheckpointFormat.data();
constexpr const char* kModelFormat = policy::kDqnModelFormat.data();
constexpr std::uint64_t kEvalSeedSalt = 0xe7a1'5eed'0000'0000ULL;
constexpr int kMaxCandidates = 128;

// --- Environments seen by the loop. -----------------------------------------------------

struct CartPoleDqnEnv {
  static constexpr bool kCandidates = false;
  env::CartPoleEnv env;
  std::array<float, 4> obs{};
  std::span<const float> observation() const { return obs; }
  void reset(std::uint64_t seed) { obs = env.reset(seed); }
  void reset() { obs = env.reset(); }
  std::mt19937_64& generator() { return env.generator(); }
  struct Outcome {
    double reward;
    bool terminated, truncated;
  };
  Outcome step(env::Action a) {
    const auto r = env.step(a);
    obs = r.observation;
    return {r.reward, r.terminated, r.truncated};
  }
  static int input_size() { return 4; }
  static int num_actions() { return 2; }
  std::string spec() const { return "CartPole-v1"; }
};

// With belief_particles > 0 the agent also keeps a belief over the user (a MealBelief
// that follows every step) and each candidate carries its values (write_belief_features).
// An environment for greedy evaluation only (track_belief = false) keeps none: the policy
// it evaluates (DqnMealPolicy) follows the week with its own.
struct MealSimDqnEnv {
  static constexpr bool kCandidates = true;
  MealSimDqnEnv(const std::filesystem::path& data_dir, const config::MealSimConfig& cfg, int belief_particles,
                int belief_top_k, std::uint64_t belief_seed, bool track_belief)
      : catalog(std::make_unique<env::Catalog>(env::Catalog::load(data_dir))),
        population(std::make_unique<env::Population>(env::Population::load(data_dir / "population.yaml"))),
        sim(std::make_unique<env::MealSim>(*catalog, *population, cfg)),
        belief_particles(belief_particles),
        belief_top_k(belief_top_k),
        belief_rng(belief_seed) {
    if (belief_particles > 0 && track_belief) {
      env::BeliefOptions options;
      options.particles = belief_particles;
      belief = std::make_unique<env::MealBelief>(*population, options);
    }
  }
  std::unique_ptr<env::Catalog> catalog;
  std::unique_ptr<env::Population> population;
  std::unique_ptr<env::MealSim> sim;
  int belief_particles = 0;
  int belief_top_k = 0;
  std::vector<std::size_t> order;  // scratch of keep_top_k
  std::unique_ptr<env::MealBelief> belief;
  std::mt19937_64 belief_rng;
  std::vector<std::int16_t> allowed;
  std::vector<float> extras;  // per allowed candidate: recency, then the belief's values
  bool candidates_fresh = false;  // allowed and extras describe the current state

  int extra_size() const { return 1 + (belief_particles > 0 ? env::kBeliefCandidateFeatures : 0); }
  std::span<const float> observation() const { return sim->observation(); }
  void reset(std::uint64_t seed) {
    sim->reset(seed);
    candidates_fresh = false;
    if (belief) belief->start(*sim, belief_rng);
  }
  void reset() {
    sim->reset();
    candidates_fresh = false;
    if (belief) belief->start(*sim, belief_rng);
  }
  std::mt19937_64& generator() { return sim->generator(); }
  struct Outcome {
    double reward;
    bool terminated, truncated;
  };
  Outcome step(env::Action a) {
    const auto r = sim->step(a);
    candidates_fresh = false;
    // A truncated week still bootstraps from its next state, so the belief follows it there.
    if (belief && !r.terminated) belief->observe(a, r.accepted, r.eaten, belief_rng);
    return {r.reward, r.terminated, r.truncated};
  }
  // The allowed candidates of the current state and their extras (computed once per state:
  // a belief's values cost particles x candidates planning scores).
  void refresh_candidates() {
    if (candidates_fresh) return;
    candidates_fresh = true;
    allowed.clear();
    extras.clear();
    const auto mask = sim->action_mask();
    for (std::size_t m = 0; m < mask.size(); ++m) {
      if (!mask[m]) continue;
      allowed.push_back(static_cast<std::int16_t>(m));
      extras.push_back(static_cast<float>(sim->meal_recency(static_cast<env::Action>(m))));
      if (belief) {
        float values[env::kBeliefCandidateFeatures];
        env::write_belief_features(belief->value(static_cast<env::Action>(m)), values);
        extras.insert(extras.end(), values, values + env::kBeliefCandidateFeatures);
      }
    }
    if (allowed.size() > static_cast<std::size_t>(kMaxCandidates)) {
      throw std::invalid_argument("MealSim: " + std::to_string(allowed.size()) + " candidates in one slot exceed " +
                                  std::to_string(kMaxCandidates));
    }
    if (belief && belief_top_k > 0 && allowed.size() > static_cast<std::size_t>(belief_top_k)) keep_top_k();
  }
  // Candidate generation by the belief: only the belief_top_k candidates with the highest
  // planning score stay (ties: lower catalog index), in catalog order.
  void keep_top_k() {
    const auto width = static_cast<std::size_t>(extra_size());
    // write_belief_features [2], after the recency
    order_by_planning(allowed.size(), [&](std::size_t c) { return extras[c * width + 3]; }, order);
    order.resize(static_cast<std::size_t>(belief_top_k));
    std::sort(order.begin(), order.end());
    for (std::size_t k = 0; k < order.size(); ++k) {
      allowed[k] = allowed[order[k]];
      std::copy_n(extras.begin() + static_cast<std::ptrdiff_t>(order[k] * width), width,
                  extras.begin() + static_cast<std::ptrdiff_t>(k * width));
    }
    allowed.resize(order.size());
    extras.resize(order.size() * width);
  }
  int input_size() const { return env::kCandidateInputSize + (belief_particles > 0 ? env::kBeliefCandidateFeatures : 0); }
  static int num_actions() { return 0; }
  std::string spec() const { return "MealSim catalog " + catalog->content_hash(); }
};

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

std::string layer_sizes_json(const std::vector<int>& sizes) { return nlohmann::json(sizes).dump(); }

void add_layer_tensors(Checkpoint& c, const nn::Mlp<float>& net) {
  const auto& sizes = net.layer_sizes();
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const auto w = net.weight(static_cast<int>(l));
    const auto b = net.bias(static_cast<int>(l));
    // nn.Sequential(Linear, ReLU, Linear, ...): Linear layers sit at even indices.
    const std::string prefix = std::to_string(2 * l);
    c.tensors.push_back(Tensor::from_span<float>(prefix + ".weight", {w.rows(), w.cols()},
                                                 std::span<const float>(w.data(), static_cast<std::size_t>(w.size()))));
    c.tensors.push_back(Tensor::from_span<float>(prefix + ".bias", {b.size()},
                                                 std::span<const float>(b.data(), static_cast<std::size_t>(b.size()))));
  }
}

template <class T>
Tensor flat(const std::string& name, std::span<const T> values) {
  return Tensor::from_span<T>(name, {static_cast<std::int64_t>(values.size())}, values);
}

template <class Env>
EvalSummary evaluate_network(Env& e, const nn::Mlp<float>& net, int episodes, std::uint64_t salt) {
  nn::Workspace<float> ws;
  nn::Matrix<float> x, y;
  // MealSim: the same greedy policy evaluation and serving use.
  std::unique_ptr<DqnMealPolicy> meal_policy;
  if constexpr (Env::kCandidates) {
    meal_policy = std::make_unique<DqnMealPolicy>(net, *e.catalog, e.population.get(), e.belief_particles, e.belief_top_k);
  }
  std::mt19937_64 policy_rng(salt);  // greedy policies draw only for their belief, if any
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < episodes; ++i) {
    e.reset(episode_seed(salt, static_cast<std::uint64_t>(i)));
    double ret = 0;
    for (;;) {
      env::Action a = 0;
      if constexpr (Env::kCandidates) {
        a = meal_policy->act(*e.sim, policy_rng);
      } else {
        const auto obs = e.observation();
        x = Eigen::Map<const nn::Matrix<float>>(obs.data(), 1, static_cast<Eigen::Index>(obs.size()));
        net.predict(x, y, ws);
        Eigen::Index best = 0;
        y.row(0).maxCoeff(&best);
        a = static_cast<env::Action>(best);
      }
      const auto r = e.step(a);
      ret += r.reward;
      if (r.terminated || r.truncated) break;
    }
    sum += ret;
    sum_sq += ret * ret;
  }
  EvalSummary s;
  s.episodes = episodes;
  if (episodes > 0) {
    s.mean_return = sum / episodes;
    s.std_return = std::sqrt(std::max(0.0, sum_sq / episodes - s.mean_return * s.mean_return));
  }
  return s;
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
  epsilon_linear(o.epsilon_start, o.epsilon_end, 0, 1);  // validates the epsilons
}

nlohmann::json options_json(const DqnTrainOptions& o) {
  nlohmann::json j = {{"env", o.env},
          {"total_steps", o.total_steps},
          {"seed", o.seed},
          {"hidden", o.dqn.hidden},
          {"learning_rate", o.dqn.learning_rate},
          {"gamma", o.dqn.gamma},
          {"n_step", o.dqn.n_step},
          {"batch_size", o.dqn.batch_size},
          {"huber_delta", o.dqn.huber_delta},
          {"max_grad_norm", o.dqn.max_grad_norm},
          {"double_dqn", o.dqn.double_dqn},
          {"tau", o.dqn.tau},
          {"target_update_every", o.dqn.target_update_every},
          {"buffer_size", o.buffer_size},
          {"prioritized", o.prioritized},
          {"learning_starts", o.learning_starts},
          {"train_frequency", o.train_frequency},
          {"gradient_steps", o.gradient_steps},
          {"epsilon_start", o.epsilon_start},
          {"epsilon_end", o.epsilon_end},
          {"exploration_fraction", o.exploration_fraction}};
  // Only when on, so that the settings of runs without it (and their checkpoints) read as before.
  if (o.dqn.quantization_aware) j["quantization_aware"] = true;
  if (o.belief_particles > 0) j["belief_particles"] = o.belief_particles;
  if (o.belief_top_k > 0) j["belief_top_k"] = o.belief_top_k;
  return j;
}

// Candidates a replay row must hold for the next state: every allowed meal of a slot, or
// the belief's top K when only those are ranked.
int candidate_slots(const DqnTrainOptions& o) { return o.belief_top_k > 0 ? o.belief_top_k : kMaxCandidates; }

// One pending step of an n-step window.
struct PendingStep {
  std::vector<float> observation;
  env::Action action = 0;
  std::vector<float> extras;  // the chosen candidate's (candidate head)
  double reward = 0;
};

agent::DqnLearner make_learner(CartPoleDqnEnv&, const DqnTrainOptions& o) {
  return agent::DqnLearner(o.dqn, CartPoleDqnEnv::input_size(), CartPoleDqnEnv::num_actions(), o.seed);
}

agent::DqnLearner make_learner(MealSimDqnEnv& e, const DqnTrainOptions& o) {
  agent::CandidateFeatures f;
  f.observation_size = env::kObservationSize;
  f.static_size = env::kMealStaticFeatures;
  const bool belief = e.belief_particles > 0;
  f.dynamic_size = env::kCandidateDynamicFeatures + (belief ? env::kBeliefCandidateFeatures : 0);
  f.extra_size = e.extra_size();
  f.num_items = static_cast<int>(e.catalog->size());
  f.static_features = e.catalog->meal_features().data();
  const env::Catalog* catalog = e.catalog.get();
  f.dynamic = [catalog, belief](std::span<const float> obs, int item, const float* extras, float* out) {
    env::write_candidate_dynamic(*catalog, obs, item, extras[0], out);
    if (belief) std::copy(extras + 1, extras + 1 + env::kBeliefCandidateFeatures, out + env::kCandidateDynamicFeatures);
  };
  return agent::DqnLearner(o.dqn, std::move(f), o.seed);
}

template <class Env>
DqnTrainResult run(Env& e, const DqnTrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  place_numa(o.numa);
  // One thread: deterministic sums, and a threaded OpenBLAS would allocate per call.
  nn::set_blas_threads(1);
  std::filesystem::create_directories(o.run_dir);
  agent::DqnLearner learner = make_learner(e, o);
  int candidate_extras = 1;
  if constexpr (Env::kCandidates) candidate_extras = e.extra_size();
  agent::ReplayBuffer replay({o.buffer_size, static_cast<int>(e.observation().size()),
                              Env::kCandidates ? candidate_slots(o) : 0, candidate_extras, o.prioritized});
  std::mt19937_64 rng(o.seed ^ 0xa5a5'a5a5'a5a5'a5a5ULL);
  std::vector<float> best_params(learner.online().parameters().begin(), learner.online().parameters().end());
  double best_score = -std::numeric_limits<double>::infinity();
  std::int64_t best_step = 0, step = 0, episodes = 0;
  std::vector<double> recent(100, 0.0);
  std::int64_t recent_count = 0;
  const std::string spec = e.spec();


  auto save_checkpoint = [&](const std::filesystem::path& path) {
    Checkpoint c;
    c.tensors.push_back(flat<float>("online.params", learner.online().parameters()));
    c.tensors.push_back(flat<float>("target.params", learner.target().parameters()));
    c.tensors.push_back(flat<float>("adam.m", learner.optimizer().first_moment()));
    c.tensors.push_back(flat<float>("adam.v", learner.optimizer().second_moment()));
    c.tensors.push_back(flat<float>("best.params", best_params));
    const auto n = static_cast<std::int64_t>(replay.capacity());
    const auto width = static_cast<std::int64_t>(replay.spec().observation_size);
    c.tensors.push_back(Tensor::from_span<float>("replay.observations", {n, width},
                                                 {replay.observations().data(), static_cast<std::size_t>(n * width)}));
    c.tensors.push_back(Tensor::from_span<float>("replay.next_observations", {n, width},
                                                 {replay.next_observations().data(), static_cast<std::size_t>(n * width)}));
    c.tensors.push_back(flat<std::int32_t>("replay.actions", replay.actions()));
    // "recency" names kept from before candidates had other extras (same layout with one).
    c.tensors.push_back(flat<float>("replay.action_recency", replay.action_extras()));
    c.tensors.push_back(flat<float>("replay.rewards", replay.rewards()));
    c.tensors.push_back(flat<float>("replay.discounts", replay.discounts()));
    if (Env::kCandidates) {
      const auto k = static_cast<std::int64_t>(replay.spec().max_candidates);
      c.tensors.push_back(Tensor::from_span<std::int16_t>(
          "replay.candidates", {n, k}, {replay.candidates().data(), static_cast<std::size_t>(n * k)}));
      const auto kx = k * static_cast<std::int64_t>(replay.spec().candidate_extras);
      c.tensors.push_back(Tensor::from_span<float>(
          "replay.candidate_recency", {n, kx}, {replay.candidate_extras().data(), static_cast<std::size_t>(n * kx)}));
      c.tensors.push_back(flat<std::int16_t>("replay.candidate_counts", replay.candidate_counts()));
    }
    if (o.prioritized) c.tensors.push_back(flat<double>("replay.priority_tree", replay.priority_tree()));
    if (o.dqn.quantization_aware) c.tensors.push_back(flat<float>("latent.params", learner.latent()));
    const auto rs = replay.state();
    c.metadata = {{"format", kFormat},
                  {"env", o.env},
                  {"env_spec", spec},
                  {"layer_sizes", layer_sizes_json(learner.online().layer_sizes())},
                  {"config", options_json(o).dump()},
                  {"step", std::to_string(step)},
                  {"episodes", std::to_string(episodes)},
                  {"updates", std::to_string(learner.updates())},
                  {"adam_steps", std::to_string(learner.optimizer().steps())},
                  {"rng_state", generator_state(rng)},
                  {"env_rng_state", generator_state(e.generator())},
                  {"replay_state", nlohmann::json{{"size", rs.size}, {"next", rs.next}, {"max_priority", rs.max_priority}}.dump()},
                  {"best", nlohmann::json{{"score", best_score}, {"step", best_step}}.dump()},
                  {"recent_returns", nlohmann::json{{"count", recent_count}, {"values", recent}}.dump()},
                  {"git_revision", o.git_revision}};
    if (o.belief_particles > 0) c.metadata["belief_particles"] = std::to_string(o.belief_particles);
    if (o.belief_top_k > 0) c.metadata["belief_top_k"] = std::to_string(o.belief_top_k);
    save_safetensors(path, c);
  };

  if (o.resume_from) {
    const auto c = load_safetensors(*o.resume_from);
    const std::string where = o.resume_from->string();
    check_resumable(c, where, kFormat, o.env, spec, "DQN training");
    if (c.metadata_at("config", where) != options_json(o).dump()) {
      throw CheckpointError(where, "was trained with other settings: " + c.metadata_at("config", where));
    }
    auto restore = [&](const std::string& name, auto dst) {
      using T = typename decltype(dst)::value_type;
      const auto values = c.at(name).template as<std::remove_const_t<T>>();
      if (values.size() != dst.size()) {
        throw CheckpointError(where, "tensor \"" + name + "\" has " + std::to_string(values.size()) + " values, expected " +
                                         std::to_string(dst.size()));
      }
      std::copy(values.begin(), values.end(), dst.begin());
    };
    restore("online.params", learner.online().parameters());
    if (o.dqn.quantization_aware) restore("latent.params", learner.latent());
    restore("target.params", learner.target().parameters());
    restore("adam.m", learner.optimizer().first_moment());
    restore("adam.v", learner.optimizer().second_moment());
    restore("best.params", std::span<float>(best_params));
    restore("replay.observations", std::span<float>(replay.observations().data(), static_cast<std::size_t>(replay.observations().size())));
    restore("replay.next_observations",
            std::span<float>(replay.next_observations().data(), static_cast<std::size_t>(replay.next_observations().size())));
    restore("replay.actions", std::span<std::int32_t>(replay.actions()));
    restore("replay.action_recency", std::span<float>(replay.action_extras()));
    restore("replay.rewards", std::span<float>(replay.rewards()));
    restore("replay.discounts", std::span<float>(replay.discounts()));
    if (Env::kCandidates) {
      restore("replay.candidates",
              std::span<std::int16_t>(replay.candidates().data(), static_cast<std::size_t>(replay.candidates().size())));
      restore("replay.candidate_recency", std::span<float>(replay.candidate_extras().data(),
                                                           static_cast<std::size_t>(replay.candidate_extras().size())));
      restore("replay.candidate_counts", std::span<std::int16_t>(replay.candidate_counts()));
    }
    if (o.prioritized) restore("replay.priority_tree", std::span<double>(replay.priority_tree()));
    try {
      const auto rs = nlohmann::json::parse(c.metadata_at("replay_state", where));
      replay.restore_state({rs.at("size").get<std::size_t>(), rs.at("next").get<std::size_t>(), rs.at("max_priority").get<double>()});
      try {
        replay.check_contents(learner.action_bound());
      } catch (const std::invalid_argument& ex) {
        throw CheckpointError(where, ex.what());
      }
      const auto best = nlohmann::json::parse(c.metadata_at("best", where));
      best_score = best.at("score").is_number() ? best.at("score").get<double>() : -std::numeric_limits<double>::infinity();
      best_step = best.at("step").get<std::int64_t>();
      const auto window = nlohmann::json::parse(c.metadata_at("recent_returns", where));
      recent_count = window.at("count").get<std::int64_t>();
      recent = window.at("values").get<std::vector<double>>();
      recent.resize(100, 0.0);
    } catch (const nlohmann::json::exception& ex) {
      throw CheckpointError(where, std::string("metadata is not valid: ") + ex.what());
    }
    step = std::stoll(c.metadata_at("step", where));
    episodes = std::stoll(c.metadata_at("episodes", where));
    learner.set_updates(std::stoll(c.metadata_at("updates", where)));
    learner.optimizer().set_steps(std::stoll(c.metadata_at("adam_steps", where)));
    restore_generator(c, "rng_state", where, rng);
    restore_generator(c, "env_rng_state", where, e.generator());
    spdlog::info("resuming dqn on {} from step {} ({})", o.env, step, where);
  }

  const auto metrics_path = o.run_dir / "metrics.jsonl";
  {
    // Keep only records up to the checkpoint's step, so a resumed log reads as one run.
    std::vector<std::string> kept;
    if (o.resume_from) {
      std::ifstream in(metrics_path);
      std::string line;
      while (std::getline(in, line)) {
        try {
          if (nlohmann::json::parse(line).at("step").get<std::int64_t>() <= step) kept.push_back(line);
        } catch (const nlohmann::json::exception&) {
        }
      }
    }
    std::ofstream out(metrics_path, std::ios::trunc);
    for (const auto& l : kept) out << l << "\n";
  }
  std::ofstream metrics(metrics_path, std::ios::app);

  // A separate environment for evaluation, so evaluating never disturbs training's stream.
  std::unique_ptr<Env> eval_env;
  if constexpr (Env::kCandidates) {
    eval_env = std::make_unique<Env>(o.data_dir, o.mealsim, o.belief_particles, o.belief_top_k, 0, false);
  } else {
    eval_env = std::make_unique<Env>();
  }

  ProgressReporter progress(stderr, "steps");
  const double gamma = o.dqn.gamma;
  const int n_step = o.dqn.n_step;
  std::deque<PendingStep> window;
  std::vector<float> scores;
  double loss = 0, last_eval = std::numeric_limits<double>::quiet_NaN(), epsilon = o.epsilon_start;
  bool interrupted = false;
  std::int64_t next_checkpoint = (step / o.checkpoint_every + 1) * o.checkpoint_every;
  const auto exploration_steps = std::max<std::int64_t>(1, static_cast<std::int64_t>(o.exploration_fraction * static_cast<double>(o.total_steps)));
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  auto emit = [&](bool terminated, std::size_t count) {
    // Emits the oldest `count` pending steps as transitions ending at the current state.
    for (std::size_t k = 0; k < count; ++k) {
      double ret = 0, discount = 1;
      for (const auto& p : window) {
        ret += discount * p.reward;
        discount *= gamma;
      }
      const auto& head = window.front();
      if constexpr (Env::kCandidates) {
        if (!terminated) e.refresh_candidates();
        replay.add(head.observation, head.action, head.extras, static_cast<float>(ret),
                   terminated ? 0.0F : static_cast<float>(discount), e.observation(),
                   terminated ? std::span<const std::int16_t>{} : std::span<const std::int16_t>(e.allowed),
                   terminated ? std::span<const float>{} : std::span<const float>(e.extras));
      } else {
        replay.add(head.observation, head.action, {}, static_cast<float>(ret), terminated ? 0.0F : static_cast<float>(discount),
                   e.observation());
      }
      window.pop_front();
    }
  };

  bool first_reset = !o.resume_from;
  bool solved = false;
  while (step < o.total_steps && !solved) {
    if (o.stop != nullptr && o.stop->load(std::memory_order_relaxed)) {
      interrupted = true;
      break;
    }
    // One episode.
    if (first_reset) {
      e.reset(o.seed);
      first_reset = false;
    } else {
      e.reset();
    }
    double episode_return = 0;
    for (;;) {
      epsilon = epsilon_linear(o.epsilon_start, o.epsilon_end, step, exploration_steps);
      env::Action action = 0;
      std::vector<float> extras;
      if constexpr (Env::kCandidates) {
        e.refresh_candidates();
        std::size_t pick = 0;
        if (unit(rng) < epsilon) {
          pick = std::uniform_int_distribution<std::size_t>(0, e.allowed.size() - 1)(rng);
        } else {
          scores.resize(e.allowed.size());
          learner.score_candidates(e.observation(), e.allowed, e.extras, scores);
          pick = static_cast<std::size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
        }
        action = e.allowed[pick];
        const auto width = static_cast<std::size_t>(e.extra_size());
        extras.assign(e.extras.begin() + static_cast<std::ptrdiff_t>(pick * width),
                      e.extras.begin() + static_cast<std::ptrdiff_t>((pick + 1) * width));
      } else {
        action = unit(rng) < epsilon ? std::uniform_int_distribution<env::Action>(0, Env::num_actions() - 1)(rng)
                                     : learner.greedy_action(e.observation());
      }
      const auto obs = e.observation();
      window.push_back({std::vector<float>(obs.begin(), obs.end()), action, std::move(extras), 0.0});
      const auto r = e.step(action);
      window.back().reward = r.reward;
      episode_return += r.reward;
      ++step;
      if (r.terminated || r.truncated) {
        emit(r.terminated, window.size());
      } else if (window.size() == static_cast<std::size_t>(n_step)) {
        emit(false, 1);
      }
      if (step > o.learning_starts && step % o.train_frequency == 0) {
        for (int g = 0; g < o.gradient_steps; ++g) loss = learner.update(replay, rng);
      }
      if (o.eval_every > 0 && step % o.eval_every == 0) {
        last_eval = evaluate_network(*eval_env, learner.online(), o.eval_episodes_during, kEvalSeedSalt ^ 0x1ULL).mean_return;
        if (last_eval > best_score) {
          best_score = last_eval;
          best_step = step;
          std::copy(learner.online().parameters().begin(), learner.online().parameters().end(), best_params.begin());
        }
        if (last_eval >= o.stop_at_eval_return) solved = true;
      }
      if (step % o.log_every == 0) {
        double mean = 0;
        const auto n = std::min<std::int64_t>(recent_count, 100);
        for (std::int64_t i = 0; i < n; ++i) mean += recent[static_cast<std::size_t>(i)];
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json record = {{"step", step},       {"episode", episodes},
                                 {"epsilon", epsilon}, {"loss", loss},
                                 {"mean_return_100", n > 0 ? mean / static_cast<double>(n) : 0.0},
                                 {"updates", learner.updates()},
                                 {"wall_s", wall}};
        if (!std::isnan(last_eval)) record["eval_return"] = last_eval;
        metrics << record.dump() << "\n";
        metrics.flush();  // readable while the run goes on (tail -f metrics.jsonl)
        if (o.show_progress) {
          progress.update({step, o.total_steps, wall > 0 ? static_cast<double>(step) / wall : 0.0,
                           n > 0 ? mean / static_cast<double>(n) : 0.0, epsilon});
        }
      }
      if (r.terminated || r.truncated || step >= o.total_steps || solved) break;
    }
    window.clear();  // an episode cut by total_steps leaves no partial window behind
    recent[static_cast<std::size_t>(recent_count++ % 100)] = episode_return;
    ++episodes;
    if (step >= next_checkpoint) {
      metrics.flush();
      save_checkpoint(o.run_dir / "latest.safetensors");
      next_checkpoint = (step / o.checkpoint_every + 1) * o.checkpoint_every;
    }
  }
  metrics.flush();

  // Without any evaluation, the last network is the one we keep.
  if (best_score == -std::numeric_limits<double>::infinity()) {
    std::copy(learner.online().parameters().begin(), learner.online().parameters().end(), best_params.begin());
    best_step = step;
  }
  DqnTrainResult result;
  result.steps_done = step;
  result.episodes = episodes;
  result.interrupted = interrupted;
  result.checkpoint = o.run_dir / "final.safetensors";
  save_checkpoint(result.checkpoint);
  result.best_step = best_step;
  result.best_during_eval = best_score;

  nn::Mlp<float> best = learner.online();
  std::copy(best_params.begin(), best_params.end(), best.parameters().begin());
  Checkpoint model;
  add_layer_tensors(model, best);
  model.metadata = {{"format", kModelFormat},
                    {"env", o.env},
                    {"env_spec", spec},
                    {"layer_sizes", layer_sizes_json(best.layer_sizes())},
                    {"config", options_json(o).dump()},
                    {"step", std::to_string(best_step)},
                    {"git_revision", o.git_revision}};
  if (o.belief_particles > 0) model.metadata["belief_particles"] = std::to_string(o.belief_particles);
  if (o.belief_top_k > 0) model.metadata["belief_top_k"] = std::to_string(o.belief_top_k);
  result.model = o.run_dir / "model.safetensors";
  save_safetensors(result.model, model);
  if (!interrupted && o.eval_episodes > 0) result.greedy_eval = evaluate_network(*eval_env, best, o.eval_episodes, kEvalSeedSalt);
  if (o.show_progress) progress.finish({step, o.total_steps, 0.0, 0.0, epsilon});
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ofstream(o.run_dir / "summary.json")
      << nlohmann::json{{"env", o.env},
                        {"agent", "dqn"},
                        {"seed", o.seed},
                        {"steps_done", step},
                        {"episodes", episodes},
                        {"interrupted", interrupted},
                        {"wall_s", result.wall_s},
                        {"best_step", best_step},
                        {"solved_early", solved},
                        {"best_during_eval", std::isfinite(best_score) ? best_score : 0.0},
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
    o.total_steps = 300'000;
    o.dqn.hidden = {128, 64};
    // Served policies: the int8 path must make the float network's decisions (issue 5;
    // docs/agents.md, "Serving").
    o.dqn.quantization_aware = true;
    o.dqn.learning_rate = 5e-4;
    o.dqn.gamma = 0.9;
    o.dqn.n_step = 3;
    o.dqn.batch_size = 32;
    o.dqn.target_update_every = 500;
    o.buffer_size = 50'000;
    o.learning_starts = 2'000;
    o.train_frequency = 4;
    o.exploration_fraction = 0.3;
    o.eval_every = 25'000;
    o.eval_episodes_during = 200;
    o.eval_episodes = 1'000;
  } else {
    throw std::invalid_argument("--env: \"" + env + "\" is not one of cartpole, mealsim (dqn)");
  }
  return o;
}

DqnTrainResult train_dqn(const DqnTrainOptions& options) {
  validate(options);
  if (options.env == "cartpole") {
    CartPoleDqnEnv e;
    return run(e, options);
  }
  MealSimDqnEnv e(options.data_dir, options.mealsim, options.belief_particles, options.belief_top_k,
                  options.seed ^ 0xb0b0'be11'efULL, true);
  return run(e, options);
}

EvalSummary evaluate_cartpole(const nn::Mlp<float>& network, int episodes) {
  CartPoleDqnEnv e;
  return evaluate_network(e, network, episodes, kEvalSeedSalt);
}

}  // namespace forkcast::training
