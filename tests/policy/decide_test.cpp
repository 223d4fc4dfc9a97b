// decide()'s probabilities (policy/decide.hpp, step 3) through score_and_probabilities, the
// function the service and the learner's gate share: epsilon-greedy at temperature 0, and
// (1 - epsilon) softmax(score / T) + epsilon / n at T > 0; bad settings are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/observation.hpp"
#include "forkcast/policy/decide.hpp"
#include "forkcast/policy/explore.hpp"

namespace fp = forkcast::policy;
namespace fe = forkcast::env;

namespace {

struct Fixture {
  fe::Catalog catalog = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  std::shared_ptr<const fp::PolicySnapshot> snapshot =
      fp::PolicySnapshot::load(FORKCAST_SOURCE_DIR "/models/policies/mealsim-dqn-default.safetensors", catalog, "t");
  std::vector<float> observation = std::vector<float>(fe::kObservationSize, 0.0F);
  std::vector<std::int32_t> candidates{1, 4, 9, 16, 25};
  std::vector<float> recency{0.0F, 0.2F, 0.0F, 0.9F, 0.4F};
  Fixture() { observation[fe::kObsSlot + 1] = 1.0F; }
};

}  // namespace

TEST(ScoreAndProbabilities, TemperatureZeroIsEpsilonGreedyAndAboveZeroIsSoftmaxWithEpsilonMixedIn) {
  Fixture f;
  fp::DecisionWorkspace ws;
  std::vector<float> scores(5);
  std::vector<double> pmf(5), expected(5);
  fp::score_and_probabilities(f.snapshot, f.observation, f.candidates, f.recency, 0.2, 0.0, scores, pmf, ws);
  fp::epsilon_greedy_pmf(std::span<const float>(scores), {}, 0.2, expected);
  EXPECT_EQ(pmf, expected);

  fp::score_and_probabilities(f.snapshot, f.observation, f.candidates, f.recency, 0.2, 0.5, scores, pmf, ws);
  double z = 0;
  const float top = *std::max_element(scores.begin(), scores.end());
  for (const float s : scores) z += std::exp((s - top) / 0.5);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_NEAR(pmf[i], 0.8 * std::exp((scores[i] - top) / 0.5) / z + 0.2 / 5, 1e-12) << i;
  }
  EXPECT_NEAR(std::accumulate(pmf.begin(), pmf.end(), 0.0), 1.0, 1e-12);
  // Every candidate keeps mass: a log served this way supports any policy the learner proposes.
  for (const double p : pmf) EXPECT_GE(p, 0.2 / 5);
}

TEST(ScoreAndProbabilities, RefusesABadTemperatureOrEpsilonAndMismatchedSpans) {
  Fixture f;
  fp::DecisionWorkspace ws;
  std::vector<float> scores(5);
  std::vector<double> pmf(5);
  for (const double bad : {-1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_THROW(fp::score_and_probabilities(f.snapshot, f.observation, f.candidates, f.recency, 0.1, bad, scores, pmf, ws),
                 std::invalid_argument)
        << bad;
  }
  EXPECT_THROW(fp::score_and_probabilities(f.snapshot, f.observation, f.candidates, f.recency, 1.5, 0.5, scores, pmf, ws),
               std::invalid_argument);
  std::vector<double> short_pmf(4);
  EXPECT_THROW(
      fp::score_and_probabilities(f.snapshot, f.observation, f.candidates, f.recency, 0.1, 0.5, scores, short_pmf, ws),
      std::invalid_argument);
}
