// End-to-end DQN training on CartPole-v1, single thread, environment included, with
// CleanRL dqn.py's defaults (4-120-84-2, batch 128, replay 10 000, train every 10 steps,
// target copy every 500 steps, learning from step 10 000, epsilon over half the run) — the
// settings bench/peers/cleanrl_dqn_cartpole.py runs, so steps/s compare like for like.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <limits>

#include "forkcast/training/dqn_training.hpp"

namespace {

void BM_CartPoleDqnTrainCleanRL(benchmark::State& state) {
  auto o = forkcast::training::default_dqn_options("cartpole");
  o.total_steps = state.range(0);
  o.dqn.hidden = {120, 84};
  o.dqn.learning_rate = 2.5e-4;
  o.dqn.batch_size = 128;
  o.dqn.double_dqn = false;
  o.dqn.target_update_every = 50;  // 500 steps / train every 10
  o.buffer_size = 10'000;
  o.learning_starts = 10'000;
  o.train_frequency = 10;
  o.gradient_steps = 1;
  o.exploration_fraction = 0.5;
  o.epsilon_end = 0.05;
  o.eval_every = 0;
  o.eval_episodes = 0;
  o.stop_at_eval_return = std::numeric_limits<double>::quiet_NaN();
  o.checkpoint_every = o.total_steps * 2;
  o.show_progress = false;
  o.numa = "off";
  o.run_dir = std::filesystem::temp_directory_path() / "forkcast_bench_dqn";
  std::int64_t steps = 0;
  for (auto _ : state) {
    steps += forkcast::training::train_dqn(o).steps_done;
    ++o.seed;
  }
  state.SetItemsProcessed(steps);
}
BENCHMARK(BM_CartPoleDqnTrainCleanRL)->Arg(50'000)->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
