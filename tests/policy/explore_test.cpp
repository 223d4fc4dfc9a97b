#include "forkcast/policy/explore.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace forkcast::policy {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::span<const std::uint8_t> kAllAllowed{};

double sum(std::span<const double> values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

// Runs fn and returns the std::invalid_argument message it throws ("" when it does not
// throw), so that a test can check that the message names the parameter and its value.
template <typename Fn>
std::string invalid_argument_message(Fn&& fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// ---- epsilon schedules ---------------------------------------------------------------

TEST(EpsilonExponential, MatchesTheFormulaExactly) {
  // Hugging Face Deep RL course, unit 2: max 1.0, min 0.05, decay 0.005.
  for (const std::int64_t episode : {0, 1, 100, 1000, 10000}) {
    const double expected =
        0.05 + (1.0 - 0.05) * std::exp(-0.005 * static_cast<double>(episode));
    EXPECT_EQ(epsilon_exponential(1.0, 0.05, 0.005, episode), expected) << episode;
  }
}

TEST(EpsilonExponential, KnownValuesOfTheCourseSchedule) {
  EXPECT_EQ(epsilon_exponential(1.0, 0.05, 0.005, 0), 1.0);
  // 0.05 + 0.95 * e^-0.5 and 0.05 + 0.95 * e^-5.
  EXPECT_NEAR(epsilon_exponential(1.0, 0.05, 0.005, 100), 0.62620412672700175, 1e-15);
  EXPECT_NEAR(epsilon_exponential(1.0, 0.05, 0.005, 1000), 0.056401049649131194, 1e-15);
  EXPECT_NEAR(epsilon_exponential(1.0, 0.05, 0.005, 1'000'000), 0.05, 1e-15);
}

TEST(EpsilonExponential, ZeroDecayStaysAtMax) {
  EXPECT_EQ(epsilon_exponential(0.7, 0.1, 0.0, 123456), 0.7);
}

TEST(EpsilonExponential, RejectsBadArgumentsNamingThem) {
  EXPECT_NE(invalid_argument_message([] { epsilon_exponential(1.5, 0.05, 0.005, 0); })
                .find("eps_max = 1.5"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_exponential(1.0, -0.1, 0.005, 0); })
                .find("eps_min = -0.1"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_exponential(0.1, 0.5, 0.005, 0); })
                .find("eps_min = 0.5 is greater than eps_max = 0.1"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_exponential(1.0, 0.05, -0.005, 0); })
                .find("decay = -0.005"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_exponential(1.0, 0.05, 0.005, -1); })
                .find("episode = -1"),
            std::string::npos);
  EXPECT_THROW(epsilon_exponential(kNaN, 0.05, 0.005, 0), std::invalid_argument);
  EXPECT_THROW(epsilon_exponential(1.0, 0.05, kInf, 0), std::invalid_argument);
}

TEST(EpsilonLinear, EndpointsAndMidpoint) {
  EXPECT_EQ(epsilon_linear(1.0, 0.05, 0, 1000), 1.0);
  EXPECT_EQ(epsilon_linear(1.0, 0.05, 1000, 1000), 0.05);
  EXPECT_EQ(epsilon_linear(1.0, 0.05, 1'000'000, 1000), 0.05);
  EXPECT_NEAR(epsilon_linear(1.0, 0.05, 500, 1000), 0.525, 1e-15);
  EXPECT_NEAR(epsilon_linear(1.0, 0.0, 250, 1000), 0.75, 1e-15);
}

TEST(EpsilonLinear, NeverIncreases) {
  double previous = 1.0;
  for (std::int64_t step = 0; step <= 120; ++step) {
    const double eps = epsilon_linear(1.0, 0.1, step, 100);
    EXPECT_LE(eps, previous) << step;
    EXPECT_GE(eps, 0.1) << step;
    previous = eps;
  }
}

TEST(EpsilonLinear, RejectsBadArgumentsNamingThem) {
  EXPECT_NE(invalid_argument_message([] { epsilon_linear(1.0, 0.05, 0, 0); })
                .find("steps_to_min = 0"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_linear(1.0, 0.05, 0, -5); })
                .find("steps_to_min = -5"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_linear(1.0, 0.05, -3, 10); })
                .find("step = -3"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_linear(2.0, 0.05, 0, 10); })
                .find("eps_max = 2"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { epsilon_linear(0.2, 0.3, 0, 10); })
                .find("eps_min = 0.3 is greater than eps_max = 0.2"),
            std::string::npos);
}

// ---- epsilon-greedy ------------------------------------------------------------------

TEST(EpsilonGreedyPmf, SingleMaximumGetsTheGreedyMass) {
  const std::array<double, 4> scores{0.1, 0.9, 0.3, -2.0};
  std::array<double, 4> pmf{};
  epsilon_greedy_pmf(scores, kAllAllowed, 0.2, pmf);
  EXPECT_DOUBLE_EQ(pmf[0], 0.05);
  EXPECT_DOUBLE_EQ(pmf[1], 0.05 + 0.8);
  EXPECT_DOUBLE_EQ(pmf[2], 0.05);
  EXPECT_DOUBLE_EQ(pmf[3], 0.05);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
}

TEST(EpsilonGreedyPmf, ExactTiesShareTheGreedyMass) {
  const std::array<double, 4> scores{1.0, 3.0, 3.0, 2.0};
  std::array<double, 4> pmf{};
  epsilon_greedy_pmf(scores, kAllAllowed, 0.4, pmf);
  EXPECT_DOUBLE_EQ(pmf[0], 0.1);
  EXPECT_DOUBLE_EQ(pmf[1], 0.1 + 0.3);
  EXPECT_DOUBLE_EQ(pmf[2], 0.1 + 0.3);
  EXPECT_DOUBLE_EQ(pmf[3], 0.1);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
}

TEST(EpsilonGreedyPmf, NearTiesAreNotTies) {
  const double just_below = std::nextafter(3.0, 0.0);
  const std::array<double, 2> scores{3.0, just_below};
  std::array<double, 2> pmf{};
  epsilon_greedy_pmf(scores, kAllAllowed, 0.0, pmf);
  EXPECT_EQ(pmf[0], 1.0);
  EXPECT_EQ(pmf[1], 0.0);
}

TEST(EpsilonGreedyPmf, MaskedActionsGetExactlyZeroWhateverTheirScore) {
  // The masked action has the best score, and a NaN one is ignored too.
  const std::array<double, 5> scores{1.0, 100.0, 2.0, kNaN, 0.5};
  const std::array<std::uint8_t, 5> mask{1, 0, 1, 0, 1};
  std::array<double, 5> pmf{};
  epsilon_greedy_pmf(scores, mask, 0.3, pmf);
  EXPECT_EQ(pmf[1], 0.0);
  EXPECT_EQ(pmf[3], 0.0);
  EXPECT_DOUBLE_EQ(pmf[0], 0.1);
  EXPECT_DOUBLE_EQ(pmf[2], 0.1 + 0.7);
  EXPECT_DOUBLE_EQ(pmf[4], 0.1);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
}

TEST(EpsilonGreedyPmf, AllButOneMaskedGivesThatOneProbabilityOne) {
  const std::array<double, 4> scores{5.0, -1.0, 7.0, 3.0};
  const std::array<std::uint8_t, 4> mask{0, 1, 0, 0};
  for (const double eps : {0.0, 0.5, 1.0}) {
    std::array<double, 4> pmf{};
    epsilon_greedy_pmf(scores, mask, eps, pmf);
    EXPECT_EQ(pmf[1], 1.0) << eps;
    EXPECT_EQ(pmf[0], 0.0);
    EXPECT_EQ(pmf[2], 0.0);
    EXPECT_EQ(pmf[3], 0.0);
  }
}

TEST(EpsilonGreedyPmf, EpsilonOneIsUniformOverAllowed) {
  const std::array<double, 4> scores{1.0, 2.0, 3.0, 4.0};
  const std::array<std::uint8_t, 4> mask{1, 1, 0, 1};
  std::array<double, 4> pmf{};
  epsilon_greedy_pmf(scores, mask, 1.0, pmf);
  EXPECT_DOUBLE_EQ(pmf[0], 1.0 / 3);
  EXPECT_DOUBLE_EQ(pmf[1], 1.0 / 3);
  EXPECT_EQ(pmf[2], 0.0);
  EXPECT_DOUBLE_EQ(pmf[3], 1.0 / 3);
}

TEST(EpsilonGreedyPmf, FloatScoresCompareTiesAsFloats) {
  const std::array<float, 3> scores{0.5f, 0.75f, 0.75f};
  std::array<double, 3> pmf{};
  epsilon_greedy_pmf(scores, kAllAllowed, 0.3, pmf);
  EXPECT_DOUBLE_EQ(pmf[0], 0.1);
  EXPECT_DOUBLE_EQ(pmf[1], 0.1 + 0.35);
  EXPECT_DOUBLE_EQ(pmf[2], 0.1 + 0.35);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
}

TEST(EpsilonGreedyPmf, ManyActionsSumToOne) {
  std::mt19937_64 rng(7);
  std::vector<double> scores(1000);
  std::vector<std::uint8_t> mask(1000);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    scores[i] = static_cast<double>(rng() % 17);  // plenty of ties at the top
    mask[i] = rng() % 3 != 0;
  }
  std::vector<double> pmf(1000);
  epsilon_greedy_pmf(scores, mask, 0.137, pmf);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
  for (std::size_t i = 0; i < pmf.size(); ++i) {
    if (mask[i] == 0) {
      EXPECT_EQ(pmf[i], 0.0) << i;
    }
  }
}

TEST(EpsilonGreedyPmf, RejectsBadArguments) {
  const std::array<double, 3> scores{1.0, 2.0, 3.0};
  std::array<double, 3> pmf{};
  std::array<double, 2> short_pmf{};
  const std::array<std::uint8_t, 2> short_mask{1, 1};
  const std::array<std::uint8_t, 3> none{0, 0, 0};
  EXPECT_NE(invalid_argument_message([&] { epsilon_greedy_pmf(scores, none, 0.1, pmf); })
                .find("allows no action"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([&] { epsilon_greedy_pmf(scores, short_mask, 0.1, pmf); })
                .find("mask.size() = 2 differs from scores.size() = 3"),
            std::string::npos);
  EXPECT_NE(
      invalid_argument_message([&] { epsilon_greedy_pmf(scores, kAllAllowed, 0.1, short_pmf); })
          .find("pmf_out.size() = 2"),
      std::string::npos);
  EXPECT_NE(invalid_argument_message([&] { epsilon_greedy_pmf(scores, kAllAllowed, 1.2, pmf); })
                .find("epsilon = 1.2"),
            std::string::npos);
  const std::array<double, 3> with_nan{1.0, kNaN, 3.0};
  EXPECT_NE(
      invalid_argument_message([&] { epsilon_greedy_pmf(with_nan, kAllAllowed, 0.1, pmf); })
          .find("scores[1]"),
      std::string::npos);
  EXPECT_THROW(epsilon_greedy_pmf(std::span<const double>{}, kAllAllowed, 0.1,
                                  std::span<double>{}),
               std::invalid_argument);
}

// ---- softmax -------------------------------------------------------------------------

TEST(SoftmaxPmf, MatchesTheClosedForm) {
  const std::array<double, 3> scores{1.0, 2.0, 3.0};
  std::array<double, 3> pmf{};
  softmax_pmf(scores, kAllAllowed, 0.5, pmf);
  const double z = std::exp(2.0) + std::exp(4.0) + std::exp(6.0);
  EXPECT_NEAR(pmf[0], std::exp(2.0) / z, 1e-15);
  EXPECT_NEAR(pmf[1], std::exp(4.0) / z, 1e-15);
  EXPECT_NEAR(pmf[2], std::exp(6.0) / z, 1e-15);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
}

TEST(SoftmaxPmf, HugeScoresDoNotOverflow) {
  const std::array<double, 3> scores{1000.0, 1001.0, 999.0};
  std::array<double, 3> pmf{};
  softmax_pmf(scores, kAllAllowed, 1.0, pmf);
  const double z = std::exp(-1.0) + 1.0 + std::exp(-2.0);
  EXPECT_NEAR(pmf[1], 1.0 / z, 1e-14);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
  const std::array<float, 2> big_floats{3.0e38f, 3.0e38f};
  std::array<double, 2> pmf2{};
  softmax_pmf(big_floats, kAllAllowed, 1.0, pmf2);
  EXPECT_DOUBLE_EQ(pmf2[0], 0.5);
  EXPECT_DOUBLE_EQ(pmf2[1], 0.5);
}

TEST(SoftmaxPmf, MaskedActionsGetExactlyZero) {
  const std::array<double, 4> scores{1.0, 50.0, 2.0, kNaN};
  const std::array<std::uint8_t, 4> mask{1, 0, 1, 0};
  std::array<double, 4> pmf{};
  softmax_pmf(scores, mask, 2.0, pmf);
  EXPECT_EQ(pmf[1], 0.0);
  EXPECT_EQ(pmf[3], 0.0);
  EXPECT_NEAR(pmf[0], 1.0 / (1.0 + std::exp(0.5)), 1e-15);
  EXPECT_NEAR(sum(pmf), 1.0, 1e-12);
}

TEST(SoftmaxPmf, AllButOneMaskedGivesThatOneProbabilityOne) {
  const std::array<double, 3> scores{9.0, -4.0, 9.0};
  const std::array<std::uint8_t, 3> mask{0, 1, 0};
  std::array<double, 3> pmf{};
  softmax_pmf(scores, mask, 0.1, pmf);
  EXPECT_EQ(pmf[0], 0.0);
  EXPECT_EQ(pmf[1], 1.0);
  EXPECT_EQ(pmf[2], 0.0);
}

TEST(SoftmaxPmf, InfiniteScoresTakeTheLimit) {
  std::array<double, 3> pmf{};
  const std::array<double, 3> two_top{kInf, 1.0, kInf};
  softmax_pmf(two_top, kAllAllowed, 1.0, pmf);
  EXPECT_EQ(pmf[0], 0.5);
  EXPECT_EQ(pmf[1], 0.0);
  EXPECT_EQ(pmf[2], 0.5);
  const std::array<double, 3> all_bottom{-kInf, -kInf, 4.0};
  const std::array<std::uint8_t, 3> mask{1, 1, 0};
  softmax_pmf(all_bottom, mask, 1.0, pmf);
  EXPECT_EQ(pmf[0], 0.5);
  EXPECT_EQ(pmf[1], 0.5);
  EXPECT_EQ(pmf[2], 0.0);
  const std::array<double, 3> one_bottom{-kInf, 0.0, 0.0};
  softmax_pmf(one_bottom, kAllAllowed, 1.0, pmf);
  EXPECT_EQ(pmf[0], 0.0);
  EXPECT_EQ(pmf[1], 0.5);
}

TEST(SoftmaxPmf, LowTemperatureApproachesGreedyHighApproachesUniform) {
  const std::array<double, 3> scores{1.0, 2.0, 1.5};
  std::array<double, 3> pmf{};
  softmax_pmf(scores, kAllAllowed, 1e-3, pmf);
  EXPECT_NEAR(pmf[1], 1.0, 1e-12);
  softmax_pmf(scores, kAllAllowed, 1e6, pmf);
  for (const double p : pmf) EXPECT_NEAR(p, 1.0 / 3, 1e-6);
}

TEST(SoftmaxPmf, RejectsBadArguments) {
  const std::array<double, 2> scores{1.0, 2.0};
  std::array<double, 2> pmf{};
  EXPECT_NE(invalid_argument_message([&] { softmax_pmf(scores, kAllAllowed, 0.0, pmf); })
                .find("temperature = 0"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([&] { softmax_pmf(scores, kAllAllowed, -1.0, pmf); })
                .find("temperature = -1"),
            std::string::npos);
  EXPECT_THROW(softmax_pmf(scores, kAllAllowed, kInf, pmf), std::invalid_argument);
  EXPECT_THROW(softmax_pmf(scores, kAllAllowed, kNaN, pmf), std::invalid_argument);
  const std::array<std::uint8_t, 2> none{0, 0};
  EXPECT_THROW(softmax_pmf(scores, none, 1.0, pmf), std::invalid_argument);
  std::array<double, 3> long_pmf{};
  EXPECT_THROW(softmax_pmf(scores, kAllAllowed, 1.0, long_pmf), std::invalid_argument);
}

// ---- sampling ------------------------------------------------------------------------

TEST(SampleFromPmf, FrequenciesMatchTheProbabilities) {
  const std::array<double, 4> pmf{0.1, 0.0, 0.6, 0.3};
  std::mt19937_64 rng(20240501);
  constexpr int kDraws = 200'000;
  std::array<int, 4> counts{};
  for (int i = 0; i < kDraws; ++i) ++counts[sample_from_pmf(pmf, rng)];
  EXPECT_EQ(counts[1], 0);
  // Binomial standard deviation is at most ~0.0011 here; 0.005 is > 4 sigma.
  for (std::size_t i = 0; i < pmf.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(counts[i]) / kDraws, pmf[i], 0.005) << i;
  }
}

TEST(SampleFromPmf, SeededFrequenciesMatchTheProbabilities) {
  const std::array<double, 3> pmf{0.25, 0.5, 0.25};
  constexpr std::uint64_t kDraws = 100'000;
  std::array<int, 3> counts{};
  for (std::uint64_t seed = 0; seed < kDraws; ++seed) ++counts[sample_from_pmf(pmf, seed)];
  for (std::size_t i = 0; i < pmf.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(counts[i]) / kDraws, pmf[i], 0.007) << i;
  }
}

TEST(SampleFromPmf, UnnormalisedWeightsAreNormalised) {
  const std::array<double, 2> weights{1.0, 3.0};
  std::mt19937_64 rng(3);
  int ones = 0;
  constexpr int kDraws = 100'000;
  for (int i = 0; i < kDraws; ++i) ones += sample_from_pmf(weights, rng) == 1 ? 1 : 0;
  EXPECT_NEAR(static_cast<double>(ones) / kDraws, 0.75, 0.007);
}

TEST(SampleFromPmf, SeededSamplingIsDeterministic) {
  const std::array<double, 5> pmf{0.2, 0.2, 0.2, 0.2, 0.2};
  std::vector<std::size_t> first;
  std::vector<std::size_t> second;
  for (std::uint64_t seed = 0; seed < 200; ++seed) first.push_back(sample_from_pmf(pmf, seed));
  for (std::uint64_t seed = 0; seed < 200; ++seed) second.push_back(sample_from_pmf(pmf, seed));
  EXPECT_EQ(first, second);
  // Different seeds do pick different actions.
  EXPECT_NE(std::count(first.begin(), first.end(), first[0]), 200);
}

TEST(SampleFromPmf, SameGeneratorStateSameDraws) {
  const std::array<double, 3> pmf{0.3, 0.3, 0.4};
  std::mt19937_64 a(99);
  std::mt19937_64 b(99);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_from_pmf(pmf, a), sample_from_pmf(pmf, b));
}

TEST(SampleFromPmf, UsesExactlyOneDrawPerSample) {
  const std::array<double, 2> pmf{0.5, 0.5};
  std::mt19937_64 rng(5);
  std::mt19937_64 reference(5);
  sample_from_pmf(pmf, rng);
  reference.discard(1);
  EXPECT_EQ(rng(), reference());
}

// The seed whose SplitMix64 output (see explore.hpp) is `output`: SplitMix64 is a bijection,
// so it can be run backwards to aim the seeded sampler at either end of [0, 1).
std::uint64_t seed_for_splitmix_output(std::uint64_t output) {
  const auto inverse = [](std::uint64_t m) {  // m odd: Newton's iteration modulo 2^64
    std::uint64_t x = m;
    for (int i = 0; i < 6; ++i) x *= 2 - m * x;
    return x;
  };
  const auto unshift = [](std::uint64_t y, int shift) {  // inverts y = x ^ (x >> shift)
    std::uint64_t x = y;
    for (int i = 0; i < 64 / shift + 1; ++i) x = y ^ (x >> shift);
    return x;
  };
  std::uint64_t z = unshift(output, 31);
  z = unshift(z * inverse(0x94d049bb133111ebULL), 27);
  z = unshift(z * inverse(0xbf58476d1ce4e5b9ULL), 30);
  return z - 0x9e3779b97f4a7c15ULL;
}

TEST(SampleFromPmf, EdgesOfTheUnitIntervalLandOnNonZeroEntries) {
  const std::uint64_t top = seed_for_splitmix_output(~std::uint64_t{0});  // u = 1 - 2^-53
  const std::uint64_t bottom = seed_for_splitmix_output(0);               // u = 0
  std::vector<double> pmf{0.0, 0.0};
  pmf.insert(pmf.end(), 10, 0.1);  // sums to 0.9999999999999999 in double
  pmf.push_back(0.0);
  pmf.push_back(0.0);
  EXPECT_EQ(sample_from_pmf(pmf, top), 11U);
  EXPECT_EQ(sample_from_pmf(pmf, bottom), 2U);
  // 1.0 + 1e-17 == 1.0 in double: the tiny entries add nothing to the running sum, so
  // even the top draw stays on entry 0, and the trailing zero is never reached.
  const std::array<double, 4> tiny_tail{1.0, 1e-17, 1e-17, 0.0};
  EXPECT_EQ(sample_from_pmf(tiny_tail, top), 0U);
  EXPECT_EQ(sample_from_pmf(tiny_tail, bottom), 0U);
}

TEST(SampleFromPmf, NeverReturnsAZeroProbabilityEntry) {
  std::vector<double> pmf(10, 0.1);
  pmf[3] = 0.0;
  pmf.push_back(0.0);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100'000; ++i) {
    const std::size_t pick = sample_from_pmf(pmf, rng);
    ASSERT_TRUE(pick < 10U && pick != 3U) << pick;
  }
  for (std::uint64_t seed = 0; seed < 100'000; ++seed) {
    const std::size_t pick = sample_from_pmf(pmf, seed);
    ASSERT_TRUE(pick < 10U && pick != 3U) << pick;
  }
}

TEST(SampleFromPmf, SingleNonZeroEntryIsAlwaysPicked) {
  const std::array<double, 4> pmf{0.0, 0.0, 1.0, 0.0};
  std::mt19937_64 rng(11);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sample_from_pmf(pmf, rng), 2U);
  for (std::uint64_t seed = 0; seed < 1000; ++seed) ASSERT_EQ(sample_from_pmf(pmf, seed), 2U);
}

TEST(SampleFromPmf, RejectsBadPmfs) {
  std::mt19937_64 rng(1);
  const std::array<double, 2> zeros{0.0, 0.0};
  const std::array<double, 2> negative{1.0, -0.1};
  const std::array<double, 2> nan{kNaN, 1.0};
  const std::array<double, 2> inf{kInf, 1.0};
  EXPECT_NE(invalid_argument_message([&] { sample_from_pmf(zeros, rng); }).find("sum(pmf) = 0"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([&] { sample_from_pmf(negative, rng); })
                .find("pmf[1] = -0.1"),
            std::string::npos);
  EXPECT_THROW(sample_from_pmf(nan, rng), std::invalid_argument);
  EXPECT_THROW(sample_from_pmf(inf, std::uint64_t{4}), std::invalid_argument);
  EXPECT_THROW(sample_from_pmf(std::span<const double>{}, rng), std::invalid_argument);
}

// ---- argmax --------------------------------------------------------------------------

TEST(ArgmaxMasked, PicksTheLargestAllowed) {
  const std::array<double, 4> scores{0.5, 9.0, 2.0, 1.0};
  EXPECT_EQ(argmax_masked(scores, kAllAllowed), 1U);
  const std::array<std::uint8_t, 4> mask{1, 0, 1, 1};
  EXPECT_EQ(argmax_masked(scores, mask), 2U);
  const std::array<float, 3> float_scores{-1.0f, -0.5f, -3.0f};
  EXPECT_EQ(argmax_masked(float_scores, kAllAllowed), 1U);
}

TEST(ArgmaxMasked, MaskedActionsBehaveAsMinusInfinity) {
  // All allowed scores are -inf: one of them still wins, a masked one never does.
  const std::array<double, 3> scores{kInf, -kInf, -kInf};
  const std::array<std::uint8_t, 3> mask{0, 1, 1};
  EXPECT_EQ(argmax_masked(scores, mask), 1U);
}

TEST(ArgmaxMasked, TiesGoToTheLowestIndexWithoutRng) {
  const std::array<double, 5> scores{1.0, 4.0, 2.0, 4.0, 4.0};
  EXPECT_EQ(argmax_masked(scores, kAllAllowed), 1U);
  const std::array<std::uint8_t, 5> mask{1, 0, 1, 1, 1};
  EXPECT_EQ(argmax_masked(scores, mask), 3U);
}

TEST(ArgmaxMasked, TiesAreBrokenUniformlyWithRng) {
  const std::array<double, 6> scores{4.0, 1.0, 4.0, 4.0, 0.0, 4.0};
  const std::array<std::uint8_t, 6> mask{1, 1, 1, 0, 1, 1};  // ties: 0, 2, 5
  std::mt19937_64 rng(42);
  constexpr int kDraws = 60'000;
  std::array<int, 6> counts{};
  for (int i = 0; i < kDraws; ++i) ++counts[argmax_masked(scores, mask, &rng)];
  EXPECT_EQ(counts[1] + counts[3] + counts[4], 0);
  for (const std::size_t i : {0U, 2U, 5U}) {
    EXPECT_NEAR(static_cast<double>(counts[i]) / kDraws, 1.0 / 3, 0.01) << i;
  }
}

TEST(ArgmaxMasked, NoDrawWithoutATie) {
  const std::array<double, 3> scores{1.0, 3.0, 2.0};
  std::mt19937_64 rng(8);
  std::mt19937_64 untouched(8);
  EXPECT_EQ(argmax_masked(scores, kAllAllowed, &rng), 1U);
  EXPECT_EQ(rng(), untouched());
}

TEST(ArgmaxMasked, RejectsBadArguments) {
  const std::array<double, 2> scores{1.0, 2.0};
  const std::array<std::uint8_t, 2> none{0, 0};
  const std::array<std::uint8_t, 3> long_mask{1, 1, 1};
  EXPECT_NE(invalid_argument_message([&] { argmax_masked(scores, none); })
                .find("allows no action"),
            std::string::npos);
  EXPECT_THROW(argmax_masked(scores, long_mask), std::invalid_argument);
  const std::array<double, 2> with_nan{kNaN, 1.0};
  EXPECT_THROW(argmax_masked(with_nan, kAllAllowed), std::invalid_argument);
  EXPECT_THROW(argmax_masked(std::span<const double>{}, kAllAllowed), std::invalid_argument);
}

}  // namespace
}  // namespace forkcast::policy
