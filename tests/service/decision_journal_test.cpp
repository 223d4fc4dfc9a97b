// Tests of service/src/decision_journal.hpp on a real PostgreSQL (tests/db's shared
// instance): what a crashed process journaled is stored by the next one (once: decisions
// stored before the crash are skipped), with the meal table it was written against; a torn
// last frame costs only itself; one process per directory; the log releases what it stored,
// and a clean stop leaves no segment behind.
#include "decision_journal.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "decision_log.hpp"
#include "forkcast/db/database.hpp"
#include "journal_record.hpp"
#include "metrics.hpp"
#include "pg_test_support.hpp"
#include "shipped_world.hpp"

namespace svc = forkcast::service;
namespace fe = forkcast::env;
namespace db = forkcast::db;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }

std::string new_event_id() {
  static unsigned long long counter = 0;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-9000-%012llx", static_cast<unsigned>(::getpid()), ++counter);
  return buf;
}

std::vector<fs::path> segments_in(const fs::path& dir) {
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".fcj") found.push_back(e.path());
  }
  return found;
}

class DecisionJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = db::testing::open_database(db::testing::shared_instance().url());
    db::NewUser user;
    user.token_sha256 = db::token_sha256("journal-" + db::testing::unique_suffix());
    user_id_ = database_->users().create(user).id;
    dir_ = fs::temp_directory_path() / ("forkcast-journal-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  svc::PendingDecision decision(int k) const {
    svc::PendingDecision d;
    d.event_id = new_event_id();
    d.user_id = user_id_;
    d.decided_at = db::now_timestamp();
    d.slot = fe::Slot::lunch;
    d.model_version = "journal-test";
    d.epsilon = 0.5;
    d.candidates = {5, 0, 2};
    d.scores = {1.0F, 2.0F + static_cast<float>(k), 0.25F};
    d.probabilities = {0.25, 0.5, 0.25};
    d.chosen = 1;
    d.greedy = 1;
    d.ranked = {1, 0};
    d.draw_seed = static_cast<std::uint64_t>(k);
    d.step = k;
    d.n = 2;
    return d;
  }

  static std::string frame_of(const svc::PendingDecision& d) {
    std::string frame;
    svc::journal::append_decision_frame(d, frame);
    return frame;
  }

  std::unique_ptr<db::Database> database_;
  std::string user_id_;
  fs::path dir_;
};

}  // namespace

TEST_F(DecisionJournalTest, WhatACrashedProcessJournaledIsStoredOnceByTheNext) {
  std::vector<std::string> ids;
  {
    svc::DecisionJournal crashed(dir_, svc::meal_ids_of(catalog()));
    for (int k = 0; k < 5; ++k) {
      const auto d = decision(k);
      ids.push_back(d.event_id);
      ASSERT_TRUE(crashed.append(static_cast<std::uint64_t>(k + 1), frame_of(d)));
    }
    // One of them had been stored before the crash.
    auto first = svc::to_stored(decision(0), svc::meal_ids_of(catalog()));
    first.event_id = ids[0];
    ASSERT_EQ(database_->decisions().record_batch(std::span<const db::Decision>(&first, 1)), 1U);
  }  // destroyed without a release: what a SIGKILL leaves
  for (const auto& id : ids) EXPECT_EQ(database_->decisions().find(id).has_value(), id == ids[0]);

  svc::DecisionJournal next(dir_, svc::meal_ids_of(catalog()));
  const svc::JournalReplay replayed = next.replay(database_->decisions());
  EXPECT_EQ(replayed.segments, 1U);
  EXPECT_EQ(replayed.decisions, 5U);
  EXPECT_EQ(replayed.stored, 4U) << "the decision stored before the crash is skipped";
  EXPECT_EQ(replayed.dropped, 0U);
  EXPECT_EQ(replayed.torn_bytes, 0U);
  for (const auto& id : ids) {
    const auto row = database_->decisions().find(id);
    ASSERT_TRUE(row) << id;
    EXPECT_EQ(row->logged.chosen, catalog().meals()[0].id);
    EXPECT_EQ(row->logged.model_version, "journal-test");
  }
  EXPECT_EQ(segments_in(dir_).size(), 1U) << "only the new process's own segment is left";
  // Replaying again finds nothing more to do.
  EXPECT_EQ(next.replay(database_->decisions()).decisions, 0U);
}

TEST_F(DecisionJournalTest, ASegmentReplaysWithTheMealTableItWasWrittenAgainst) {
  // The catalog changed between the crash and the restart (here: its order reversed).
  std::vector<std::string> old_ids = svc::meal_ids_of(catalog());
  std::reverse(old_ids.begin(), old_ids.end());
  const auto d = decision(1);
  {
    svc::DecisionJournal crashed(dir_, old_ids);
    ASSERT_TRUE(crashed.append(1, frame_of(d)));
  }
  svc::DecisionJournal next(dir_, svc::meal_ids_of(catalog()));
  ASSERT_EQ(next.replay(database_->decisions()).stored, 1U);
  const auto row = database_->decisions().find(d.event_id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->logged.candidates, (std::vector<std::string>{old_ids[5], old_ids[0], old_ids[2]}));
  EXPECT_EQ(row->logged.chosen, old_ids[0]);
}

TEST_F(DecisionJournalTest, ATornLastFrameCostsOnlyItself) {
  const auto a = decision(1), b = decision(2), c = decision(3);
  {
    svc::DecisionJournal crashed(dir_, svc::meal_ids_of(catalog()));
    ASSERT_TRUE(crashed.append(1, frame_of(a)));
    ASSERT_TRUE(crashed.append(2, frame_of(b)));
  }
  const auto segments = segments_in(dir_);
  ASSERT_EQ(segments.size(), 1U);
  const std::string half = frame_of(c).substr(0, 100);
  std::ofstream(segments[0], std::ios::binary | std::ios::app) << half;  // the write a crash cut off
  svc::DecisionJournal next(dir_, svc::meal_ids_of(catalog()));
  const auto replayed = next.replay(database_->decisions());
  EXPECT_EQ(replayed.stored, 2U);
  EXPECT_EQ(replayed.torn_bytes, half.size());
  EXPECT_TRUE(database_->decisions().find(a.event_id));
  EXPECT_TRUE(database_->decisions().find(b.event_id));
  EXPECT_FALSE(database_->decisions().find(c.event_id));
}

TEST_F(DecisionJournalTest, ADecisionTheDatabaseRefusesIsDroppedAlone) {
  auto unknown_user = decision(2);
  unknown_user.user_id = "00000000-0000-4000-8000-000000000000";
  const auto good = decision(3);
  {
    svc::DecisionJournal crashed(dir_, svc::meal_ids_of(catalog()));
    ASSERT_TRUE(crashed.append(1, frame_of(unknown_user)));
    ASSERT_TRUE(crashed.append(2, frame_of(good)));
  }
  svc::DecisionJournal next(dir_, svc::meal_ids_of(catalog()));
  const auto replayed = next.replay(database_->decisions());
  EXPECT_EQ(replayed.stored, 1U);
  EXPECT_EQ(replayed.dropped, 1U);
  EXPECT_TRUE(database_->decisions().find(good.event_id));
}

TEST_F(DecisionJournalTest, OneProcessPerDirectory) {
  svc::DecisionJournal first(dir_, svc::meal_ids_of(catalog()));
  try {
    svc::DecisionJournal second(dir_, svc::meal_ids_of(catalog()));
    FAIL() << "a second journal on the same directory was opened";
  } catch (const svc::JournalError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir_.string()), std::string::npos) << what;
    EXPECT_NE(what.find("in use by another process"), std::string::npos) << what;
    EXPECT_NE(what.find("server.decision_journal_dir"), std::string::npos) << what;
  }
}

TEST_F(DecisionJournalTest, TheLogReleasesWhatItStoredAndACleanStopLeavesNothing) {
  svc::Metrics metrics{std::vector<std::string_view>{}};
  svc::DecisionJournal journal(dir_, svc::meal_ids_of(catalog()), /*segment_bytes=*/4096);
  svc::DecisionLog log(database_->decisions(), catalog(), 10'000, metrics, &journal);
  std::vector<std::string> ids;
  for (int k = 0; k < 200; ++k) {  // ~300 bytes each: a few dozen segments
    auto d = decision(k);
    ids.push_back(d.event_id);
    const svc::Enqueued e = log.enqueue(std::move(d));
    ASSERT_GT(e.sequence, 0U);
    EXPECT_TRUE(e.journaled);
  }
  ASSERT_TRUE(log.wait_stored(log.last_enqueued(), std::chrono::steady_clock::now() + 10s));
  // The storer releases after it signals; give it a moment.
  for (int i = 0; i < 100 && journal.live_segments() > 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_LE(journal.live_segments(), 1U) << "finished segments whose decisions are stored are deleted";
  EXPECT_LE(segments_in(dir_).size(), 1U);
  log.stop(std::chrono::steady_clock::now() + 5s);
  EXPECT_TRUE(segments_in(dir_).empty()) << "a stop that stored everything leaves an empty journal";
  for (const auto& id : ids) EXPECT_TRUE(database_->decisions().find(id)) << id;
  EXPECT_EQ(metrics.decisions_journal_failed().Value(), 0.0);
}
