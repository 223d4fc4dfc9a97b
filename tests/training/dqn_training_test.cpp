// Learning acceptance of the DQN (issue: CartPole, MealSim), determinism, exact resume,
// int8 serving agreement and model-file rejection. Fixed seeds; thresholds from the issue.
#include "forkcast/training/dqn_training.hpp"
#include "forkcast/env/belief_policy.hpp"
#include "forkcast/policy/greedy_policies.hpp"
#include "forkcast/policy/model_files.hpp"
#include "forkcast/training/tabular_training.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "forkcast/agent/nn.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/evaluation/policy_loader.hpp"
#include "forkcast/policy/snapshot.hpp"

namespace fp = forkcast::policy;
namespace fev = forkcast::evaluation;
namespace ft = forkcast::training;
namespace fe = forkcast::env;
namespace nn = forkcast::agent::nn;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("forkcast_dqn_" + name);
  fs::remove_all(dir);
  return dir;
}

ft::DqnTrainOptions quiet(ft::DqnTrainOptions o, const std::string& name) {
  o.run_dir = fresh_dir(name);
  o.show_progress = false;
  o.data_dir = FORKCAST_SOURCE_DIR "/data";
  return o;
}

// The message of the exception E that training with `o` must throw, or "(trained)".
template <class E>
std::string training_error(const ft::DqnTrainOptions& o) {
  try {
    ft::train_dqn(o);
  } catch (const E& e) {
    return e.what();
  }
  return "(trained)";
}

std::vector<float> params_of(const fs::path& model) {
  const auto m = fp::load_dqn_model(model);
  return {m.network->parameters().begin(), m.network->parameters().end()};
}

struct Stat {
  double mean = 0, half = 0;
};

Stat evaluate(fe::MealSim& sim, fe::MealPolicy& policy, int users) {
  std::mt19937_64 rng(5);
  double sum = 0, sq = 0;
  for (int u = 0; u < users; ++u) {
    const double r = fe::run_episode(sim, policy, 5'000'000ULL + static_cast<std::uint64_t>(u), rng).total_reward;
    sum += r;
    sq += r * r;
  }
  const double mean = sum / users;
  return {mean, 1.96 * std::sqrt((sq / users - mean * mean) / users)};
}

}  // namespace

TEST(DqnCartPole, ReachesFourSeventyFiveOnFourOfFiveSeedsWithin150kSteps) {
  int solved = 0;
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    auto o = quiet(ft::default_dqn_options("cartpole"), "cartpole" + std::to_string(seed));
    o.seed = seed;
    const auto r = ft::train_dqn(o);
    std::printf("cartpole seed %llu: greedy mean return %.1f (std %.1f) over %d episodes, best network at step %lld, "
                "%lld steps run, %.1f s\n",
                static_cast<unsigned long long>(seed), r.greedy_eval.mean_return, r.greedy_eval.std_return,
                r.greedy_eval.episodes, static_cast<long long>(r.best_step), static_cast<long long>(r.steps_done), r.wall_s);
    EXPECT_LE(r.steps_done, 150'000);
    if (r.greedy_eval.mean_return >= 475.0) ++solved;
  }
  EXPECT_GE(solved, 4);
}

TEST(DqnDeterminism, SameSeedSameNetwork) {
  auto o = quiet(ft::default_dqn_options("cartpole"), "det_a");
  o.total_steps = 4'000;
  o.eval_every = 0;
  o.eval_episodes = 0;
  ft::train_dqn(o);
  auto p = quiet(o, "det_b");
  ft::train_dqn(p);
  EXPECT_EQ(params_of(o.run_dir / "model.safetensors"), params_of(p.run_dir / "model.safetensors"));
  auto q = quiet(o, "det_c");
  q.seed = 1;
  ft::train_dqn(q);
  EXPECT_NE(params_of(o.run_dir / "model.safetensors"), params_of(q.run_dir / "model.safetensors"));
}

TEST(DqnResume, ResumingFromACheckpointIsBitExact) {
  // Plain, prioritized replay, and quantization-aware (its latent weights are checkpointed).
  for (const int variant : {0, 1, 2}) {
    const bool per = variant == 1;
    const std::string name = variant == 0 ? "resume" : variant == 1 ? "resume_per" : "resume_qat";
    auto full = quiet(ft::default_dqn_options("cartpole"), name + "_full");
    full.dqn.quantization_aware = variant == 2;
    full.total_steps = 5'000;
    full.eval_every = 2'000;
    full.eval_episodes = 0;
    full.checkpoint_every = 3'000;  // latest.safetensors: the first episode end after step 3000
    full.prioritized = per;
    ft::train_dqn(full);
    auto resumed = quiet(full, name + "_part");
    fs::create_directories(resumed.run_dir);
    resumed.resume_from = resumed.run_dir / "from.safetensors";
    fs::copy_file(full.run_dir / "latest.safetensors", *resumed.resume_from);
    ft::train_dqn(resumed);
    const auto a = fp::load_safetensors(full.run_dir / "final.safetensors");
    const auto b = fp::load_safetensors(resumed.run_dir / "final.safetensors");
    EXPECT_EQ(a.at("online.params").as<float>(), b.at("online.params").as<float>()) << name;
    EXPECT_EQ(a.at("adam.v").as<float>(), b.at("adam.v").as<float>()) << name;
    EXPECT_EQ(a.at("best.params").as<float>(), b.at("best.params").as<float>()) << name;
    if (variant == 2) {
      EXPECT_EQ(a.at("latent.params").as<float>(), b.at("latent.params").as<float>());
    }
    EXPECT_EQ(a.metadata.at("step"), b.metadata.at("step"));
  }
}

TEST(DqnModelFile, CorruptOrForeignFilesAreRefusedByName) {
  auto o = quiet(ft::default_dqn_options("cartpole"), "corrupt");
  o.total_steps = 1'500;
  o.eval_every = 0;
  o.eval_episodes = 0;
  const auto r = ft::train_dqn(o);
  std::string bytes;
  {
    std::ifstream in(r.model, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto cut = o.run_dir / "cut.safetensors";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  try {
    fp::load_dqn_model(cut);
    FAIL() << "a truncated model loaded";
  } catch (const fp::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
  }
  auto other = o;
  other.run_dir = fresh_dir("corrupt_resume");
  other.env = "mealsim";
  other.resume_from = r.checkpoint;
  EXPECT_THROW(ft::train_dqn(other), fp::CheckpointError);

  // Review, 2026-12-01: the replay's stored indices were trusted on resume, and training
  // then read and wrote out of bounds. A checkpoint whose first stored action is 7 (CartPole
  // has 2) is refused by name.
  auto crafted = fp::load_safetensors(r.checkpoint);
  for (auto& t : crafted.tensors) {
    if (t.name != "replay.actions") continue;
    auto actions = t.as<std::int32_t>();
    actions[0] = 7;
    t = fp::Tensor::from_span<std::int32_t>(t.name, t.shape, actions);
  }
  const auto crafted_path = o.run_dir / "crafted.safetensors";
  fp::save_safetensors(crafted_path, crafted);
  auto resume = o;
  resume.run_dir = fresh_dir("crafted_resume");
  resume.resume_from = crafted_path;
  const auto refused = training_error<fp::CheckpointError>(resume);
  EXPECT_NE(refused.find("action 7 is outside 0..1"), std::string::npos) << refused;
}

// Review, 2026-12-01: the network was allocated from the file's metadata before any tensor
// was read, so a few hundred bytes declaring a 100 000 000-wide layer asked for ~37 GB.
TEST(DqnModelFile, LayerSizesMustBePlausibleAndBackedByTheFile) {
  const auto dir = fresh_dir("huge_metadata");
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& layer_sizes) {
    fp::Checkpoint c;
    c.metadata = {{"format", "forkcast.dqn-model.v1"}, {"layer_sizes", layer_sizes}, {"env", "cartpole"},
                  {"env_spec", "CartPole-v1"}};
    const std::vector<float> few(6, 0.0F);
    c.tensors.push_back(fp::Tensor::from_span<float>("0.weight", {2, 3}, few));
    const auto path = dir / name;
    fp::save_safetensors(path, c);
    return path;
  };
  for (const auto& [name, sizes, expected] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"wide.safetensors", "[4, 100000000, 2]", "outside 1..65536"},
           {"negative.safetensors", "[4, -3, 2]", "outside 1..65536"},
           {"unbacked.safetensors", "[4, 4096, 2]", "parameters but the file holds 6 floats"}}) {
    try {
      fp::load_dqn_model(write(name, sizes));
      FAIL() << name << " loaded";
    } catch (const fp::CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << name << ": " << e.what();
    }
  }
}

// One MealSim run serves three checks: learning (the DQN beats the tabular agent), zero
// unsafe suggestions and int8 agreement, so the suite trains it once. It also prints the
// myopic oracle's return: the issue asks the DQN to beat it, which it does not yet
// (docs/agents.md), so that comparison is reported, not asserted.
TEST(DqnMealSim, BeatsTabularSafelyAndQuantizesFaithfully) {
  auto o = quiet(ft::default_dqn_options("mealsim"), "mealsim");
  o.seed = 3;
  o.total_steps = 150'000;  // the suite's budget; the documented run uses 300 000
  const auto r = ft::train_dqn(o);
  const auto model = fp::load_dqn_model(r.model);
  const auto catalog = fe::Catalog::load(o.data_dir);
  const auto population = fe::Population::load(o.data_dir / "population.yaml");
  fe::MealSim sim(catalog, population);

  // Tabular agent with its documented settings (docs/agents.md).
  ft::TabularTrainOptions t;
  t.env = "mealsim";
  t.episodes = 200'000;
  t.seed = 11;
  t.max_steps = 0;
  t.learning_rate = 0.02;
  t.gamma = 0.8;
  t.epsilon_decay = 0.00003;
  t.checkpoint_every = 200'000;
  t.eval_episodes = 0;
  t.data_dir = o.data_dir;
  t.run_dir = fresh_dir("mealsim_tabular");
  t.show_progress = false;
  const auto q = fp::load_tabular_checkpoint(ft::train_tabular(t).checkpoint);

  fp::DqnMealPolicy dqn(*model.network, catalog);
  fp::TabularMealPolicy tabular(q);
  fe::MyopicOraclePolicy oracle;
  const auto d = evaluate(sim, dqn, 1000), tb = evaluate(sim, tabular, 1000), m = evaluate(sim, oracle, 1000);
  std::printf("mealsim weekly return over 1000 users: dqn %.2f +- %.2f, tabular %.2f +- %.2f, myopic oracle %.2f +- %.2f "
              "(dqn trained %lld steps in %.0f s)\n",
              d.mean, d.half, tb.mean, tb.half, m.mean, m.half, static_cast<long long>(r.steps_done), r.wall_s);
  EXPECT_GT(d.mean - d.half, tb.mean + tb.half);

  // Zero unsafe suggestions: every action the DQN picks over 1000 weeks is in the mask
  // and respects the user's allergens and diet.
  std::mt19937_64 rng(1);
  int unsafe = 0, served = 0;
  for (int u = 0; u < 1000; ++u) {
    sim.reset(7'000'000ULL + static_cast<std::uint64_t>(u));
    while (!sim.done()) {
      const auto a = dqn.act(sim, rng);
      const auto& meal = catalog.meals()[static_cast<std::size_t>(a)];
      if (!sim.action_mask()[static_cast<std::size_t>(a)] || !sim.user().profile.allows(meal)) ++unsafe;
      ++served;
      sim.step(a);
    }
  }
  EXPECT_EQ(unsafe, 0) << "of " << served;

  // int8 weights: top-1 agreement with float32 over 10 000 states (issue: >= 99 %). MealSim
  // trains quantization-aware by default, so the float network's weights lie on the int8
  // grid; post-training quantization of a plain float network reached only ~94 %
  // (docs/agents.md: near-ties between similar meals flip).
  ASSERT_TRUE(o.dqn.quantization_aware);
  const nn::QuantizedMlp int8(*model.network);
  nn::Workspace<float> ws_f, ws_q;
  nn::Matrix<float> rows, yf, yq;
  int states = 0, agree = 0;
  for (std::uint64_t u = 0; states < 10'000; ++u) {
    sim.reset(9'000'000ULL + u);
    while (!sim.done() && states < 10'000) {
      std::vector<int> allowed;
      for (std::size_t m2 = 0; m2 < sim.action_mask().size(); ++m2) {
        if (sim.action_mask()[m2]) allowed.push_back(static_cast<int>(m2));
      }
      rows.resize(static_cast<Eigen::Index>(allowed.size()), fe::kCandidateInputSize);
      for (std::size_t c = 0; c < allowed.size(); ++c) {
        fe::write_candidate_input(catalog, sim.observation(), allowed[c], static_cast<float>(sim.meal_recency(allowed[c])),
                                  rows.row(static_cast<Eigen::Index>(c)).data());
      }
      model.network->predict(rows, yf, ws_f);
      int8.predict(rows, yq, ws_q);
      Eigen::Index bf = 0, bq = 0;
      yf.col(0).maxCoeff(&bf);
      yq.col(0).maxCoeff(&bq);
      agree += bf == bq ? 1 : 0;
      ++states;
      sim.step(allowed[static_cast<std::size_t>(bf)]);
    }
  }
  std::printf("int8 top-1 agreement: %d of %d states (%.2f %%)\n", agree, states, 100.0 * agree / states);
  EXPECT_GE(agree, 9'900);
}

// A DQN trained on a belief over the user (--belief-particles): its rows carry the
// belief's values, the model says so, evaluation rebuilds the belief, the service refuses
// it by name, it is deterministic, and resuming such a run is refused (not checkpointed).
TEST(DqnBelief, TrainsEvaluatesDeterministicallyAndIsRefusedByTheService) {
  auto o = quiet(ft::default_dqn_options("mealsim"), "belief_a");
  o.total_steps = 3'000;
  o.learning_starts = 500;
  o.eval_every = 0;
  o.eval_episodes = 0;
  o.belief_particles = 8;
  o.belief_top_k = 3;
  ft::train_dqn(o);
  const auto model_path = o.run_dir / "model.safetensors";
  const auto model = fp::load_dqn_model(model_path);
  EXPECT_EQ(model.network->input_size(), fe::kCandidateInputSize + fe::kBeliefCandidateFeatures);
  EXPECT_EQ(fp::dqn_belief_particles(model, model_path), 8);

  auto same = quiet(o, "belief_b");
  ft::train_dqn(same);
  EXPECT_EQ(params_of(model_path), params_of(same.run_dir / "model.safetensors"));

  const auto catalog = fe::Catalog::load(o.data_dir);
  const auto population = fe::Population::load(o.data_dir / "population.yaml");
  fev::PolicyLoadContext context;
  context.catalog = &catalog;
  context.population = &population;
  auto loaded = fev::load_meal_policy(model_path.string(), context);
  EXPECT_NE(loaded.description.find("belief of 8 particles"), std::string::npos) << loaded.description;
  EXPECT_NE(loaded.description.find("among its 3 best-planned meals"), std::string::npos) << loaded.description;
  EXPECT_FALSE(loaded.ope_target);
  EXPECT_FALSE(loaded.ope_unavailable.empty());
  fe::MealSim sim(catalog, population);
  std::mt19937_64 rng(3);
  for (std::uint64_t u = 0; u < 5; ++u) {
    sim.reset(8'000'000ULL + u);
    while (!sim.done()) {
      const auto a = loaded.policy->act(sim, rng);
      ASSERT_TRUE(sim.action_mask()[static_cast<std::size_t>(a)]);
      sim.step(a);
    }
  }

  try {
    fp::PolicySnapshot::load(model_path, catalog, "v-belief");
    FAIL() << "the service loaded a belief model";
  } catch (const fp::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("belief_particles 8"), std::string::npos) << e.what();
  }

  // A forged file's belief metadata is refused by name when the policy is loaded.
  const auto forged_path = o.run_dir / "forged.safetensors";
  const auto refusal = [&](fp::Checkpoint forged) -> std::string {
    fp::save_safetensors(forged_path, forged);
    try {
      fev::load_meal_policy(forged_path.string(), context);
    } catch (const fp::CheckpointError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  auto forged = fp::load_safetensors(model_path);
  forged.metadata["belief_top_k"] = "0";
  const auto zero = refusal(forged);
  EXPECT_NE(zero.find("\"belief_top_k\" is \"0\", expected 1..4096"), std::string::npos) << zero;
  forged.metadata["belief_top_k"] = "3";
  forged.metadata.erase("belief_particles");
  const auto orphan = refusal(forged);
  EXPECT_NE(orphan.find("needs \"belief_particles\""), std::string::npos) << orphan;

  auto resumed = quiet(o, "belief_c");
  resumed.resume_from = o.run_dir / "final.safetensors";
  const auto refused = training_error<std::invalid_argument>(resumed);
  EXPECT_NE(refused.find("--belief-particles"), std::string::npos) << refused;
}

// Ranking only the belief's best-planned meal leaves the network nothing to decide: the
// DQN policy then suggests what the belief planner on the same belief suggests.
TEST(DqnBelief, TopOneIsTheBeliefPlannersChoice) {
  const fs::path data = FORKCAST_SOURCE_DIR "/data";
  const auto catalog = fe::Catalog::load(data);
  const auto population = fe::Population::load(data / "population.yaml");
  nn::Mlp<float> network({fe::kCandidateInputSize + fe::kBeliefCandidateFeatures, 16, 1}, 7);
  fp::DqnMealPolicy dqn(network, catalog, &population, 8, 1);
  fe::BeliefOptions options;
  options.particles = 8;
  fe::BeliefPolicy planner(population, options);
  fe::MealSim a(catalog, population), b(catalog, population);
  int steps = 0, same = 0;
  for (std::uint64_t u = 0; u < 5; ++u) {
    std::mt19937_64 rng_a(u), rng_b(u);
    a.reset(6'000'000ULL + u);
    b.reset(6'000'000ULL + u);
    while (!a.done() && !b.done()) {
      const auto x = dqn.act(a, rng_a), y = planner.act(b, rng_b);
      same += x == y ? 1 : 0;
      ++steps;
      a.step(x);
      b.step(y);
    }
  }
  // Float rounding of the stored score may break a near-tie the other way now and then.
  EXPECT_GE(same, steps * 95 / 100) << same << " of " << steps;
}
