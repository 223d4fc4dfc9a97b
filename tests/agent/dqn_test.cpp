// Tests of agent/dqn.hpp: the TD target (double DQN against plain max, on hand-set linear
// networks whose targets are known in closed form), the loss update() reports, gradient
// steps lowering the TD loss of a fixed batch, the target network's hard copies and Polyak
// averaging, quantization-aware weights, and both heads' shapes and errors. Fixed seeds and
// explicit tolerances throughout.
#include "forkcast/agent/dqn.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace fa = forkcast::agent;
namespace nn = forkcast::agent::nn;

namespace {

std::vector<float> params_of(const nn::Mlp<float>& net) { return {net.parameters().begin(), net.parameters().end()}; }

double huber(double d, double delta) {
  const double a = std::abs(d);
  return a <= delta ? 0.5 * d * d : delta * (a - 0.5 * delta);
}

// A linear network (no hidden layer) whose outputs the test sets by hand, Huber wide enough to
// stay quadratic and no clipping: update()'s loss is then 0.5 (q - y)^2 with y known.
fa::DqnConfig hand_config(bool double_dqn) {
  fa::DqnConfig c;
  c.hidden = {};
  c.batch_size = 4;
  c.huber_delta = 1e3;
  c.max_grad_norm = 0;
  c.double_dqn = double_dqn;
  return c;
}

// A small fixed-head learner: one hidden layer of 8 units, batches of 8.
fa::DqnConfig small_config() {
  fa::DqnConfig c;
  c.hidden = {8};
  c.batch_size = 8;
  return c;
}

fa::ReplaySpec fixed_replay(int observation_size, std::size_t capacity = 16) {
  fa::ReplaySpec s;
  s.capacity = capacity;
  s.observation_size = observation_size;
  return s;
}

// Candidate head of the hand-built cases: input [obs (1) | static (1) | dynamic (1)], the
// static feature from `table` per item, the dynamic one the candidate's first extra.
fa::CandidateFeatures hand_features(const std::vector<float>& table) {
  fa::CandidateFeatures f;
  f.observation_size = 1;
  f.static_size = 1;
  f.dynamic_size = 1;
  f.num_items = static_cast<int>(table.size());
  f.extra_size = 1;
  f.static_features = table.data();
  f.dynamic = [](std::span<const float>, int, const float* extras, float* out) { out[0] = extras[0]; };
  return f;
}

// The hand-built candidate head's networks: Q_online(s, item) = the item's static feature,
// Q_target(s, item) = its extra.
void set_hand_weights(fa::DqnLearner& learner) {
  learner.online().weight(0) << 0.0F, 1.0F, 0.0F;
  learner.online().bias(0).setZero();
  learner.target().weight(0) << 0.0F, 0.0F, 1.0F;
  learner.target().bias(0).setZero();
}

// A richer candidate head: 3 observation floats, 2 static per item, 2 dynamic from two extras.
struct Features {
  std::vector<float> table;
  fa::CandidateFeatures features;
  explicit Features(int items) {
    std::mt19937_64 rng(41);
    std::uniform_real_distribution<float> u(-1.0F, 1.0F);
    table.resize(static_cast<std::size_t>(items) * 2);
    for (auto& v : table) v = u(rng);
    features.observation_size = 3;
    features.static_size = 2;
    features.dynamic_size = 2;
    features.num_items = items;
    features.extra_size = 2;
    features.static_features = table.data();
    features.dynamic = [](std::span<const float> obs, int item, const float* extras, float* out) {
      out[0] = extras[0] * obs[0];
      out[1] = extras[1] + 0.1F * static_cast<float>(item);
    };
  }
};

// Four terminal transitions (discount 0): the TD target is the reward, whatever the networks.
void add_terminal_rows(fa::ReplayBuffer& replay) {
  const float rewards[4] = {1.0F, -0.5F, 2.0F, 0.25F};
  for (int k = 0; k < 4; ++k) {
    const std::vector<float> obs{static_cast<float>(k) / 4.0F, 1.0F - static_cast<float>(k) / 3.0F, 0.5F};
    replay.add(obs, k % 2, {}, rewards[k], 0.0F, obs);
  }
}

// The mean Huber TD loss of `learner` over the four terminal rows (targets = rewards).
double terminal_loss(fa::DqnLearner& learner, const fa::ReplayBuffer& replay) {
  nn::Matrix<float> x(4, 3), q;
  for (int k = 0; k < 4; ++k) {
    const auto obs = replay.observation(static_cast<std::size_t>(k));
    std::copy(obs.begin(), obs.end(), x.row(k).data());
  }
  nn::Workspace<float> ws;
  learner.online().predict(x, q, ws);
  double loss = 0;
  for (int k = 0; k < 4; ++k) {
    loss += huber(q(k, replay.action(static_cast<std::size_t>(k))) - replay.reward(static_cast<std::size_t>(k)),
                  learner.config().huber_delta);
  }
  return loss / 4.0;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// TD targets

TEST(DqnTarget, DoubleDqnValuesTheOnlineArgmaxWithTheTargetNetwork) {
  for (const bool double_dqn : {true, false}) {
    fa::DqnLearner learner(hand_config(double_dqn), 1, 2, 7);
    // Q_online(s) = (0, 1): prefers action 1. Q_target(s) = (10, 2): prefers action 0.
    learner.online().weight(0).setZero();
    learner.online().bias(0)(0) = 0.0F;
    learner.online().bias(0)(1) = 1.0F;
    learner.target().weight(0).setZero();
    learner.target().bias(0)(0) = 10.0F;
    learner.target().bias(0)(1) = 2.0F;
    fa::ReplayBuffer replay(fixed_replay(1));
    const std::vector<float> s{1.0F};
    replay.add(s, /*action=*/0, {}, /*reward=*/0.5F, /*discount=*/0.5F, s);
    std::mt19937_64 rng(1);
    // q = Q_online(s, 0) = 0. Double DQN: y = 0.5 + 0.5 * Q_target(s', argmax Q_online) = 1.5;
    // plain: y = 0.5 + 0.5 * max Q_target(s') = 5.5.
    const double y = double_dqn ? 1.5 : 5.5;
    EXPECT_NEAR(learner.update(replay, rng), 0.5 * y * y, 1e-5) << (double_dqn ? "double" : "plain");
  }
}

TEST(DqnTarget, TheLossComparesTheStoredActionsValue) {
  fa::DqnLearner learner(hand_config(true), 1, 2, 7);
  learner.online().weight(0).setZero();
  learner.online().bias(0)(0) = 0.0F;
  learner.online().bias(0)(1) = 1.0F;
  learner.target().copy_parameters_from(learner.online());
  fa::ReplayBuffer replay(fixed_replay(1));
  const std::vector<float> s{1.0F};
  replay.add(s, /*action=*/1, {}, 0.5F, 0.5F, s);  // q = 1, y = 0.5 + 0.5 * 1 = 1
  std::mt19937_64 rng(1);
  EXPECT_NEAR(learner.update(replay, rng), 0.0, 1e-7);
}

TEST(DqnTarget, CandidateHeadDoubleDqnAndPlainMaxOverTheNextCandidates) {
  const std::vector<float> table{0.0F, 5.0F, 1.0F};  // static feature per item
  for (const bool double_dqn : {true, false}) {
    fa::DqnLearner learner(hand_config(double_dqn), hand_features(table), 3);
    ASSERT_EQ(learner.online().layer_sizes(), (std::vector<int>{3, 1}));
    set_hand_weights(learner);
    fa::ReplaySpec spec = fixed_replay(1);
    spec.max_candidates = 2;
    fa::ReplayBuffer replay(spec);
    const std::vector<float> s{1.0F};
    const std::vector<std::int16_t> next{1, 2};
    // Chosen item 0 (q = 0), reward 1, discount 1; next candidates 1 (extra 2) and 2 (extra 9).
    replay.add(s, 0, std::vector<float>{0.0F}, 1.0F, 1.0F, s, next, std::vector<float>{2.0F, 9.0F});
    std::mt19937_64 rng(2);
    // Online prefers item 1 (5 > 1), whose target value is 2: y = 3. Plain: max(2, 9): y = 10.
    const double y = double_dqn ? 3.0 : 10.0;
    EXPECT_NEAR(learner.update(replay, rng), 0.5 * y * y, 1e-4) << (double_dqn ? "double" : "plain");
  }
}

TEST(DqnTarget, ATerminalTransitionOrOneWithoutNextCandidatesDoesNotBootstrap) {
  const std::vector<float> table{0.0F, 5.0F, 1.0F};
  fa::DqnLearner learner(hand_config(true), hand_features(table), 3);
  set_hand_weights(learner);
  fa::ReplaySpec spec = fixed_replay(1);
  spec.max_candidates = 2;
  const std::vector<float> s{1.0F};
  {
    fa::ReplayBuffer terminal(spec);
    terminal.add(s, 0, std::vector<float>{0.0F}, 1.0F, 0.0F, s, std::vector<std::int16_t>{1, 2},
                 std::vector<float>{2.0F, 9.0F});
    std::mt19937_64 rng(3);
    EXPECT_NEAR(learner.update(terminal, rng), 0.5, 1e-5);  // y = r = 1
  }
  set_hand_weights(learner);  // undo the step
  {
    fa::ReplayBuffer none_next(spec);
    none_next.add(s, 0, std::vector<float>{0.0F}, 2.0F, 1.0F, s, std::vector<std::int16_t>{}, std::vector<float>{});
    std::mt19937_64 rng(4);
    EXPECT_NEAR(learner.update(none_next, rng), 2.0, 1e-5);  // y = r = 2: nothing to bootstrap from
  }
}

// ------------------------------------------------------------------------------------------------
// Gradient steps

TEST(DqnUpdate, ReportsTheLossBeforeTheStepAndTheStepLowersIt) {
  fa::DqnConfig c;
  c.hidden = {16};
  c.batch_size = 32;
  c.learning_rate = 1e-2;
  fa::DqnLearner learner(c, 3, 2, 11);
  fa::ReplayBuffer replay(fixed_replay(3, 4));
  add_terminal_rows(replay);
  std::mt19937_64 rng(5);

  const double before = terminal_loss(learner, replay);
  ASSERT_GT(before, 0.05);
  const float reported = learner.update(replay, rng);
  // The batch samples the four rows with replacement, so its mean loss is near (not at) the
  // four-row mean; both are the same function of the same networks.
  EXPECT_NEAR(reported, before, 0.5 * before);
  EXPECT_LT(terminal_loss(learner, replay), before);

  for (int i = 0; i < 400; ++i) learner.update(replay, rng);
  EXPECT_LT(terminal_loss(learner, replay), 0.01 * before);
  EXPECT_EQ(learner.updates(), 401);
}

TEST(DqnUpdate, OnOneTransitionTheReportedLossIsItsHuberLoss) {
  fa::DqnConfig c = small_config();
  c.huber_delta = 0.5;  // the error starts in the linear region
  fa::DqnLearner learner(c, 3, 2, 12);
  fa::ReplayBuffer replay(fixed_replay(3, 1));
  const std::vector<float> s{0.2F, -0.4F, 0.6F};
  replay.add(s, 1, {}, 4.0F, 0.0F, s);
  nn::Matrix<float> x(1, 3), q;
  std::copy(s.begin(), s.end(), x.data());
  nn::Workspace<float> ws;
  learner.online().predict(x, q, ws);
  std::mt19937_64 rng(6);
  const double first = learner.update(replay, rng);
  EXPECT_NEAR(first, huber(q(0, 1) - 4.0, 0.5), 1e-5);
  const double second = learner.update(replay, rng);
  EXPECT_LT(second, first);
}

TEST(DqnUpdate, CandidateHeadLearnsAFixedBatch) {
  Features f(5);
  fa::DqnConfig c;
  c.hidden = {16};
  c.batch_size = 16;
  c.learning_rate = 1e-2;
  fa::DqnLearner learner(c, f.features, 13);
  fa::ReplaySpec spec = fixed_replay(3, 3);
  spec.max_candidates = 2;
  spec.candidate_extras = 2;
  fa::ReplayBuffer replay(spec);
  const std::vector<float> s{0.5F, -0.5F, 1.0F};
  for (int k = 0; k < 3; ++k) {
    replay.add(s, k, std::vector<float>{0.1F * static_cast<float>(k), 1.0F}, static_cast<float>(k) - 1.0F, 0.0F, s,
               std::vector<std::int16_t>{}, std::vector<float>{});
  }
  // The loss on these rows, scored as the service scores them (score_candidates).
  const auto loss = [&] {
    const std::vector<std::int16_t> items{0, 1, 2};
    const std::vector<float> extras{0.0F, 1.0F, 0.1F, 1.0F, 0.2F, 1.0F};
    std::vector<float> scores(3);
    learner.score_candidates(s, items, extras, scores);
    double l = 0;
    for (int k = 0; k < 3; ++k) l += huber(scores[static_cast<std::size_t>(k)] - (static_cast<double>(k) - 1.0), 1.0);
    return l / 3.0;
  };
  std::mt19937_64 rng(7);
  const double before = loss();
  ASSERT_GT(before, 0.01);
  for (int i = 0; i < 300; ++i) learner.update(replay, rng);
  EXPECT_LT(loss(), 0.05 * before);
}

// ------------------------------------------------------------------------------------------------
// The target network

TEST(DqnTargetNetwork, StartsAsACopyAndIsCopiedEveryTargetUpdateEvery) {
  fa::DqnConfig c = small_config();
  c.target_update_every = 3;
  fa::DqnLearner learner(c, 3, 2, 14);
  const auto initial = params_of(learner.online());
  EXPECT_EQ(params_of(learner.target()), initial);
  fa::ReplayBuffer replay(fixed_replay(3, 4));
  add_terminal_rows(replay);
  std::mt19937_64 rng(8);
  for (int u = 1; u <= 2; ++u) {
    learner.update(replay, rng);
    EXPECT_NE(params_of(learner.online()), initial) << u;
    EXPECT_EQ(params_of(learner.target()), initial) << "update " << u << " must not touch the target";
  }
  learner.update(replay, rng);
  EXPECT_EQ(params_of(learner.target()), params_of(learner.online()));
  const auto at_three = params_of(learner.target());
  learner.update(replay, rng);
  EXPECT_EQ(params_of(learner.target()), at_three);
  EXPECT_NE(params_of(learner.online()), at_three);
}

TEST(DqnTargetNetwork, PolyakAveragingMovesTheTargetByTauAfterEveryUpdate) {
  fa::DqnConfig c = small_config();
  c.tau = 0.25;
  fa::DqnLearner learner(c, 3, 2, 15);
  fa::ReplayBuffer replay(fixed_replay(3, 4));
  add_terminal_rows(replay);
  std::mt19937_64 rng(9);
  for (int u = 0; u < 3; ++u) {
    const auto target_before = params_of(learner.target());
    learner.update(replay, rng);
    const auto online = params_of(learner.online());
    const auto target = params_of(learner.target());
    ASSERT_EQ(target.size(), online.size());
    double moved = 0;
    for (std::size_t i = 0; i < target.size(); ++i) {
      ASSERT_NEAR(target[i], 0.25 * online[i] + 0.75 * target_before[i], 1e-6) << "update " << u << " parameter " << i;
      moved = std::max(moved, static_cast<double>(std::abs(target[i] - target_before[i])));
    }
    EXPECT_GT(moved, 0.0) << u;
  }
}

TEST(DqnTargetNetwork, QuantizationAwareTrainingKeepsTheNetworkOnTheInt8Grid) {
  fa::DqnConfig c = small_config();
  c.quantization_aware = true;
  fa::DqnLearner learner(c, 3, 2, 16);
  ASSERT_EQ(learner.latent().size(), learner.online().num_parameters());
  fa::ReplayBuffer replay(fixed_replay(3, 4));
  add_terminal_rows(replay);
  std::mt19937_64 rng(10);
  for (int u = 0; u < 5; ++u) learner.update(replay, rng);
  // The online network is the projection of the latent weights Adam updates.
  nn::Mlp<float> projected = learner.online();
  const std::vector<float> latent(learner.latent().begin(), learner.latent().end());
  nn::project_weights_onto_int8_grid(latent, projected);
  EXPECT_EQ(params_of(projected), params_of(learner.online()));
  EXPECT_NE(latent, params_of(learner.online()));  // the latent copy is finer than the grid
  // Without it there is no latent copy.
  c.quantization_aware = false;
  EXPECT_TRUE(fa::DqnLearner(c, 3, 2, 16).latent().empty());
}

// ------------------------------------------------------------------------------------------------
// Heads and errors

TEST(DqnHeads, FixedHeadHasOneOutputPerActionAndGreedyRespectsTheMask) {
  fa::DqnConfig c;
  c.hidden = {8, 4};
  fa::DqnLearner learner(c, 3, 4, 17);
  EXPECT_FALSE(learner.candidate_head());
  EXPECT_EQ(learner.action_bound(), 4);
  EXPECT_EQ(learner.online().layer_sizes(), (std::vector<int>{3, 8, 4, 4}));
  const std::vector<float> s{0.3F, -0.2F, 0.9F};
  nn::Matrix<float> x(1, 3), q;
  std::copy(s.begin(), s.end(), x.data());
  nn::Workspace<float> ws;
  learner.online().predict(x, q, ws);
  Eigen::Index best = 0;
  q.row(0).maxCoeff(&best);
  EXPECT_EQ(learner.greedy_action(s), best);
  // Masking the best leaves the best of the others.
  std::vector<std::uint8_t> mask(4, 1);
  mask[static_cast<std::size_t>(best)] = 0;
  Eigen::Index second = best == 0 ? 1 : 0;
  for (Eigen::Index a = 0; a < 4; ++a) {
    if (a != best && q(0, a) > q(0, second)) second = a;
  }
  EXPECT_EQ(learner.greedy_action(s, mask), second);
  EXPECT_THROW(learner.greedy_action(s, std::vector<std::uint8_t>(4, 0)), std::invalid_argument);
}

TEST(DqnHeads, CandidateHeadScoresEachCandidateAsItsFullInputRow) {
  Features f(6);
  fa::DqnConfig c;
  c.hidden = {8, 4};
  fa::DqnLearner learner(c, f.features, 18);
  EXPECT_TRUE(learner.candidate_head());
  EXPECT_EQ(learner.action_bound(), 6);
  EXPECT_EQ(learner.online().layer_sizes(), (std::vector<int>{f.features.input_size(), 8, 4, 1}));
  EXPECT_EQ(f.features.input_size(), 7);

  const std::vector<float> s{0.4F, -1.0F, 0.25F};
  const std::vector<std::int16_t> candidates{5, 0, 3};
  const std::vector<float> extras{0.5F, -0.5F, 1.0F, 0.0F, -2.0F, 0.75F};
  std::vector<float> scores(3);
  learner.score_candidates(s, candidates, extras, scores);
  // The factorized first layer must give what the full rows give.
  nn::Matrix<float> rows(3, f.features.input_size()), q;
  for (int k = 0; k < 3; ++k) {
    f.features.write_row(s, candidates[static_cast<std::size_t>(k)], extras.data() + 2 * k, rows.row(k).data());
  }
  nn::Workspace<float> ws;
  learner.online().predict(rows, q, ws);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(scores[static_cast<std::size_t>(k)], q(k, 0), 1e-5) << k;
  EXPECT_NE(scores[0], scores[1]);  // the candidates are told apart

  std::vector<float> short_scores(2);
  EXPECT_THROW(learner.score_candidates(s, candidates, extras, short_scores), std::invalid_argument);
  EXPECT_THROW(learner.score_candidates(s, candidates, std::vector<float>(5), scores), std::invalid_argument);
}

TEST(DqnHeads, BadConfigurationsAreRefused) {
  const auto refused = [](const fa::DqnConfig& c) {
    EXPECT_THROW(fa::DqnLearner(c, 3, 2, 1), std::invalid_argument);
  };
  fa::DqnConfig c;
  c.batch_size = 0;
  refused(c);
  c = {};
  c.n_step = 0;
  refused(c);
  c = {};
  c.tau = 0.0;
  refused(c);
  c.tau = 1.5;
  refused(c);
  c = {};
  c.target_update_every = 0;
  refused(c);
  EXPECT_THROW(fa::DqnLearner(fa::DqnConfig{}, 3, -1, 1), std::invalid_argument);

  Features f(4);
  auto no_function = f.features;
  no_function.dynamic = nullptr;
  EXPECT_THROW(fa::DqnLearner(fa::DqnConfig{}, no_function, 1), std::invalid_argument);
  auto no_table = f.features;
  no_table.static_features = nullptr;
  EXPECT_THROW(fa::DqnLearner(fa::DqnConfig{}, no_table, 1), std::invalid_argument);
  auto no_items = f.features;
  no_items.num_items = 0;
  EXPECT_THROW(fa::DqnLearner(fa::DqnConfig{}, no_items, 1), std::invalid_argument);
}

TEST(DqnHeads, AReplayWithOtherExtrasThanTheFeaturesIsRefused) {
  Features f(4);  // reads 2 extras per candidate
  fa::DqnConfig c;
  c.hidden = {4};
  c.batch_size = 2;
  fa::DqnLearner learner(c, f.features, 19);
  fa::ReplaySpec spec = fixed_replay(3, 2);
  spec.max_candidates = 2;
  spec.candidate_extras = 1;
  fa::ReplayBuffer replay(spec);
  const std::vector<float> s{0, 0, 0};
  replay.add(s, 0, std::vector<float>{0.0F}, 0.0F, 0.0F, s, std::vector<std::int16_t>{}, std::vector<float>{});
  std::mt19937_64 rng(11);
  EXPECT_THROW(learner.update(replay, rng), std::invalid_argument);
  EXPECT_EQ(learner.updates(), 0);
}
