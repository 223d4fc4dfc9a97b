// The learning log (db/learning_log.hpp) against a real PostgreSQL: the join of decisions
// with their feedback (within the reward window only) and the user's next decision (within
// its window), batches that cover every decision once in order, the half-open range, the
// watermark's compare-and-set, and the learner lock (exclusive, released when its session
// ends, however it ends).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "forkcast/db/database.hpp"
#include "forkcast/db/learning_log.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::TestInstance;
using fdb::testing::unique_suffix;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A fixed origin far from now, so that the tests' decisions never mix with others'.
const fdb::Timestamp kT0 = fdb::Timestamp(std::chrono::microseconds(1'900'000'000'000'000LL));

std::string uuid_for(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "01900000-0000-7000-8000-%012d", n);
  return buf;
}

fdb::Decision decision_at(const std::string& user_id, int n, fdb::Timestamp at) {
  fdb::Decision d;
  d.event_id = uuid_for(n);
  auto& l = d.logged;
  l.user_id = user_id;
  l.decided_at = at;
  l.slot = fdb::Slot::lunch;
  l.model_version = "learning-test";
  l.policy = "epsilon_greedy";
  l.epsilon = 0.1;
  l.candidates = {"pad_thai_shrimp", "greek_salad", "lentil_soup"};
  l.scores = {1.25, -0.5, 0.1};
  l.probabilities = {0.9333333333333333, 0.03333333333333333, 0.03333333333333334};
  l.chosen = "greek_salad";
  l.ranked = {"greek_salad"};
  l.state_features = {0.5, 0.25, static_cast<double>(n)};
  l.candidate_features = {0.0, 0.5, 1.0};
  l.candidate_feature_dim = 1;
  l.context = {{"candidate_features", "recency"}};
  return d;
}

void feedback(fdb::Database& db, int n, fdb::Outcome outcome, fdb::Timestamp at, std::optional<int> rating = {},
              std::optional<double> reward = {}, const std::string& meal = "greek_salad") {
  fdb::NewFeedback f;
  f.event_id = uuid_for(n);
  f.meal_id = meal;
  f.outcome = outcome;
  f.rating = rating;
  f.reward = reward;
  f.received_at = at;
  f.idempotency_key = "learn-" + std::to_string(n) + "-" + unique_suffix();
  db.feedback().record(f);
}

std::vector<fdb::JoinedDecision> scan_all(fdb::LearningLog& log, const fdb::ScanRange& range,
                                          fdb::ScanStats* stats = nullptr) {
  std::vector<fdb::JoinedDecision> out;
  const auto s = log.scan(range, [&](std::span<const fdb::JoinedDecision> batch) {
    EXPECT_LE(batch.size(), static_cast<std::size_t>(range.batch_size));
    out.insert(out.end(), batch.begin(), batch.end());
  });
  if (stats) *stats = s;
  return out;
}

class LearningLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<fdb::Database>(fdb::DatabaseOptions{pg_.url(), 3, 2'000, 2, true});
    alice_ = db_->users().create({json{{"age", 30}}, fdb::token_sha256("a-" + unique_suffix())}).id;
    bob_ = db_->users().create({json{{"age", 40}}, fdb::token_sha256("b-" + unique_suffix())}).id;
  }
  TestInstance pg_;
  std::unique_ptr<fdb::Database> db_;
  std::string alice_, bob_;
};

}  // namespace

TEST_F(LearningLogTest, JoinsFeedbackWithinTheRewardWindowAndTheUsersNextDecision) {
  const std::vector<fdb::Decision> decisions = {
      decision_at(alice_, 1, kT0),
      decision_at(alice_, 2, kT0 + 10min),
      decision_at(alice_, 3, kT0 + 48h),
      decision_at(bob_, 4, kT0 + 5min),
  };
  ASSERT_EQ(db_->decisions().record_batch(decisions), 4U);
  // 1: accepted, rated 4 then 2 (the latest counts), two client rewards that add up.
  feedback(*db_, 1, fdb::Outcome::accepted, kT0 + 1min, 4, 0.25);
  feedback(*db_, 1, fdb::Outcome::eaten, kT0 + 3min, 2, 0.5);
  // 2: rejected, but only after the one-hour window: not counted.
  feedback(*db_, 2, fdb::Outcome::rejected, kT0 + 10min + 2h);
  // 2: the user logged what they ate instead (1.5 servings of the lentil soup).
  {
    fdb::NewMealLogEntry entry;
    entry.user_id = alice_;
    entry.meal_id = "lentil_soup";
    entry.slot = fdb::Slot::lunch;
    entry.eaten_at = kT0 + 40min;
    entry.servings = 1.5;
    entry.event_id = uuid_for(2);
    db_->meal_log().add(entry);
  }
  // 4: skipped within the window.
  feedback(*db_, 4, fdb::Outcome::skipped, kT0 + 6min, std::nullopt, std::nullopt, "lentil_soup");

  fdb::LearningLog log(db_->pool());
  fdb::ScanStats stats;
  const auto joined = scan_all(log, {kT0, kT0 + 72h, 1h, 24h, 100}, &stats);
  ASSERT_EQ(joined.size(), 4U);
  // Oldest first, across users.
  EXPECT_EQ(joined[0].decision.event_id, uuid_for(1));
  EXPECT_EQ(joined[1].decision.event_id, uuid_for(4));
  EXPECT_EQ(joined[2].decision.event_id, uuid_for(2));
  EXPECT_EQ(joined[3].decision.event_id, uuid_for(3));

  const auto& d1 = joined[0];
  EXPECT_EQ(d1.decision.logged.user_id, alice_);
  EXPECT_EQ(d1.decision.logged.candidate_feature_dim, 1);
  EXPECT_EQ(d1.decision.logged.candidate_features, (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_EQ(d1.feedback.events, 2);
  EXPECT_TRUE(d1.feedback.accepted);
  EXPECT_TRUE(d1.feedback.eaten);
  EXPECT_FALSE(d1.feedback.rejected);
  EXPECT_EQ(d1.feedback.rating, 2);
  ASSERT_TRUE(d1.feedback.reward);
  EXPECT_DOUBLE_EQ(*d1.feedback.reward, 0.75);
  EXPECT_EQ(d1.feedback.meal_id, "greek_salad");
  ASSERT_TRUE(d1.next_event_id);
  EXPECT_EQ(*d1.next_event_id, uuid_for(2));  // alice's next, not bob's (which came between)
  EXPECT_EQ(*d1.next_decided_at, kT0 + 10min);

  const auto& d4 = joined[1];
  EXPECT_EQ(d4.feedback.events, 1);
  EXPECT_TRUE(d4.feedback.skipped);
  EXPECT_FALSE(d4.feedback.accepted);
  EXPECT_EQ(d4.feedback.meal_id, "");  // a skip names no eaten meal
  EXPECT_FALSE(d4.feedback.rating);
  EXPECT_FALSE(d4.next_event_id);

  const auto& d2 = joined[2];
  EXPECT_EQ(d2.feedback.events, 0) << "feedback after the reward window was counted";
  EXPECT_FALSE(d2.feedback.rejected);
  EXPECT_FALSE(d2.next_event_id) << "a next decision two days later is outside the 24 h window";
  ASSERT_TRUE(d2.logged_meal_id);
  EXPECT_EQ(*d2.logged_meal_id, "lentil_soup");
  EXPECT_DOUBLE_EQ(d2.logged_servings, 1.5);
  EXPECT_FALSE(d1.logged_meal_id);
  EXPECT_FALSE(joined[3].next_event_id);

  EXPECT_EQ(stats.decisions, 4);
  EXPECT_EQ(stats.with_feedback, 2);
  EXPECT_EQ(stats.with_next, 1);

  // A wider reward window counts the late rejection; a wider next window links 2 -> 3.
  const auto wide = scan_all(log, {kT0, kT0 + 72h, 3h, 72h, 100});
  EXPECT_EQ(wide[2].feedback.events, 1);
  EXPECT_TRUE(wide[2].feedback.rejected);
  ASSERT_TRUE(wide[2].next_event_id);
  EXPECT_EQ(*wide[2].next_event_id, uuid_for(3));
}

TEST_F(LearningLogTest, BatchesCoverEveryDecisionOnceInOrderAndTheRangeIsHalfOpen) {
  std::vector<fdb::Decision> decisions;
  for (int i = 0; i < 23; ++i) decisions.push_back(decision_at(i % 2 ? alice_ : bob_, 100 + i, kT0 + i * 1min));
  decisions.push_back(decision_at(alice_, 200, kT0 + 23min));  // exactly at `to`: excluded
  decisions.push_back(decision_at(alice_, 201, kT0 - 1us));    // just before `from`: excluded
  ASSERT_EQ(db_->decisions().record_batch(decisions), decisions.size());
  fdb::LearningLog log(db_->pool());
  fdb::ScanStats stats;
  const auto joined = scan_all(log, {kT0, kT0 + 23min, 1h, 24h, 5}, &stats);
  ASSERT_EQ(joined.size(), 23U);
  EXPECT_EQ(stats.batches, 5);
  std::set<std::string> seen;
  for (int i = 0; i < 23; ++i) {
    EXPECT_EQ(joined[static_cast<std::size_t>(i)].decision.event_id, uuid_for(100 + i));
    EXPECT_TRUE(seen.insert(joined[static_cast<std::size_t>(i)].decision.event_id).second);
  }
  // The user's next decision may lie beyond `to`: it is the next state all the same.
  EXPECT_EQ(joined.back().decision.logged.user_id, bob_);  // i = 22
  const auto& last_alice = joined[21];                      // i = 21, alice
  ASSERT_TRUE(last_alice.next_event_id);
  EXPECT_EQ(*last_alice.next_event_id, uuid_for(200));
}

TEST_F(LearningLogTest, ASinkThatThrowsEndsTheScanAndTheNextScanWorks) {
  ASSERT_EQ(db_->decisions().record_batch(std::vector<fdb::Decision>{decision_at(alice_, 300, kT0)}), 1U);
  fdb::LearningLog log(db_->pool());
  EXPECT_THROW(log.scan({kT0, kT0 + 1h}, [](std::span<const fdb::JoinedDecision>) { throw std::runtime_error("sink"); }),
               std::runtime_error);
  EXPECT_EQ(scan_all(log, {kT0, kT0 + 1h}).size(), 1U);
}

TEST_F(LearningLogTest, BadRangesAreRefusedNamingTheField) {
  fdb::LearningLog log(db_->pool());
  const auto sink = [](std::span<const fdb::JoinedDecision>) {};
  auto expect_error = [&](fdb::ScanRange range, const std::string& field) {
    try {
      log.scan(range, sink);
      ADD_FAILURE() << "accepted a bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  expect_error({kT0, kT0}, "'to'");
  expect_error({kT0, kT0 + 1h, -1us}, "reward_wait");
  expect_error({kT0, kT0 + 1h, 1h, -1us}, "next_wait");
  expect_error({kT0, kT0 + 1h, 1h, 1h, 0}, "batch_size");
  expect_error({kT0, kT0 + 1h, 1h, 1h, 100'001}, "batch_size");
}

TEST_F(LearningLogTest, TheWatermarkMovesOnlyFromWhereTheCycleStarted) {
  fdb::LearningLog log(db_->pool());
  EXPECT_FALSE(log.watermark("default"));
  EXPECT_TRUE(log.advance_watermark("default", std::nullopt, kT0));
  EXPECT_FALSE(log.advance_watermark("default", std::nullopt, kT0 + 1h)) << "a second first cycle";
  EXPECT_EQ(log.watermark("default"), kT0);
  EXPECT_TRUE(log.advance_watermark("default", kT0, kT0 + 1h));
  EXPECT_FALSE(log.advance_watermark("default", kT0, kT0 + 2h)) << "a cycle that started from a stale mark";
  EXPECT_EQ(log.watermark("default"), kT0 + 1h);
  EXPECT_FALSE(log.watermark("other")) << "learners have marks of their own";
  EXPECT_THROW(log.advance_watermark("default", kT0 + 1h, kT0), std::invalid_argument);
  try {
    log.watermark("no spaces");
    ADD_FAILURE() << "accepted a bad learner name";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("learner"), std::string::npos) << e.what();
  }
}

TEST_F(LearningLogTest, OneLearnerAtATimeAndTheLockDiesWithItsSession) {
  auto first = fdb::LearnerLock::try_acquire(pg_.url(), "default");
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->held());
  EXPECT_FALSE(fdb::LearnerLock::try_acquire(pg_.url(), "default")) << "two learners hold one lock";
  auto other = fdb::LearnerLock::try_acquire(pg_.url(), "other");
  EXPECT_TRUE(other) << "another learner name is another lock";
  first.reset();
  auto second = fdb::LearnerLock::try_acquire(pg_.url(), "default");
  ASSERT_TRUE(second) << "the lock was not released with its holder";

  // A session ended from outside (a crash, an operator) drops the lock.
  {
    pqxx::connection admin(pg_.url());
    pqxx::nontransaction tx(admin);
    tx.exec_params("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1",
                   "forkcast-learner");
  }
  EXPECT_FALSE(second->held());
  EXPECT_TRUE(fdb::LearnerLock::try_acquire(pg_.url(), "default"));
}

TEST(LearnerLockErrors, AnUnreachableDatabaseIsUnavailableAndBadNamesAreRefused) {
  const int port = fdb::testing::free_loopback_port();
  EXPECT_THROW(fdb::LearnerLock::try_acquire("postgresql://forkcast@127.0.0.1:" + std::to_string(port) + "/x", "default"),
               fdb::DatabaseUnavailable);
  EXPECT_THROW(fdb::LearnerLock::try_acquire("postgresql://127.0.0.1:1/x", "bad name"), std::invalid_argument);
}

namespace {

fdb::NewModel model_named(const std::string& version) {
  return {version, "dqn", std::string(64, 'a'), "/models/" + version + "/model.safetensors", json{{"cycle", 1}}};
}

}  // namespace

TEST_F(LearningLogTest, ACycleCommitsItsWatermarkModelReportsAndRowTogether) {
  fdb::LearningLog log(db_->pool());
  const std::string learner = "commit-" + unique_suffix();
  const std::string incumbent = "incumbent-" + unique_suffix();
  db_->models().register_model(model_named(incumbent));
  db_->models().promote(incumbent);

  // A promoted cycle: the watermark, the model in production, its report, the cycle's row.
  fdb::CycleCommit promoted;
  promoted.learner = learner;
  promoted.to = kT0;
  promoted.outcome = fdb::CycleOutcome::promoted;
  promoted.model = model_named("learned-a-" + unique_suffix());
  promoted.reports = {{promoted.model->version, "dr", json{{"estimate", 0.7}}}};
  promoted.reason = "better";
  promoted.stats = {{"transitions", 10}};
  const auto first = log.commit_cycle(promoted);
  ASSERT_TRUE(first);
  EXPECT_EQ(log.watermark(learner), kT0);
  EXPECT_EQ(db_->models().production()->registered.version, promoted.model->version);
  EXPECT_EQ(db_->models().find(incumbent)->status, fdb::ModelStatus::retired);
  ASSERT_EQ(db_->eval_reports().list_for_model(promoted.model->version).size(), 1U);
  EXPECT_EQ(db_->eval_reports().list_for_model(promoted.model->version)[0].saved.method, "dr");

  // A rejected cycle: registered as rejected, production unchanged.
  fdb::CycleCommit rejected = promoted;
  rejected.expected = kT0;
  rejected.to = kT0 + 1h;
  rejected.outcome = fdb::CycleOutcome::rejected;
  rejected.model = model_named("learned-b-" + unique_suffix());
  rejected.reports = {};
  rejected.reason = "not better";
  ASSERT_TRUE(log.commit_cycle(rejected));
  EXPECT_EQ(db_->models().find(rejected.model->version)->status, fdb::ModelStatus::rejected);
  EXPECT_EQ(db_->models().production()->registered.version, promoted.model->version);

  // A cycle that started from a stale watermark commits nothing at all.
  fdb::CycleCommit stale = rejected;
  stale.model = model_named("learned-c-" + unique_suffix());
  EXPECT_FALSE(log.commit_cycle(stale));
  EXPECT_FALSE(db_->models().find(stale.model->version)) << "a model of a cycle that lost the race was registered";
  EXPECT_EQ(log.watermark(learner), kT0 + 1h);

  // A version already registered fails the whole cycle: the watermark stays.
  fdb::CycleCommit duplicate = rejected;
  duplicate.expected = kT0 + 1h;
  duplicate.to = kT0 + 2h;
  EXPECT_THROW(log.commit_cycle(duplicate), fdb::ConflictError);
  EXPECT_EQ(log.watermark(learner), kT0 + 1h);

  const auto cycles = log.cycles(learner);
  ASSERT_EQ(cycles.size(), 2U);
  EXPECT_EQ(cycles[0].outcome, fdb::CycleOutcome::promoted);
  EXPECT_FALSE(cycles[0].from);
  EXPECT_EQ(cycles[0].to, kT0);
  EXPECT_EQ(cycles[0].stats["transitions"], 10);
  EXPECT_EQ(cycles[1].outcome, fdb::CycleOutcome::rejected);
  EXPECT_EQ(cycles[1].from, kT0);
  EXPECT_EQ(cycles[1].model_version, rejected.model->version);
  EXPECT_EQ(cycles[1].reason, "not better");
}

TEST_F(LearningLogTest, ACycleCommitNeedsAModelExactlyWhenItsOutcomeHasOne) {
  fdb::LearningLog log(db_->pool());
  fdb::CycleCommit c;
  c.learner = "shape-" + unique_suffix();
  c.to = kT0;
  c.outcome = fdb::CycleOutcome::promoted;
  c.reason = "r";
  EXPECT_THROW(log.commit_cycle(c), std::invalid_argument);
  c.outcome = fdb::CycleOutcome::no_model;
  c.model = model_named("shape-" + unique_suffix());
  EXPECT_THROW(log.commit_cycle(c), std::invalid_argument);
  c.model.reset();
  ASSERT_TRUE(log.commit_cycle(c));
  EXPECT_EQ(log.cycles(c.learner).at(0).outcome, fdb::CycleOutcome::no_model);
  c.expected = kT0;
  c.to = kT0 - 1h;
  EXPECT_THROW(log.commit_cycle(c), std::invalid_argument);
}

TEST_F(LearningLogTest, TheNewestDecisionIsTheLogsClock) {
  fdb::LearningLog log(db_->pool());
  const auto before = log.newest_decision();
  const std::vector<fdb::Decision> late = {decision_at(alice_, 900, kT0 + 10000h)};
  ASSERT_EQ(db_->decisions().record_batch(late), 1U);
  const auto after = log.newest_decision();
  ASSERT_TRUE(after);
  EXPECT_GE(*after, kT0 + 10000h);
  if (before) {
    EXPECT_GE(*after, *before);
  }
}
