// Tests of agent/replay.hpp: the ring (wrap-around, what each row keeps), the per-candidate
// extras kept beside the observation, uniform and prioritized sampling against the
// proportions they promise (fixed seeds, tolerances a few standard errors wide), priority
// updates and importance weights, and the state a checkpoint saves and restores.
#include "forkcast/agent/replay.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "error_message.hpp"

namespace fa = forkcast::agent;

namespace {

fa::ReplaySpec fixed_spec(std::size_t capacity, bool prioritized = false, double alpha = 1.0) {
  fa::ReplaySpec s;
  s.capacity = capacity;
  s.observation_size = 2;
  s.prioritized = prioritized;
  s.alpha = alpha;
  s.priority_epsilon = 0.0;
  return s;
}

// Transition k of a fixed-action replay: observation (k, -k), next (k + 0.5, 1), action k % 3,
// reward 10 k, discount 0.9 (0 for every fifth: terminal).
void add_fixed(fa::ReplayBuffer& replay, int k) {
  const float x = static_cast<float>(k);
  const std::vector<float> obs{x, -x}, next{x + 0.5F, 1.0F};
  replay.add(obs, k % 3, {}, 10.0F * x, k % 5 == 4 ? 0.0F : 0.9F, next);
}

// How often each row of `replay` is drawn over `rounds` batches of `batch` rows.
std::vector<double> frequencies(const fa::ReplayBuffer& replay, std::size_t batch, int rounds, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  fa::ReplayBatch out;
  std::vector<double> counts(replay.capacity(), 0.0);
  for (int r = 0; r < rounds; ++r) {
    replay.sample(batch, rng, 0.4, out);
    for (const std::size_t i : out.indices) counts[i] += 1.0;
  }
  for (auto& c : counts) c /= static_cast<double>(batch) * rounds;
  return counts;
}

using forkcast::test::error_message;

}  // namespace

TEST(Replay, BadSpecsAreRefusedNamingTheField) {
  auto spec = fixed_spec(4);
  spec.capacity = 0;
  EXPECT_NE(error_message([&] { fa::ReplayBuffer b(spec); }).find("capacity"), std::string::npos);
  spec = fixed_spec(4);
  spec.observation_size = 0;
  EXPECT_NE(error_message([&] { fa::ReplayBuffer b(spec); }).find("observation_size: 0"), std::string::npos);
  spec = fixed_spec(4);
  spec.max_candidates = 32768;
  EXPECT_NE(error_message([&] { fa::ReplayBuffer b(spec); }).find("max_candidates: 32768"), std::string::npos);
  spec = fixed_spec(4);
  spec.max_candidates = 3;
  spec.candidate_extras = 0;
  EXPECT_NE(error_message([&] { fa::ReplayBuffer b(spec); }).find("candidate_extras: 0"), std::string::npos);
  spec.candidate_extras = 65;
  EXPECT_NE(error_message([&] { fa::ReplayBuffer b(spec); }).find("candidate_extras: 65"), std::string::npos);
}

TEST(Replay, RingOverwritesTheOldestRowWhenFull) {
  fa::ReplayBuffer replay(fixed_spec(3));
  EXPECT_EQ(replay.size(), 0U);
  for (int k = 0; k < 2; ++k) add_fixed(replay, k);
  EXPECT_EQ(replay.size(), 2U);
  EXPECT_EQ(replay.state().next, 2U);
  for (int k = 2; k < 5; ++k) add_fixed(replay, k);
  EXPECT_EQ(replay.size(), 3U);  // bounded by capacity
  EXPECT_EQ(replay.capacity(), 3U);
  EXPECT_EQ(replay.state().next, 2U);  // 5 adds into 3 rows: the next write goes to row 2
  // Rows 0 and 1 now hold transitions 3 and 4; row 2 still holds transition 2.
  const int expected_k[3] = {3, 4, 2};
  for (std::size_t row = 0; row < 3; ++row) {
    const int k = expected_k[row];
    const float x = static_cast<float>(k);
    EXPECT_EQ(replay.observation(row)[0], x) << row;
    EXPECT_EQ(replay.observation(row)[1], -x) << row;
    EXPECT_EQ(replay.next_observation(row)[0], x + 0.5F) << row;
    EXPECT_EQ(replay.action(row), k % 3) << row;
    EXPECT_EQ(replay.reward(row), 10.0F * x) << row;
    EXPECT_EQ(replay.discount(row), k % 5 == 4 ? 0.0F : 0.9F) << row;
  }
  // A fixed-action replay keeps no extras or candidates.
  EXPECT_TRUE(replay.action_extras(0).empty());
  EXPECT_TRUE(replay.next_candidates(0).empty());
  EXPECT_TRUE(replay.next_extras(0).empty());
}

TEST(Replay, ObservationsOfTheWrongSizeAreRefused) {
  fa::ReplayBuffer replay(fixed_spec(3));
  const std::vector<float> good{1, 2}, bad{1, 2, 3};
  EXPECT_THROW(replay.add(bad, 0, {}, 0, 1, good), std::invalid_argument);
  EXPECT_THROW(replay.add(good, 0, {}, 0, 1, bad), std::invalid_argument);
  EXPECT_EQ(replay.size(), 0U);  // nothing half-written
}

TEST(Replay, CandidateExtrasAreKeptBesideTheObservation) {
  fa::ReplaySpec spec = fixed_spec(2);
  spec.max_candidates = 4;
  spec.candidate_extras = 2;
  fa::ReplayBuffer replay(spec);
  const std::vector<float> obs{1, 2}, next{3, 4};
  const std::vector<std::int16_t> three{7, 11, 13};
  const std::vector<float> three_extras{0.1F, 0.2F, 1.1F, 1.2F, 2.1F, 2.2F};
  replay.add(obs, 5, std::vector<float>{0.5F, 0.25F}, 1.0F, 0.9F, next, three, three_extras);
  const std::vector<std::int16_t> one{9};
  replay.add(obs, 6, std::vector<float>{0.75F, 0.125F}, 2.0F, 0.9F, next, one, std::vector<float>{9.1F, 9.2F});

  ASSERT_EQ(replay.action_extras(0).size(), 2U);
  EXPECT_EQ(replay.action_extras(0)[0], 0.5F);
  EXPECT_EQ(replay.action_extras(0)[1], 0.25F);
  EXPECT_EQ(replay.action_extras(1)[0], 0.75F);
  ASSERT_EQ(replay.next_candidates(0).size(), 3U);
  ASSERT_EQ(replay.next_extras(0).size(), 6U);
  for (std::size_t c = 0; c < 3; ++c) {
    EXPECT_EQ(replay.next_candidates(0)[c], three[c]);
    EXPECT_EQ(replay.next_extras(0)[2 * c], three_extras[2 * c]);
    EXPECT_EQ(replay.next_extras(0)[2 * c + 1], three_extras[2 * c + 1]);
  }
  ASSERT_EQ(replay.next_candidates(1).size(), 1U);
  EXPECT_EQ(replay.next_candidates(1)[0], 9);
  ASSERT_EQ(replay.next_extras(1).size(), 2U);
  EXPECT_EQ(replay.next_extras(1)[1], 9.2F);

  // Overwriting row 0 with fewer candidates shows only the new ones, none of the old.
  replay.add(obs, 1, std::vector<float>{0, 0}, 0.0F, 0.0F, next, std::vector<std::int16_t>{}, std::vector<float>{});
  EXPECT_TRUE(replay.next_candidates(0).empty());
  EXPECT_TRUE(replay.next_extras(0).empty());
  EXPECT_EQ(replay.next_candidates(1).size(), 1U);  // the other row is untouched
}

TEST(Replay, CandidateRowsOfTheWrongShapeAreRefused) {
  fa::ReplaySpec spec = fixed_spec(2);
  spec.max_candidates = 2;
  spec.candidate_extras = 1;
  fa::ReplayBuffer replay(spec);
  const std::vector<float> obs{1, 2}, one_extra{0.5F};
  const std::vector<std::int16_t> two{1, 2}, three{1, 2, 3};
  // Extras must be candidate_extras per next candidate.
  EXPECT_THROW(replay.add(obs, 0, one_extra, 0, 1, obs, two, one_extra), std::invalid_argument);
  // At most max_candidates.
  EXPECT_THROW(replay.add(obs, 0, one_extra, 0, 1, obs, three, std::vector<float>(3, 0.0F)), std::invalid_argument);
  // The chosen candidate's extras: exactly candidate_extras.
  EXPECT_THROW(replay.add(obs, 0, std::vector<float>{}, 0, 1, obs, two, std::vector<float>(2, 0.0F)), std::invalid_argument);
  EXPECT_EQ(replay.size(), 0U);
}

TEST(Replay, UniformSamplingDrawsStoredRowsEvenlyAndIsSeeded) {
  fa::ReplayBuffer replay(fixed_spec(8));
  for (int k = 0; k < 5; ++k) add_fixed(replay, k);
  EXPECT_THROW(
      [] {
        fa::ReplayBuffer empty(fixed_spec(8));
        std::mt19937_64 rng(1);
        fa::ReplayBatch b;
        empty.sample(4, rng, 0.4, b);
      }(),
      std::invalid_argument);

  const auto f = frequencies(replay, 100, 500, 3);  // 50 000 draws: standard error 0.0018
  for (std::size_t row = 0; row < 5; ++row) EXPECT_NEAR(f[row], 0.2, 0.01) << row;
  for (std::size_t row = 5; row < 8; ++row) EXPECT_EQ(f[row], 0.0) << "row " << row << " holds nothing yet";

  std::mt19937_64 a(17), b(17), c(18);
  fa::ReplayBatch ba, bb, bc;
  replay.sample(64, a, 0.4, ba);
  replay.sample(64, b, 0.4, bb);
  replay.sample(64, c, 0.4, bc);
  EXPECT_EQ(ba.indices, bb.indices);
  EXPECT_NE(ba.indices, bc.indices);
  ASSERT_EQ(ba.weights.size(), 64U);
  for (const float w : ba.weights) EXPECT_EQ(w, 1.0F);  // uniform replay: no correction
}

TEST(Replay, PrioritizedSamplingFollowsPriorityToTheAlpha) {
  for (const double alpha : {1.0, 0.5}) {
    // Capacity 5 is not a power of two: the sum tree's unused leaves must never be drawn.
    fa::ReplayBuffer replay(fixed_spec(5, true, alpha));
    for (int k = 0; k < 4; ++k) add_fixed(replay, k);
    const std::vector<std::size_t> rows{0, 1, 2, 3};
    const std::vector<float> td{1.0F, -2.0F, 3.0F, -4.0F};  // |TD error| is the priority
    replay.update_priorities(rows, td);
    double total = 0;
    for (const float e : td) total += std::pow(std::abs(e), alpha);
    const auto f = frequencies(replay, 200, 250, 5);
    for (std::size_t row = 0; row < 4; ++row) {
      EXPECT_NEAR(f[row], std::pow(std::abs(td[row]), alpha) / total, 0.01) << "alpha " << alpha << " row " << row;
    }
    EXPECT_EQ(f[4], 0.0) << "alpha " << alpha;
  }
}

TEST(Replay, ImportanceWeightsUndoThePrioritization) {
  fa::ReplayBuffer replay(fixed_spec(4, true, 1.0));
  for (int k = 0; k < 4; ++k) add_fixed(replay, k);
  replay.update_priorities(std::vector<std::size_t>{0, 1, 2, 3}, std::vector<float>{1, 2, 3, 4});
  std::mt19937_64 rng(9);
  fa::ReplayBatch batch;
  // w_i = (N p_i)^-beta normalised by the batch's largest: with beta = 1 that is p_min / p_i
  // (a stratified batch of 100 contains every row).
  replay.sample(100, rng, 1.0, batch);
  std::vector<bool> seen(4, false);
  for (std::size_t k = 0; k < batch.indices.size(); ++k) {
    const std::size_t row = batch.indices[k];
    seen[row] = true;
    EXPECT_NEAR(batch.weights[k], 1.0 / static_cast<double>(row + 1), 1e-6) << row;
  }
  EXPECT_EQ(seen, std::vector<bool>(4, true));
  // beta = 0: no correction at all.
  replay.sample(100, rng, 0.0, batch);
  for (const float w : batch.weights) EXPECT_NEAR(w, 1.0F, 1e-6);
}

TEST(Replay, NewRowsGetTheLargestPrioritySeen) {
  fa::ReplayBuffer replay(fixed_spec(4, true, 1.0));
  add_fixed(replay, 0);
  add_fixed(replay, 1);
  replay.update_priorities(std::vector<std::size_t>{0, 1}, std::vector<float>{5.0F, 1.0F});
  EXPECT_EQ(replay.state().max_priority, 5.0);
  add_fixed(replay, 2);  // enters with priority 5, so that it is replayed soon
  const auto f = frequencies(replay, 200, 250, 11);
  EXPECT_NEAR(f[0], 5.0 / 11.0, 0.01);
  EXPECT_NEAR(f[1], 1.0 / 11.0, 0.01);
  EXPECT_NEAR(f[2], 5.0 / 11.0, 0.01);
  // Lowering a row's priority later moves its share with it.
  replay.update_priorities(std::vector<std::size_t>{2}, std::vector<float>{0.0F});
  const auto g = frequencies(replay, 200, 250, 12);
  EXPECT_EQ(g[2], 0.0);  // priority_epsilon is 0 here: a zero priority is never drawn
  EXPECT_NEAR(g[0], 5.0 / 6.0, 0.01);
}

TEST(Replay, UniformReplayIgnoresPriorityUpdates) {
  fa::ReplayBuffer replay(fixed_spec(4));
  for (int k = 0; k < 4; ++k) add_fixed(replay, k);
  replay.update_priorities(std::vector<std::size_t>{0}, std::vector<float>{100.0F});
  EXPECT_EQ(replay.state().max_priority, 1.0);
  const auto f = frequencies(replay, 100, 400, 13);
  for (std::size_t row = 0; row < 4; ++row) EXPECT_NEAR(f[row], 0.25, 0.01) << row;
}

TEST(Replay, StorageAndStateRestoredIntoAFreshBufferSampleTheSame) {
  fa::ReplaySpec spec = fixed_spec(6, true, 0.6);
  spec.max_candidates = 3;
  spec.priority_epsilon = 1e-5;
  fa::ReplayBuffer original(spec);
  const std::vector<float> obs{1, 2}, extra{0.5F};
  for (int k = 0; k < 8; ++k) {  // wraps once
    const std::vector<std::int16_t> next{static_cast<std::int16_t>(k % 4)};
    original.add(obs, k % 4, extra, static_cast<float>(k), 0.9F, obs, next, std::vector<float>{0.1F * static_cast<float>(k)});
  }
  original.update_priorities(std::vector<std::size_t>{1, 3}, std::vector<float>{7.0F, 0.5F});

  // What a checkpoint saves: the storage through the accessors, then the ring's state.
  fa::ReplayBuffer restored(spec);
  restored.observations() = original.observations();
  restored.next_observations() = original.next_observations();
  restored.actions() = original.actions();
  restored.action_extras() = original.action_extras();
  restored.rewards() = original.rewards();
  restored.discounts() = original.discounts();
  restored.candidates() = original.candidates();
  restored.candidate_extras() = original.candidate_extras();
  restored.candidate_counts() = original.candidate_counts();
  restored.priority_tree() = original.priority_tree();
  restored.restore_state(original.state());
  EXPECT_NO_THROW(restored.check_contents(4));
  EXPECT_EQ(restored.size(), original.size());
  EXPECT_EQ(restored.state().next, original.state().next);
  EXPECT_EQ(restored.state().max_priority, 7.0);

  std::mt19937_64 a(21), b(21);
  fa::ReplayBatch ba, bb;
  original.sample(32, a, 0.4, ba);
  restored.sample(32, b, 0.4, bb);
  EXPECT_EQ(ba.indices, bb.indices);
  EXPECT_EQ(ba.weights, bb.weights);
  // And they go on alike: the next add lands in the same row with the same priority.
  original.add(obs, 2, extra, 99.0F, 0.9F, obs, std::vector<std::int16_t>{1}, std::vector<float>{0.0F});
  restored.add(obs, 2, extra, 99.0F, 0.9F, obs, std::vector<std::int16_t>{1}, std::vector<float>{0.0F});
  EXPECT_EQ(original.priority_tree(), restored.priority_tree());
  EXPECT_EQ(restored.reward(original.state().next == 0 ? 5 : original.state().next - 1), 99.0F);
}

TEST(Replay, RestoredStateThatDoesNotFitIsRefused) {
  fa::ReplayBuffer replay(fixed_spec(4));
  EXPECT_THROW(replay.restore_state({5, 0, 1.0}), std::invalid_argument);  // size > capacity
  EXPECT_THROW(replay.restore_state({4, 4, 1.0}), std::invalid_argument);  // next outside the ring
  EXPECT_NO_THROW(replay.restore_state({4, 3, 1.0}));
}

TEST(Replay, CheckContentsNamesTheFirstBadRow) {
  fa::ReplaySpec spec = fixed_spec(4, true);
  spec.max_candidates = 2;
  const std::vector<float> obs{1, 2}, extra{0};
  const auto filled = [&] {
    auto r = std::make_unique<fa::ReplayBuffer>(spec);
    for (int k = 0; k < 3; ++k) r->add(obs, k, extra, 0, 1, obs, std::vector<std::int16_t>{1}, extra);
    return r;
  };
  EXPECT_NO_THROW(filled()->check_contents(3));
  // An action outside the bound: row 2 holds action 2, so a bound of 2 names it.
  EXPECT_NE(error_message([&] { filled()->check_contents(2); }).find("row 2: action 2"), std::string::npos);
  {
    auto r = filled();
    r->candidates()(1, 0) = 50;
    EXPECT_NE(error_message([&] { r->check_contents(3); }).find("row 1: next candidate 50"), std::string::npos);
  }
  {
    auto r = filled();
    r->candidate_counts()[0] = 3;  // more than max_candidates
    EXPECT_NE(error_message([&] { r->check_contents(3); }).find("row 0: 3 next candidates"), std::string::npos);
  }
  {
    auto r = filled();
    r->restore_state({3, 1, 1.0});  // not full, yet the next row is not the end
    EXPECT_NE(error_message([&] { r->check_contents(3); }).find("next row 1 must equal the size 3"), std::string::npos);
  }
  {
    auto r = filled();
    r->priority_tree()[1] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_NE(error_message([&] { r->check_contents(3); }).find("priority"), std::string::npos);
  }
}
