// Group commit: concurrent feedback writes share transactions, each caller gets its own
// answer (or its own error) only after the commit, duplicates are reported, not errors.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "connection_pool.hpp"
#include "feedback_batch.hpp"
#include "forkcast/db/database.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::shared_instance;
using fdb::testing::unique_suffix;
using nlohmann::json;

namespace {

struct Fixture {
  fdb::Database database{fdb::DatabaseOptions{shared_instance().url(), 4, 5'000, 5, true}};
  std::string event_id;

  Fixture() {
    const auto user =
        database.users().create({json::object(), fdb::token_sha256("t-" + unique_suffix())});
    fdb::NewDecision d;
    d.user_id = user.id;
    d.model_version = "v";
    d.policy = "greedy";
    d.candidates = {"a"};
    d.scores = {0};
    d.probabilities = {1};
    d.chosen = "a";
    event_id = database.decisions().record(d).event_id;
  }

  fdb::NewFeedback feedback(const std::string& key) const {
    fdb::NewFeedback f;
    f.event_id = event_id;
    f.meal_id = "a";
    f.outcome = fdb::Outcome::eaten;
    f.reward = 0.5;
    f.idempotency_key = key;
    return f;
  }
};

int count_keys_with_prefix(const std::string& prefix) {
  pqxx::connection c(shared_instance().url());
  pqxx::nontransaction tx(c);
  return tx
      .exec_params1("SELECT count(*)::int FROM feedback WHERE starts_with(idempotency_key, $1)",
                    prefix)[0]
      .as<int>();
}

}  // namespace

TEST(FeedbackWriter, ConcurrentWritesAreBatchedAndAllStored) {
  Fixture fx;
  fdb::FeedbackWriter writer(fx.database.pool(), {5, 256});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  const std::string prefix = "gc-" + unique_suffix() + "-";
  std::atomic<int> acknowledged{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        try {
          const auto r =
              writer.submit(fx.feedback(prefix + std::to_string(t) + "-" + std::to_string(i)));
          if (!r.duplicate && r.feedback_id > 0) ++acknowledged;
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(acknowledged.load(), kThreads * kPerThread);
  EXPECT_EQ(count_keys_with_prefix(prefix), kThreads * kPerThread);
  const auto stats = writer.stats();
  EXPECT_EQ(stats.writes, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_LT(stats.batches, stats.writes) << "no two writes ever shared a transaction";
  EXPECT_GT(stats.largest_batch, 1U);
}

TEST(FeedbackWriter, SameKeyInOneBatchIsStoredOnceAndTheRepeatIsADuplicate) {
  Fixture fx;
  fdb::FeedbackWriter writer(fx.database.pool(),
                             {50, 256});  // a wide window: both land in one batch
  const std::string key = "dup-" + unique_suffix();
  fdb::FeedbackResult a;
  fdb::FeedbackResult b;
  auto submit = [&](fdb::FeedbackResult& out) {
    try {
      out = writer.submit(fx.feedback(key));
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  };
  std::thread first(submit, std::ref(a));
  std::thread second(submit, std::ref(b));
  first.join();
  second.join();
  EXPECT_EQ(a.feedback_id, b.feedback_id);
  EXPECT_NE(a.duplicate, b.duplicate) << "exactly one of the two is the original";
  EXPECT_EQ(count_keys_with_prefix(key), 1);
}

// Review, 2026-12-01: when two copies of a stored key shared a batch and the first one
// conflicted with the stored row, the second inherited the conflict even when it matched
// the stored row (a correct retry behind a wrong one). The batch is written directly here,
// so the order is the one that used to fail.
TEST(FeedbackWriter, ARetryThatMatchesTheStoredRowIsADuplicateEvenBehindAConflict) {
  Fixture fx;
  const std::string key = "retry-" + unique_suffix();
  const fdb::FeedbackResult stored = fx.database.feedback().record(fx.feedback(key));
  fdb::NewFeedback different = fx.feedback(key);
  different.outcome = fdb::Outcome::rejected;
  const std::vector<fdb::NewFeedback> batch = {different, fx.feedback(key)};
  auto lease = fx.database.pool().internal().checkout();
  const auto outcomes = fdb::detail::write_feedback_batch(lease.connection(), batch);
  ASSERT_EQ(outcomes.size(), 2U);
  ASSERT_TRUE(std::holds_alternative<std::exception_ptr>(outcomes[0]));
  EXPECT_THROW(std::rethrow_exception(std::get<std::exception_ptr>(outcomes[0])), fdb::ConflictError);
  ASSERT_TRUE(std::holds_alternative<fdb::FeedbackResult>(outcomes[1])) << "the matching retry got an error";
  EXPECT_TRUE(std::get<fdb::FeedbackResult>(outcomes[1]).duplicate);
  EXPECT_EQ(std::get<fdb::FeedbackResult>(outcomes[1]).feedback_id, stored.feedback_id);
}

TEST(FeedbackWriter, OneBadWriteFailsAloneAndTheRestOfItsBatchCommits) {
  Fixture fx;
  fdb::FeedbackWriter writer(fx.database.pool(), {50, 256});
  const std::string prefix = "mixed-" + unique_suffix() + "-";
  std::atomic<int> ok{0};
  std::atomic<int> not_found{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto f = fx.feedback(prefix + std::to_string(t));
      if (t == 3) f.event_id = "00000000-0000-0000-0000-000000000000";  // no such decision
      try {
        writer.submit(f);
        ++ok;
      } catch (const fdb::NotFoundError&) {
        ++not_found;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "write " << t << ": " << e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(not_found.load(), 1);
  EXPECT_EQ(count_keys_with_prefix(prefix), 5);
}

TEST(FeedbackWriter, ZeroWindowCommitsAtOnceAndInvalidInputIsRejectedBeforeQueueing) {
  Fixture fx;
  fdb::FeedbackWriter writer(fx.database.pool(), {0, 256});
  const auto r = writer.submit(fx.feedback("zero-" + unique_suffix()));
  EXPECT_FALSE(r.duplicate);
  auto bad = fx.feedback("");
  EXPECT_THROW(writer.submit(bad), std::invalid_argument);
  bad = fx.feedback("k-" + unique_suffix());
  bad.event_id = "not-a-uuid";
  EXPECT_THROW(writer.submit(bad), std::invalid_argument);
  EXPECT_EQ(writer.stats().writes, 1U);
  EXPECT_THROW(fdb::FeedbackWriter(fx.database.pool(), {-1, 1}), std::invalid_argument);
}
