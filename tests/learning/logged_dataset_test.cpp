// The logged dataset (learning/logged_dataset.hpp): decisions become rows with their
// candidates as catalog indices, consecutive decisions of a user become transitions (the
// next one's row as the next state, discount gamma), decisions after `until` are kept only
// as next states, and every unusable row is skipped and counted by its reason.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/observation.hpp"
#include "forkcast/learning/logged_dataset.hpp"

namespace fl = forkcast::learning;
namespace fdb = forkcast::db;
namespace fe = forkcast::env;
using namespace std::chrono_literals;

namespace {

const fdb::Timestamp kT0 = fdb::Timestamp(std::chrono::microseconds(1'900'000'000'000'000LL));

const fe::Catalog& catalog() {
  static const fe::Catalog c = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  return c;
}

std::string event(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "01900000-0000-7000-8000-%012d", n);
  return buf;
}

// A decision of `user` among the first three meals of the catalog, the second chosen.
fdb::JoinedDecision joined(const std::string& user, int n, fdb::Timestamp at, fe::Slot slot = fe::Slot::lunch) {
  fdb::JoinedDecision j;
  j.decision.event_id = event(n);
  auto& l = j.decision.logged;
  l.user_id = user;
  l.decided_at = at;
  l.slot = static_cast<fdb::Slot>(slot);
  l.model_version = "m";
  l.policy = "epsilon_greedy";
  l.epsilon = 0.3;
  const auto& meals = catalog().meals();
  l.candidates = {meals[0].id, meals[1].id, meals[2].id};
  l.probabilities = {0.1, 0.8, 0.1};
  l.scores = {0.0, 1.0, 0.5};
  l.chosen = meals[1].id;
  l.state_features.assign(fe::kObservationSize, 0.0);
  l.state_features[static_cast<std::size_t>(fe::kObsSlot + static_cast<int>(slot))] = 1.0;
  l.state_features[fe::kObservationSize - 1] = n;  // tells rows apart
  l.candidate_features = {0.0, 0.25, 0.5};
  l.candidate_feature_dim = 1;
  l.context = {{"catalog", catalog().content_hash().substr(0, 16)}, {"candidate_features", "recency"}};
  return j;
}

}  // namespace

TEST(LoggedDataset, ConsecutiveDecisionsOfAUserAreTransitionsAndTheLastBeforeUntilBootstrapsFromALaterOne) {
  fl::DatasetBuilder builder(catalog(), {}, {.gamma = 0.9, .until = kT0 + 2h});
  std::vector<fdb::JoinedDecision> batch = {joined("alice", 1, kT0), joined("bob", 2, kT0 + 10min),
                                            joined("alice", 3, kT0 + 1h), joined("alice", 4, kT0 + 3h),
                                            joined("bob", 5, kT0 + 4h)};
  batch[0].next_event_id = event(3);
  batch[2].next_event_id = event(4);  // after until: a next state only
  batch[0].feedback.events = 1;
  batch[0].feedback.accepted = true;
  builder.add(std::span(batch).first(2));
  builder.add(std::span(batch).subspan(2));  // a transition's next state may come in a later batch
  const fl::DatasetStats stats = builder.stats();
  const fl::LoggedDataset data = std::move(builder).finish();

  EXPECT_EQ(stats.decisions, 5);
  EXPECT_EQ(stats.transitions, 3);
  EXPECT_EQ(stats.rows, 4);         // bob's 5 is after until and nobody's next state
  EXPECT_EQ(stats.after_until, 2);  // 4 (kept as a next state) and 5 (dropped)
  EXPECT_EQ(stats.with_next, 2);
  EXPECT_EQ(stats.next_unusable, 0);
  ASSERT_EQ(data.transitions.size(), 3U);
  const auto& a1 = data.transitions[0];
  const auto& b2 = data.transitions[1];
  const auto& a3 = data.transitions[2];
  EXPECT_EQ(data.event_id[static_cast<std::size_t>(a1.next_row)], event(3));
  EXPECT_FLOAT_EQ(a1.discount, 0.9F);
  EXPECT_TRUE(a1.accepted);
  EXPECT_FLOAT_EQ(a1.reward, 1.0F);  // MealSim's reward_accept; lunch ends no day
  EXPECT_EQ(b2.next_row, -1);
  EXPECT_EQ(b2.discount, 0.0F);
  EXPECT_EQ(b2.reward, 0.0F);
  EXPECT_EQ(data.event_id[static_cast<std::size_t>(a3.next_row)], event(4));
  EXPECT_EQ(data.observation(a3.next_row)[fe::kObservationSize - 1], 4.0F);

  // Rows hold what the policy saw, as catalog indices.
  EXPECT_EQ(data.candidates_of(a1.row).size(), 3U);
  EXPECT_EQ(data.candidates_of(a1.row)[2], 2);
  EXPECT_EQ(data.chosen_meal(a1.row), 1);
  EXPECT_FLOAT_EQ(data.recency_of(a1.row)[1], 0.25F);
  EXPECT_FLOAT_EQ(data.propensities_of(a1.row)[1], 0.8F);
  EXPECT_FLOAT_EQ(data.epsilon[static_cast<std::size_t>(a1.row)], 0.3F);
  EXPECT_EQ(data.user_key[static_cast<std::size_t>(a1.row)], fl::user_key_of("alice"));
  EXPECT_NE(data.user_key[static_cast<std::size_t>(b2.row)], fl::user_key_of("alice"));
}

TEST(LoggedDataset, UnusableDecisionsAreSkippedByReasonAndAPreviousTransitionEndsThere) {
  fl::DatasetBuilder builder(catalog(), {}, {.gamma = 0.5, .until = kT0 + 24h});
  std::vector<fdb::JoinedDecision> batch;
  batch.push_back(joined("u", 1, kT0));
  batch.back().next_event_id = event(2);
  batch.push_back(joined("u", 2, kT0 + 1h));
  batch.back().decision.logged.context["catalog"] = "0123456789abcdef";  // another catalog
  batch.push_back(joined("u", 3, kT0 + 2h));
  batch.back().decision.logged.candidate_features.clear();  // an older binary: no recency
  batch.back().decision.logged.candidate_feature_dim = 0;
  batch.push_back(joined("u", 4, kT0 + 3h));
  batch.back().decision.logged.state_features.pop_back();
  batch.push_back(joined("u", 5, kT0 + 4h));
  batch.back().decision.logged.candidates[0] = "no_such_meal";
  batch.push_back(joined("u", 6, kT0 + 5h));
  batch.back().decision.logged.probabilities = {0.5, 0.5, 0.5};
  batch.push_back(joined("u", 7, kT0 + 6h));
  batch.back().decision.logged.probabilities = {0.5, 0.0, 0.5};  // the chosen meal could not be drawn
  batch.push_back(joined("u", 8, kT0 + 7h));
  batch.back().decision.logged.context.erase("catalog");  // unversioned rows resolve by meal id
  builder.add(batch);
  const fl::DatasetStats s = builder.stats();
  const fl::LoggedDataset data = std::move(builder).finish();
  EXPECT_EQ(s.skipped_other_catalog, 1);
  EXPECT_EQ(s.skipped_no_recency, 1);
  EXPECT_EQ(s.skipped_bad_observation, 1);
  EXPECT_EQ(s.skipped_unknown_meal, 1);
  EXPECT_EQ(s.skipped_bad_probabilities, 2);
  EXPECT_EQ(s.skipped(), 6);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.transitions, 2);
  EXPECT_EQ(s.next_unusable, 1);
  EXPECT_EQ(data.transitions[0].next_row, -1);
  EXPECT_EQ(data.transitions[0].discount, 0.0F);
  // A skipped row leaves nothing behind: the columns stay aligned.
  EXPECT_EQ(data.observations.size(), 2U * fe::kObservationSize);
  EXPECT_EQ(data.candidate_begin.size(), 3U);
  EXPECT_EQ(data.candidates.size(), 6U);
  EXPECT_EQ(data.event_id[1], event(8));
}

TEST(LoggedDataset, TheRewardIsMealSimsTermsOrTheClientsOwnWhenConfigured) {
  const forkcast::config::MealSimConfig mealsim;
  fdb::JoinedDecision rated = joined("u", 1, kT0);
  rated.feedback.events = 2;
  rated.feedback.accepted = rated.feedback.eaten = true;
  rated.feedback.rating = 5;
  rated.feedback.reward = 7.5;
  fdb::JoinedDecision declined = joined("u", 2, kT0 + 1h);
  declined.feedback.events = 1;
  declined.feedback.rejected = true;
  declined.feedback.rating = 1;
  for (const auto source : {fl::RewardSource::computed, fl::RewardSource::client}) {
    fl::DatasetBuilder builder(catalog(), mealsim, {.gamma = 0.9, .until = kT0 + 2h, .reward_source = source});
    builder.add(std::vector{rated, declined});
    const fl::LoggedDataset data = std::move(builder).finish();
    ASSERT_EQ(data.transitions.size(), 2U);
    if (source == fl::RewardSource::computed) {
      EXPECT_FLOAT_EQ(data.transitions[0].reward, static_cast<float>(mealsim.reward_accept + mealsim.reward_taste));
    } else {
      EXPECT_FLOAT_EQ(data.transitions[0].reward, 7.5F);  // the client's
    }
    // No client reward sent: the computed one, also with reward_source client.
    EXPECT_FLOAT_EQ(data.transitions[1].reward, static_cast<float>(-mealsim.reward_taste));
    EXPECT_FALSE(data.transitions[1].accepted);
  }
  EXPECT_EQ(fl::reward_source_from_name("client"), fl::RewardSource::client);
  try {
    (void)fl::reward_source_from_name("clients");
    FAIL() << "accepted a bad name";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "learning.reward_source: 'clients' (allowed: computed, client)");
  }
  EXPECT_THROW(fl::DatasetBuilder(catalog(), mealsim, {.gamma = 1.5}), std::invalid_argument);
}

TEST(LoggedDataset, AtTheDaysLastSlotTheNutritionTermUsesTheMealTheUserLoggedInstead) {
  const forkcast::config::MealSimConfig mealsim;
  fdb::JoinedDecision snack = joined("u", 1, kT0, fe::Slot::snack);
  auto& obs = snack.decision.logged.state_features;
  obs[fe::kObsKcalTarget] = 2000.0 / 3000.0;
  obs[fe::kObsProteinTarget] = 100.0 / 200.0;
  obs[fe::kObsSodiumLimit] = 2300.0 / 2300.0;
  obs[fe::kObsKcal] = 0.8;
  obs[fe::kObsProtein] = 0.8;
  obs[fe::kObsSodium] = 0.5;
  snack.feedback.events = 1;
  snack.feedback.rejected = true;
  snack.logged_meal_id = catalog().meals()[2].id;
  snack.logged_servings = 1.0;
  fl::DatasetBuilder builder(catalog(), mealsim, {.gamma = 0.9, .until = kT0 + 1h});
  builder.add(std::vector{snack});
  const fl::LoggedDataset data = std::move(builder).finish();
  ASSERT_EQ(data.transitions.size(), 1U);
  const std::vector<float> observation(obs.begin(), obs.end());
  fl::LoggedStep step;
  step.observation = observation;
  step.slot = fe::Slot::snack;
  step.eaten_meal = 2;
  const fl::LoggedReward expected = fl::logged_reward(catalog(), mealsim, step);
  ASSERT_TRUE(expected.nutrition_known);
  EXPECT_GT(expected.nutrition, 0.0);
  EXPECT_FLOAT_EQ(data.transitions[0].reward, static_cast<float>(expected.total));
}

TEST(LoggedDataset, ARowKeepsTheSoftmaxTemperatureItWasServedWith) {
  fl::DatasetBuilder builder(catalog(), {}, {.gamma = 0.9, .until = kT0 + 2h});
  fdb::JoinedDecision softmax = joined("u", 1, kT0);
  softmax.decision.logged.policy = "softmax_epsilon";
  softmax.decision.logged.context["temperature"] = 0.25;
  fdb::JoinedDecision greedy = joined("u", 2, kT0 + 1h);  // no temperature: epsilon-greedy
  builder.add(std::vector{softmax, greedy});
  const fl::LoggedDataset data = std::move(builder).finish();
  ASSERT_EQ(data.temperature.size(), 2U);
  EXPECT_FLOAT_EQ(data.temperature[0], 0.25F);
  EXPECT_EQ(data.temperature[1], 0.0F);
}
