// The learner's conservative off-policy update (learning/offline_dqn.hpp): the TD part
// learns rewards and bootstraps through the next state with its discount, the CQL term
// raises the logged action above the candidates the log never chose, and the update is
// deterministic for a seed.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/learning/offline_dqn.hpp"

namespace fl = forkcast::learning;
namespace fe = forkcast::env;
namespace nn = forkcast::agent::nn;

namespace {

const fe::Catalog& catalog() {
  static const fe::Catalog c = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  return c;
}

// Appends a row: a lunch observation marked by `mark`, the given candidates (recency 0),
// the one at `chosen` logged.
std::int32_t add_row(fl::LoggedDataset& d, float mark, const std::vector<std::int16_t>& candidates, int chosen) {
  std::vector<float> obs(fe::kObservationSize, 0.0F);
  obs[fe::kObsSlot + 1] = 1.0F;
  obs[fe::kObservationSize - 1] = mark;
  d.observations.insert(d.observations.end(), obs.begin(), obs.end());
  for (const auto c : candidates) {
    d.candidates.push_back(c);
    d.recency.push_back(0.0F);
    d.propensities.push_back(1.0F / static_cast<float>(candidates.size()));
  }
  d.candidate_begin.push_back(static_cast<std::int64_t>(d.candidates.size()));
  d.chosen.push_back(chosen);
  d.epsilon.push_back(0.1F);
  d.temperature.push_back(0.0F);
  d.user_key.push_back(1);
  d.decided_at.emplace_back();
  d.event_id.emplace_back("e");
  return d.rows() - 1;
}

float q_of(const fl::OfflineDqn& learner, const fl::LoggedDataset& d, std::int32_t row, std::size_t candidate) {
  nn::Matrix<float> x(1, fe::kCandidateInputSize), y;
  fe::write_candidate_input(catalog(), d.observation(row), d.candidates_of(row)[candidate], d.recency_of(row)[candidate],
                            x.data());
  nn::Workspace<float> ws;
  learner.network().predict(x, y, ws);
  return y(0, 0);
}

nn::Mlp<float> small_network(std::uint64_t seed = 7) { return nn::Mlp<float>({fe::kCandidateInputSize, 32, 1}, seed); }

std::vector<std::int32_t> all_transitions(const fl::LoggedDataset& d) {
  std::vector<std::int32_t> t(d.transitions.size());
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>(i);
  return t;
}

}  // namespace

TEST(OfflineDqn, LearnsTheRewardAndBootstrapsThroughTheNextStateWithItsDiscount) {
  fl::LoggedDataset d;
  const auto a = add_row(d, 0.0F, {5}, 0);
  const auto b = add_row(d, 1.0F, {9}, 0);
  d.transitions.push_back({.row = a, .next_row = b, .reward = 0.0F, .discount = 0.5F});
  d.transitions.push_back({.row = b, .next_row = -1, .reward = 1.0F, .discount = 0.0F});
  fl::OfflineDqn learner(catalog(), small_network(),
                         {.updates = 6'000, .batch_size = 8, .learning_rate = 1e-3, .cql_alpha = 0.0,
                          .target_update_every = 50, .seed = 1});
  const fl::OfflineTrainStats stats = learner.train(d, all_transitions(d));
  EXPECT_EQ(stats.updates, 6'000);
  EXPECT_LT(stats.last.td_loss, stats.first.td_loss);
  EXPECT_NEAR(q_of(learner, d, b, 0), 1.0F, 0.05F);
  EXPECT_NEAR(q_of(learner, d, a, 0), 0.5F, 0.08F);  // 0 + 0.5 * Q(b): neither 0 (no bootstrap) nor 1
}

TEST(OfflineDqn, TheConservativeTermRaisesTheLoggedActionAboveTheOnesTheLogNeverChose) {
  // One state, three candidates, the log always chose the middle one, every reward 0: the
  // data say nothing about the other two. Plain TD leaves their values where the start
  // put them; CQL pushes them below the logged one.
  fl::LoggedDataset d;
  for (int i = 0; i < 16; ++i) {
    const auto row = add_row(d, 0.0F, {3, 4, 5}, 1);
    d.transitions.push_back({.row = row, .reward = 0.0F});
  }
  const auto gap_after = [&](double alpha) {
    fl::OfflineDqn learner(catalog(), small_network(), {.updates = 400, .batch_size = 8, .learning_rate = 1e-3,
                                                        .cql_alpha = alpha, .seed = 3});
    const float before = q_of(learner, d, 0, 1) - std::max(q_of(learner, d, 0, 0), q_of(learner, d, 0, 2));
    learner.train(d, all_transitions(d));
    const float after = q_of(learner, d, 0, 1) - std::max(q_of(learner, d, 0, 0), q_of(learner, d, 0, 2));
    return std::pair(before, after);
  };
  const auto [before_plain, after_plain] = gap_after(0.0);
  const auto [before_cql, after_cql] = gap_after(1.0);
  EXPECT_EQ(before_plain, before_cql);  // the same start
  EXPECT_GT(after_cql, 0.5F);
  EXPECT_GT(after_cql, after_plain + 0.4F);
}

TEST(OfflineDqn, IsDeterministicForASeedAndRefusesANetworkOfAnotherShape) {
  fl::LoggedDataset d;
  for (int i = 0; i < 10; ++i) {
    const auto row = add_row(d, static_cast<float>(i), {1, 2, 3, 4}, i % 4);
    d.transitions.push_back({.row = row, .reward = static_cast<float>(i % 3)});
  }
  const auto parameters_after = [&](std::uint64_t seed) {
    fl::OfflineDqn learner(catalog(), small_network(), {.updates = 30, .batch_size = 4, .seed = seed});
    learner.train(d, all_transitions(d));
    const auto p = learner.network().parameters();
    return std::vector<float>(p.begin(), p.end());
  };
  EXPECT_EQ(parameters_after(5), parameters_after(5));
  EXPECT_NE(parameters_after(5), parameters_after(6));

  try {
    fl::OfflineDqn bad(catalog(), nn::Mlp<float>({10, 4, 1}, 1), {});
    FAIL() << "accepted a network of input 10";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("input 10"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fl::OfflineDqn(catalog(), small_network(), {.batch_size = 0}), std::invalid_argument);
  EXPECT_THROW(fl::OfflineDqn(catalog(), small_network(), {.cql_alpha = -1}), std::invalid_argument);
  fl::OfflineDqn learner(catalog(), small_network(), {});
  EXPECT_THROW(learner.update(d, {}), std::invalid_argument);
}
