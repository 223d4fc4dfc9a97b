// Learning acceptance of the tabular agent (issue: Taxi, FrozenLake, MealSim), exact
// resume, interruption and checkpoint rejection. Fixed seeds; thresholds from the issue.
#include "forkcast/training/tabular_training.hpp"
#include "forkcast/policy/greedy_policies.hpp"
#include "forkcast/policy/model_files.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "forkcast/policy/checkpoint.hpp"

namespace fp = forkcast::policy;
namespace ft = forkcast::training;
namespace fe = forkcast::env;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("forkcast_train_" + name);
  fs::remove_all(dir);
  return dir;
}

ft::TabularTrainOptions taxi_course(std::uint64_t seed, const std::string& name) {
  // Hugging Face Deep RL course, unit 2: 25 000 episodes, lr 0.7, gamma 0.95, 99 steps,
  // epsilon 1.0 -> 0.05 with decay 0.005.
  ft::TabularTrainOptions o;
  o.env = "taxi";
  o.episodes = 25'000;
  o.seed = seed;
  o.max_steps = 99;
  o.learning_rate = 0.7;
  o.gamma = 0.95;
  o.epsilon_max = 1.0;
  o.epsilon_min = 0.05;
  o.epsilon_decay = 0.005;
  o.checkpoint_every = 5'000;
  o.eval_episodes = 100;
  o.run_dir = fresh_dir(name);
  o.show_progress = false;
  return o;
}

std::vector<double> table_of(const fs::path& checkpoint) {
  const auto q = fp::load_tabular_checkpoint(checkpoint);
  return {q.table().begin(), q.table().end()};
}

}  // namespace

TEST(TabularTaxi, CourseSettingsReachTheReferenceOnFiveSeeds) {
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    const auto r = ft::train_tabular(taxi_course(seed, "taxi" + std::to_string(seed)));
    std::printf("taxi seed %llu: greedy mean return %.2f (std %.2f) over %d episodes\n",
                static_cast<unsigned long long>(seed), r.greedy_eval.mean_return, r.greedy_eval.std_return,
                r.greedy_eval.episodes);
    EXPECT_GE(r.greedy_eval.mean_return, 7.5) << "seed " << seed;
    EXPECT_EQ(r.episodes_done, 25'000);
  }
}

TEST(TabularFrozenLake, NonSlipperySolvesPerfectly) {
  ft::TabularTrainOptions o;
  o.env = "frozenlake";
  o.episodes = 10'000;
  o.seed = 1;
  o.max_steps = 99;
  o.learning_rate = 0.7;
  o.gamma = 0.95;
  o.epsilon_decay = 0.0005;
  o.run_dir = fresh_dir("frozenlake");
  o.show_progress = false;
  const auto r = ft::train_tabular(o);
  EXPECT_DOUBLE_EQ(r.greedy_eval.mean_return, 1.0);
}

TEST(TabularResume, ResumingFromACheckpointIsBitExact) {
  auto full = taxi_course(7, "resume_full");
  full.episodes = 3'000;
  ft::train_tabular(full);
  const auto expected = table_of(full.run_dir / "final.safetensors");

  // A run of the same settings stopped after 1000 episodes, then resumed to 3000.
  auto first = taxi_course(7, "resume_part");
  first.episodes = 1'000;
  const auto part = ft::train_tabular(first);
  auto second = first;
  second.episodes = 3'000;
  second.resume_from = first.run_dir / "at1000.safetensors";
  fs::copy_file(part.checkpoint, *second.resume_from);
  const auto r = ft::train_tabular(second);
  EXPECT_EQ(r.episodes_done, 3'000);
  EXPECT_EQ(table_of(second.run_dir / "final.safetensors"), expected);
}

TEST(TabularResume, InterruptionLeavesAUsableCheckpoint) {
  auto o = taxi_course(3, "interrupt");
  o.episodes = 400'000;
  std::atomic<bool> stop{false};
  o.stop = &stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    stop = true;
  });
  const auto r = ft::train_tabular(o);
  stopper.join();
  ASSERT_TRUE(r.interrupted) << "400 000 episodes cannot finish in 30 ms";
  ASSERT_LT(r.episodes_done, o.episodes);
  // The checkpoint resumes to the same table as an uninterrupted run of that length.
  auto straight = taxi_course(3, "interrupt_straight");
  straight.episodes = r.episodes_done + 500;
  ft::train_tabular(straight);
  auto resumed = taxi_course(3, "interrupt_resumed");
  resumed.episodes = r.episodes_done + 500;
  resumed.resume_from = r.checkpoint;
  ft::train_tabular(resumed);
  EXPECT_EQ(table_of(resumed.run_dir / "final.safetensors"), table_of(straight.run_dir / "final.safetensors"));
  // The metrics log of the resumed run continues where the checkpoint left off.
  std::ifstream metrics(resumed.run_dir / "metrics.jsonl");
  EXPECT_TRUE(metrics.good());
}

TEST(TabularCheckpoint, CorruptOrForeignCheckpointsAreRejectedWithTheirName) {
  auto o = taxi_course(0, "corrupt");
  o.episodes = 200;
  const auto r = ft::train_tabular(o);
  std::string bytes;
  {
    std::ifstream in(r.checkpoint, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto truncated = o.run_dir / "truncated.safetensors";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  try {
    fp::load_tabular_checkpoint(truncated);
    FAIL() << "truncated checkpoint accepted";
  } catch (const fp::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated.safetensors"), std::string::npos) << e.what();
  }
  auto other = o;
  other.env = "frozenlake";
  other.run_dir = fresh_dir("corrupt_other");
  other.resume_from = r.checkpoint;
  try {
    ft::train_tabular(other);
    FAIL() << "a Taxi checkpoint resumed a FrozenLake run";
  } catch (const fp::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("trained on env \"taxi\""), std::string::npos) << e.what();
  }
  auto reseeded = o;
  reseeded.seed = 99;
  reseeded.run_dir = fresh_dir("corrupt_seed");
  reseeded.resume_from = r.checkpoint;
  EXPECT_THROW(ft::train_tabular(reseeded), fp::CheckpointError);
}

TEST(TabularExport, QTableCsvHasNamedStatesAndActions) {
  auto o = taxi_course(0, "export");
  o.episodes = 300;
  o.export_q_csv = o.run_dir / "q.csv";
  ft::train_tabular(o);
  std::ifstream in(*o.export_q_csv);
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  EXPECT_EQ(header.substr(0, 6), "state,");
  EXPECT_NE(header.find("pickup"), std::string::npos) << header;
  EXPECT_NE(row.find("taxi("), std::string::npos) << row;
  int rows = 1;
  while (std::getline(in, row)) ++rows;
  EXPECT_EQ(rows, 500);
}

TEST(TabularMealSim, BeatsRandomAndPopularityWithSeparatedIntervals) {
  ft::TabularTrainOptions o;
  o.env = "mealsim";
  // docs/agents.md: a small learning rate averages the noisy weekly returns, gamma 0.8
  // still reaches the end-of-day nutrition reward, epsilon decays over ~100 000 weeks.
  o.episodes = 200'000;
  o.seed = 11;
  o.max_steps = 0;
  o.learning_rate = 0.02;
  o.gamma = 0.8;
  o.epsilon_decay = 0.00003;
  o.checkpoint_every = 200'000;
  o.eval_episodes = 0;
  o.data_dir = FORKCAST_SOURCE_DIR "/data";
  o.run_dir = fresh_dir("mealsim");
  o.show_progress = false;
  const auto r = ft::train_tabular(o);
  const auto q = fp::load_tabular_checkpoint(r.checkpoint);

  const auto catalog = fe::Catalog::load(o.data_dir);
  const auto population = fe::Population::load(o.data_dir / "population.yaml");
  fe::MealSim sim(catalog, population);
  fe::RandomPolicy random;
  fe::PopularityPolicy popularity(fe::estimate_popularity(catalog, population, {}, 2000, 77));
  fe::MyopicOraclePolicy oracle;
  fp::TabularMealPolicy tabular(q);
  struct Stat {
    double mean = 0, half = 0;
  };
  auto evaluate = [&](fe::MealPolicy& p) {
    std::mt19937_64 rng(5);
    const int users = 1000;
    double sum = 0, sq = 0;
    for (int u = 0; u < users; ++u) {
      const double ret = fe::run_episode(sim, p, 5'000'000ULL + static_cast<std::uint64_t>(u), rng).total_reward;
      sum += ret;
      sq += ret * ret;
    }
    const double mean = sum / users;
    return Stat{mean, 1.96 * std::sqrt((sq / users - mean * mean) / users)};
  };
  const auto t = evaluate(tabular), rnd = evaluate(random), pop = evaluate(popularity), orc = evaluate(oracle);
  std::printf("mealsim weekly return over 1000 users: tabular %.2f +- %.2f, random %.2f +- %.2f, "
              "popularity %.2f +- %.2f, myopic oracle %.2f +- %.2f\n",
              t.mean, t.half, rnd.mean, rnd.half, pop.mean, pop.half, orc.mean, orc.half);
  EXPECT_GT(t.mean - t.half, rnd.mean + rnd.half);
  EXPECT_GT(t.mean - t.half, pop.mean + pop.half);
}
