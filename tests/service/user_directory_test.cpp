// Tests of service/src/user_directory.hpp on a real PostgreSQL (tests/db's shared instance):
// the cache (hits never ask the database, misses load the user and their latest state),
// eviction bounded by capacity that never drops a session in use, dirty or recently used,
// advance_to, the stored state document, and the local day and slot of a timestamp.
#include "user_directory.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
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

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }

db::Timestamp utc(std::chrono::year_month_day day, std::chrono::minutes time_of_day) {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::sys_days{day} + time_of_day);
}

std::int64_t day_number(std::chrono::year_month_day day) {
  return std::chrono::sys_days{day}.time_since_epoch().count();
}

class UserDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = db::testing::open_database(db::testing::shared_instance().url());
  }

  std::unique_ptr<svc::UserDirectory> directory(std::size_t capacity = 100, std::chrono::milliseconds min_idle = 60s) {
    return std::make_unique<svc::UserDirectory>(catalog(), config_, *database_, metrics_, capacity, min_idle);
  }

  static svc::ProfileDocument profile() {
    svc::ProfileDocument doc;
    doc.profile.weight_kg = 77;
    doc.profile.diet = fe::DietPreference::vegetarian;
    return doc;
  }

  // A new user in `users`; its token hash in *token if given. The session is not kept.
  std::string new_user(svc::UserDirectory& users, std::string* token = nullptr) {
    const std::string hash = db::token_sha256("token-" + db::testing::unique_suffix());
    if (token != nullptr) *token = hash;
    return users.create(profile(), hash)->id;
  }

  // A meal the vegetarian profile allows.
  static std::int32_t allowed_meal() {
    for (std::size_t m = 0; m < catalog().size(); ++m) {
      if (profile().profile.allows(catalog().meals()[m])) return static_cast<std::int32_t>(m);
    }
    return 0;
  }

  forkcast::config::MealSimConfig config_;
  svc::Metrics metrics_{std::vector<std::string_view>{}};
  std::unique_ptr<db::Database> database_;
};

void expect_same_state(const fe::TrackerState& a, const fe::TrackerState& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_DOUBLE_EQ(a.hunger, b.hunger);
  EXPECT_DOUBLE_EQ(a.intake_today.kcal, b.intake_today.kcal);
  EXPECT_DOUBLE_EQ(a.intake_today.sodium_mg, b.intake_today.sodium_mg);
  EXPECT_DOUBLE_EQ(a.offered_decayed, b.offered_decayed);
  EXPECT_DOUBLE_EQ(a.accepted_decayed, b.accepted_decayed);
  EXPECT_EQ(a.decline_streak, b.decline_streak);
  EXPECT_EQ(a.cuisine_memory, b.cuisine_memory);
  EXPECT_EQ(a.cuisine_accepted, b.cuisine_accepted);
  EXPECT_EQ(a.tag_offered, b.tag_offered);
  EXPECT_EQ(a.last_eaten, b.last_eaten);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// The cache

TEST_F(UserDirectoryTest, ACreatedUserIsCachedWithItsToken) {
  auto users = directory();
  std::string token;
  const std::string id = new_user(*users, &token);
  EXPECT_TRUE(db::is_uuid(id));
  EXPECT_EQ(users->cached(), 1U);
  const auto cached = users->find_cached(id);
  ASSERT_TRUE(cached);
  EXPECT_EQ(users->find(id).get(), cached.get());  // a hit is the same session
  const auto by_token = users->user_for_token_cached(token);
  EXPECT_TRUE(by_token.known);
  EXPECT_EQ(by_token.user, id);
  EXPECT_EQ(users->user_for_token(token), id);
  // Written through: the database has the user and its first state.
  EXPECT_TRUE(database_->users().find(id));
  EXPECT_TRUE(database_->user_state().latest(id));
  // The safety mask per slot: only meals of the slot that the profile allows.
  for (int s = 0; s < fe::kNumSlots; ++s) {
    ASSERT_FALSE(cached->allowed[static_cast<std::size_t>(s)].empty());
    for (const std::int32_t m : cached->allowed[static_cast<std::size_t>(s)]) {
      const fe::Meal& meal = catalog().meals()[static_cast<std::size_t>(m)];
      EXPECT_EQ(static_cast<int>(meal.slot), s);
      EXPECT_TRUE(profile().profile.allows(meal)) << meal.id;
    }
  }
}

TEST_F(UserDirectoryTest, AMissLoadsTheUserAndItsLatestStateFromPostgres) {
  auto first = directory();
  std::string token;
  const std::string id = new_user(*first, &token);
  const std::int32_t meal = allowed_meal();
  fe::TrackerState stored;
  std::int64_t first_day = 0;
  {
    const auto session = first->find(id);
    std::lock_guard lock(session->mutex);
    session->tracker.record_offer(meal, true);
    session->tracker.record_eaten(meal, 1.0);
    session->tracker.advance_slot();
    session->decisions = 5;
    first->persist(*session);
    stored = session->tracker.state();
    first_day = session->first_day;
  }

  auto restarted = directory();  // another process, or this one after a restart
  EXPECT_EQ(restarted->cached(), 0U);
  EXPECT_FALSE(restarted->find_cached(id));
  EXPECT_FALSE(restarted->user_for_token_cached(token).known);  // the cache cannot tell
  const auto loaded = restarted->find(id);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(restarted->cached(), 1U);
  EXPECT_EQ(restarted->find_cached(id).get(), loaded.get());
  std::lock_guard lock(loaded->mutex);
  expect_same_state(loaded->tracker.state(), stored);
  EXPECT_EQ(loaded->first_day, first_day);
  EXPECT_EQ(loaded->decisions, 5);
  EXPECT_EQ(loaded->profile.profile.weight_kg, 77);
  EXPECT_EQ(loaded->profile.profile.diet, fe::DietPreference::vegetarian);
  EXPECT_EQ(loaded->token_sha256, token);
  EXPECT_EQ(restarted->user_for_token(token), id);
  EXPECT_TRUE(restarted->user_for_token_cached(token).known);
}

TEST_F(UserDirectoryTest, UnknownIdsAndTokensAreNoUser) {
  auto users = directory();
  EXPECT_FALSE(users->find("not-a-uuid"));
  EXPECT_FALSE(users->find("01900000-0000-7000-8000-000000000000"));
  EXPECT_FALSE(users->find_cached("01900000-0000-7000-8000-000000000000"));
  EXPECT_EQ(users->cached(), 0U);
  const std::string unknown = db::token_sha256("never-issued-" + db::testing::unique_suffix());
  EXPECT_FALSE(users->user_for_token_cached(unknown).known);
  EXPECT_EQ(users->user_for_token(unknown), std::nullopt);
  // The miss is remembered: the cache now knows there is no such user.
  const auto remembered = users->user_for_token_cached(unknown);
  EXPECT_TRUE(remembered.known);
  EXPECT_EQ(remembered.user, std::nullopt);
}

TEST_F(UserDirectoryTest, EvictionKeepsTheCacheWithinCapacityAndForgetsTheToken) {
  auto users = directory(/*capacity=*/3, /*min_idle=*/0ms);
  std::vector<std::string> ids, tokens;
  for (int i = 0; i < 8; ++i) {
    std::string token;
    ids.push_back(new_user(*users, &token));
    tokens.push_back(token);
    EXPECT_LE(users->cached(), 3U) << "after user " << i;
  }
  int evicted = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (users->find_cached(ids[i])) continue;
    ++evicted;
    EXPECT_FALSE(users->user_for_token_cached(tokens[i]).known) << i;  // its token went with it
    EXPECT_EQ(users->user_for_token(tokens[i]), ids[i]);               // and the database still knows
  }
  EXPECT_GE(evicted, 5);
  // An evicted user comes back on use, within the bound.
  for (const auto& id : ids) ASSERT_TRUE(users->find(id)) << id;
  EXPECT_LE(users->cached(), 3U);
}

TEST_F(UserDirectoryTest, SessionsInUseDirtyOrRecentlyUsedAreNotEvicted) {
  {
    auto users = directory(/*capacity=*/2, /*min_idle=*/0ms);
    const auto held = users->find(new_user(*users));
    const std::string dirty = new_user(*users);
    {
      const auto session = users->find(dirty);
      std::lock_guard lock(session->mutex);
      session->state_dirty = true;  // its last write failed: only memory has the state
    }
    for (int i = 0; i < 4; ++i) new_user(*users);
    EXPECT_EQ(users->find_cached(held->id).get(), held.get());
    EXPECT_TRUE(users->find_cached(dirty));
  }
  {
    // Used within min_idle: the cache grows past its capacity rather than drop one.
    auto users = directory(/*capacity=*/2, /*min_idle=*/1h);
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(new_user(*users));
    EXPECT_EQ(users->cached(), 4U);
    for (const auto& id : ids) EXPECT_TRUE(users->find_cached(id)) << id;
  }
}

// ------------------------------------------------------------------------------------------------
// Time and state

TEST_F(UserDirectoryTest, AdvanceToMovesTheTrackerForwardOnly) {
  auto users = directory();
  const auto session = users->find(new_user(*users));
  std::lock_guard lock(session->mutex);
  const std::int64_t day0 = session->first_day;
  const double hunger0 = session->tracker.state().hunger;

  users->advance_to(*session, day0, fe::Slot::lunch);
  EXPECT_EQ(session->tracker.state().step, 1);
  EXPECT_GT(session->tracker.state().hunger, hunger0);
  const std::int32_t meal = allowed_meal();
  session->tracker.record_eaten(meal, 1.0);
  const auto after_lunch = session->tracker.state();

  // An earlier slot of the same day, or the same one, changes nothing.
  users->advance_to(*session, day0, fe::Slot::breakfast);
  users->advance_to(*session, day0, fe::Slot::lunch);
  users->advance_to(*session, day0 - 3, fe::Slot::snack);
  expect_same_state(session->tracker.state(), after_lunch);

  // The next day's dinner: six slots on from breakfast of day 0, and a new day's intake.
  users->advance_to(*session, day0 + 1, fe::Slot::dinner);
  EXPECT_EQ(session->tracker.state().step, fe::kNumSlots + 2);
  EXPECT_EQ(session->tracker.slot(), fe::Slot::dinner);
  EXPECT_EQ(session->tracker.state().intake_today.kcal, 0.0);

  // Back after a month: the step lands where the calendar says; the meal's memory has
  // decayed for every slot in between.
  users->advance_to(*session, day0 + 30, fe::Slot::snack);
  const std::int64_t step = 30 * fe::kNumSlots + 3;
  EXPECT_EQ(session->tracker.state().step, step);
  EXPECT_EQ(session->tracker.day_of_week(), 30 % 7);
  EXPECT_EQ(session->tracker.state().intake_today.kcal, 0.0);
  EXPECT_NEAR(session->tracker.meal_recency(meal), std::pow(config_.meal_memory_decay, static_cast<double>(step - 1)),
              1e-12);
  EXPECT_EQ(session->tracker.state().hunger, 1.0);
}

TEST_F(UserDirectoryTest, TheStateDocumentRestoresTheSameState) {
  auto users = directory();
  const auto a = users->find(new_user(*users));
  const auto b = users->find(new_user(*users));
  std::scoped_lock lock(a->mutex, b->mutex);
  const std::int32_t meal = allowed_meal();
  a->tracker.record_offer(meal, false);
  a->tracker.record_offer(meal, true);
  a->tracker.record_eaten(meal, 0.75);
  a->tracker.advance_slot();
  a->decisions = 3;
  const auto document = users->state_document(*a);
  users->restore_state(*b, document);
  expect_same_state(b->tracker.state(), a->tracker.state());
  EXPECT_EQ(b->decisions, 3);
  EXPECT_EQ(b->first_day, a->first_day);

  const auto refused = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto doc = document;
    edit(doc);
    EXPECT_THROW(users->restore_state(*b, doc), std::exception) << doc.dump().substr(0, 200);
  };
  refused([](nlohmann::json& d) { d["layout"] = 2; });
  refused([](nlohmann::json& d) { d["intake_today"].erase(0); });
  refused([](nlohmann::json& d) { d["cuisine_memory"].push_back(0.0); });
  refused([](nlohmann::json& d) { d.erase("step"); });
}

TEST(LocalTime, TheDayStartsAtFourAndSlotsFollowTheLocalHour) {
  using std::chrono::January;
  using std::chrono::December;
  const auto jan15 = std::chrono::year{2024} / January / 15;
  const auto jan14 = std::chrono::year{2024} / January / 14;
  struct Case {
    std::chrono::minutes utc_time;
    int offset_min;
    std::chrono::year_month_day day;
    fe::Slot slot;
  };
  const std::vector<Case> cases = {
      {4h, 0, jan15, fe::Slot::breakfast},         {10h + 59min, 0, jan15, fe::Slot::breakfast},
      {11h, 0, jan15, fe::Slot::lunch},             {15h + 59min, 0, jan15, fe::Slot::lunch},
      {16h, 0, jan15, fe::Slot::dinner},            {20h + 59min, 0, jan15, fe::Slot::dinner},
      {21h, 0, jan15, fe::Slot::snack},             {23h + 59min, 0, jan15, fe::Slot::snack},
      {3h + 59min, 0, jan14, fe::Slot::snack},      // before 04:00: still the evening before
      {9h, 120, jan15, fe::Slot::lunch},            // 11:00 at UTC+2
      {2h, -300, jan14, fe::Slot::snack},           // 21:00 the day before at UTC-5
      {1h, 300, jan15, fe::Slot::breakfast},        // 06:00 at UTC+5
  };
  for (const auto& c : cases) {
    const auto t = utc(jan15, c.utc_time);
    EXPECT_EQ(svc::local_day(t, c.offset_min), day_number(c.day)) << c.utc_time.count() << " min, offset " << c.offset_min;
    EXPECT_EQ(svc::local_slot(t, c.offset_min), c.slot) << c.utc_time.count() << " min, offset " << c.offset_min;
  }
  // Before 1970 the day is still floored, not truncated towards zero.
  const auto dec31 = std::chrono::year{1969} / December / 31;
  EXPECT_EQ(svc::local_day(utc(dec31, 5h), 0), -1);
  EXPECT_EQ(svc::local_slot(utc(dec31, 5h), 0), fe::Slot::breakfast);
  EXPECT_EQ(svc::local_day(utc(std::chrono::year{1970} / January / 1, 3h), 0), -1);
}
