// Tests of service/src/decision_log.hpp on a real PostgreSQL (tests/db's shared instance):
// queued decisions are stored as they were queued, wait_stored waits for them (and times
// out for one never queued), a full queue refuses instead of growing while the database
// is down (and what it accepted is stored once it is back), a bad decision is dropped
// alone, and stop() stores what was accepted.
#include "decision_log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "forkcast/db/database.hpp"
#include "metrics.hpp"
#include "pg_test_support.hpp"
#include "shipped_world.hpp"

namespace svc = forkcast::service;
namespace fe = forkcast::env;
namespace db = forkcast::db;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }

// A canonical UUID unique within this process (the shared instance belongs to it).
std::string new_event_id() {
  static unsigned long long counter = 0;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012llx", static_cast<unsigned>(::getpid()), ++counter);
  return buf;
}

class DecisionLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = db::testing::open_database(db::testing::shared_instance().url());
    db::NewUser user;
    user.token_sha256 = db::token_sha256("decision-log-" + db::testing::unique_suffix());
    user_id_ = database_->users().create(user).id;
  }

  std::unique_ptr<svc::DecisionLog> log(std::size_t capacity = 64) {
    return std::make_unique<svc::DecisionLog>(database_->decisions(), catalog(), capacity, metrics_);
  }

  // A decision over catalog meals 3, 1 and 4 with `k` in its numbers, so that rows differ.
  svc::PendingDecision decision(int k) const {
    svc::PendingDecision d;
    d.event_id = new_event_id();
    d.user_id = user_id_;
    d.decided_at = db::now_timestamp();
    d.slot = fe::Slot::dinner;
    d.model_version = "test-model";
    d.epsilon = 0.25;
    d.candidates = {3, 1, 4};
    d.scores = {0.5F, 1.5F + static_cast<float>(k), -2.25F};
    d.probabilities = {0.125, 0.75, 0.125};
    d.chosen = 1;
    d.greedy = 1;
    d.ranked = {1, 0};
    for (std::size_t i = 0; i < d.observation.size(); ++i) d.observation[i] = static_cast<float>(i) / 8.0F;
    d.draw_seed = 1000U + static_cast<std::uint64_t>(k);
    d.step = k;
    d.n = 2;
    return d;
  }

  double failed() { return metrics_.decisions_log_failed().Value(); }

  svc::Metrics metrics_{std::vector<std::string_view>{}};
  std::unique_ptr<db::Database> database_;
  std::string user_id_;
};

}  // namespace

TEST_F(DecisionLogTest, ToStoredNamesMealsByCatalogId) {
  const auto pending = decision(7);
  const db::Decision row = svc::to_stored(pending, svc::meal_ids_of(catalog()));
  EXPECT_EQ(row.event_id, pending.event_id);
  const auto& n = row.logged;
  EXPECT_EQ(n.user_id, user_id_);
  EXPECT_EQ(n.slot, db::Slot::dinner);
  ASSERT_EQ(n.candidates.size(), 3U);
  EXPECT_EQ(n.candidates[0], catalog().meals()[3].id);
  EXPECT_EQ(n.candidates[1], catalog().meals()[1].id);
  EXPECT_EQ(n.candidates[2], catalog().meals()[4].id);
  EXPECT_EQ(n.chosen, catalog().meals()[1].id);
  EXPECT_EQ(n.ranked, (std::vector<std::string>{catalog().meals()[1].id, catalog().meals()[3].id}));
  EXPECT_EQ(n.probabilities, pending.probabilities);
  ASSERT_EQ(n.scores.size(), 3U);
  EXPECT_EQ(n.scores[1], 8.5);
  ASSERT_EQ(n.state_features.size(), static_cast<std::size_t>(fe::kObservationSize));
  EXPECT_EQ(n.state_features[8], 1.0);
  EXPECT_EQ(n.context.at("draw_seed"), 1007);
  EXPECT_EQ(n.context.at("greedy"), catalog().meals()[1].id);
  EXPECT_EQ(n.context.at("step"), 7);
  EXPECT_EQ(n.epsilon, 0.25);
}

TEST_F(DecisionLogTest, QueuedDecisionsAreStoredAsTheyWereQueued) {
  auto decisions = log();
  EXPECT_EQ(decisions->last_enqueued(), 0U);
  std::vector<std::string> ids;
  std::uint64_t previous = 0;
  for (int k = 0; k < 5; ++k) {
    auto d = decision(k);
    ids.push_back(d.event_id);
    const std::uint64_t sequence = decisions->enqueue(std::move(d)).sequence;
    EXPECT_GT(sequence, previous);
    previous = sequence;
  }
  EXPECT_EQ(decisions->last_enqueued(), previous);
  ASSERT_TRUE(decisions->wait_stored(previous, Clock::now() + 10s));
  EXPECT_EQ(decisions->queued(), 0U);
  for (int k = 0; k < 5; ++k) {
    const auto stored = database_->decisions().find(ids[static_cast<std::size_t>(k)]);
    ASSERT_TRUE(stored) << k;
    const auto& n = stored->logged;
    EXPECT_EQ(n.user_id, user_id_);
    EXPECT_EQ(n.slot, db::Slot::dinner);
    EXPECT_EQ(n.model_version, "test-model");
    EXPECT_EQ(n.chosen, catalog().meals()[1].id);
    EXPECT_EQ(n.candidates.size(), 3U);
    EXPECT_EQ(n.probabilities, (std::vector<double>{0.125, 0.75, 0.125}));
    EXPECT_EQ(n.scores[1], 1.5 + k);
    EXPECT_EQ(n.state_features.size(), static_cast<std::size_t>(fe::kObservationSize));
    EXPECT_EQ(n.context.at("step"), k);
  }
  EXPECT_EQ(database_->decisions().count_for_user(user_id_), 5);
  EXPECT_EQ(metrics_.decisions_logged().Value(), 5.0);
  EXPECT_EQ(failed(), 0.0);
}

TEST_F(DecisionLogTest, WaitingForADecisionNeverQueuedTimesOut) {
  auto decisions = log();
  const std::uint64_t sequence = decisions->enqueue(decision(0)).sequence;
  ASSERT_TRUE(decisions->wait_stored(sequence, Clock::now() + 10s));
  EXPECT_TRUE(decisions->wait_stored(sequence, Clock::now()));  // stored already: no wait
  const auto start = Clock::now();
  EXPECT_FALSE(decisions->wait_stored(sequence + 1, start + 150ms));
  EXPECT_GE(Clock::now() - start, 150ms);
}

TEST_F(DecisionLogTest, WhileTheDatabaseIsDownAFullQueueRefusesInsteadOfGrowing) {
  db::testing::TestInstance pg;  // a server of this test's own, stopped and started below
  const auto database = db::testing::open_database(pg.url(), 2);
  db::NewUser user;
  user.token_sha256 = db::token_sha256("decision-log-down-" + db::testing::unique_suffix());
  user_id_ = database->users().create(user).id;
  svc::DecisionLog decisions(database->decisions(), catalog(), /*capacity=*/3, metrics_);

  pg.instance().stop();
  std::vector<std::string> accepted;
  std::uint64_t last = 0;
  for (int k = 0; k < 3; ++k) {
    auto d = decision(k);
    accepted.push_back(d.event_id);
    last = decisions.enqueue(std::move(d)).sequence;
    ASSERT_GT(last, 0U) << k;
  }
  // The storer keeps the batch and retries: the queue holds three, the fourth is refused at once.
  auto refused = decision(3);
  const std::string refused_id = refused.event_id;
  const auto start = Clock::now();
  EXPECT_EQ(decisions.enqueue(std::move(refused)).sequence, 0U);
  EXPECT_EQ(decisions.enqueue(decision(4)).sequence, 0U);
  EXPECT_LT(Clock::now() - start, 1s);  // never blocks on the database
  EXPECT_EQ(decisions.queued(), 3U);
  EXPECT_EQ(decisions.last_enqueued(), last);
  EXPECT_EQ(failed(), 2.0);
  EXPECT_FALSE(decisions.wait_stored(last, Clock::now() + 300ms));

  pg.instance().start();
  ASSERT_TRUE(decisions.wait_stored(last, Clock::now() + 20s));
  EXPECT_EQ(decisions.queued(), 0U);
  for (const auto& id : accepted) EXPECT_TRUE(database->decisions().find(id)) << id;
  EXPECT_FALSE(database->decisions().find(refused_id));
  EXPECT_EQ(failed(), 2.0);  // the three waited, none was lost
  // With room again, decisions are accepted.
  const std::uint64_t again = decisions.enqueue(decision(5)).sequence;
  EXPECT_GT(again, last);
  EXPECT_TRUE(decisions.wait_stored(again, Clock::now() + 10s));
  decisions.stop(Clock::now() + 5s);
}

TEST_F(DecisionLogTest, ABadDecisionIsDroppedAloneAndCounted) {
  auto decisions = log();
  auto good_a = decision(0), bad_pmf = decision(1), unknown_user = decision(2), good_b = decision(3);
  bad_pmf.probabilities = {0.25, 0.25, 0.25};              // no pmf: refused before any SQL
  unknown_user.user_id = "01900000-0000-7000-8000-00000000dead";  // refused by the foreign key
  const std::vector<std::string> ids{good_a.event_id, bad_pmf.event_id, unknown_user.event_id, good_b.event_id};
  for (auto* d : {&good_a, &bad_pmf, &unknown_user, &good_b}) ASSERT_GT(decisions->enqueue(std::move(*d)).sequence, 0U);
  // A dropped decision counts as handled: waiting for the last one does not hang.
  ASSERT_TRUE(decisions->wait_stored(decisions->last_enqueued(), Clock::now() + 10s));
  EXPECT_TRUE(database_->decisions().find(ids[0]));
  EXPECT_FALSE(database_->decisions().find(ids[1]));
  EXPECT_FALSE(database_->decisions().find(ids[2]));
  EXPECT_TRUE(database_->decisions().find(ids[3]));
  EXPECT_EQ(failed(), 2.0);
  EXPECT_EQ(metrics_.decisions_logged().Value(), 2.0);
}

TEST_F(DecisionLogTest, StopStoresWhatWasAcceptedThenRefuses) {
  auto decisions = log();
  std::vector<std::string> ids;
  for (int k = 0; k < 20; ++k) {
    auto d = decision(k);
    ids.push_back(d.event_id);
    ASSERT_GT(decisions->enqueue(std::move(d)).sequence, 0U);
  }
  decisions->stop(Clock::now() + 10s);
  for (const auto& id : ids) EXPECT_TRUE(database_->decisions().find(id)) << id;
  EXPECT_EQ(decisions->enqueue(decision(99)).sequence, 0U);
  EXPECT_EQ(failed(), 1.0);
}
