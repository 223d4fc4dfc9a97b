// Repository round trips against a real PostgreSQL (tests/db/pg_test_support.hpp), the
// idempotent feedback rule and the single-production-model rule.
#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "forkcast/db/database.hpp"
#include "pg_test_support.hpp"

namespace fdb = forkcast::db;
using fdb::testing::shared_instance;
using fdb::testing::unique_suffix;
using nlohmann::json;

namespace {

fdb::Database& database() {
  static fdb::Database db(fdb::DatabaseOptions{shared_instance().url(), 4, 2'000, 2, true});
  return db;
}

fdb::User make_user() {
  return database().users().create(
      {json{{"age", 34}, {"diet", "vegetarian"}}, fdb::token_sha256("tok-" + unique_suffix())});
}

fdb::NewDecision decision_for(const std::string& user_id) {
  fdb::NewDecision d;
  d.user_id = user_id;
  d.slot = fdb::Slot::lunch;
  d.model_version = "tabular-test";
  d.policy = "epsilon_greedy";
  d.epsilon = 0.1;
  d.candidates = {"pad_thai_shrimp", "greek_salad", "lentil_soup"};
  d.scores = {1.25, -0.5, 0.1};
  d.probabilities = {0.9333333333333333, 0.03333333333333333, 0.03333333333333334};
  d.chosen = "pad_thai_shrimp";
  d.ranked = {"pad_thai_shrimp", "lentil_soup"};
  d.state_features = {0.5, 0.25, 1.0 / 3.0};
  return d;
}

fdb::NewFeedback feedback_for(const std::string& event_id, const std::string& key) {
  fdb::NewFeedback f;
  f.event_id = event_id;
  f.meal_id = "pad_thai_shrimp";
  f.outcome = fdb::Outcome::accepted;
  f.rating = 4;
  f.reward = 1.2345678901234567;
  f.idempotency_key = key;
  return f;
}

std::string new_model_version() { return "m-" + unique_suffix(); }

std::string shown_bytes(std::string_view bytes) {  // "ED A0 80"
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : bytes) {
    if (!out.empty()) out += ' ';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

fdb::NewModel model(const std::string& version) {
  return {version, "tabular", std::string(64, 'a'), "models/policies/" + version + ".safetensors",
          json{{"return_mean", 12.5}}};
}

}  // namespace

TEST(UserRepository, CreateFindByIdAndTokenHashUpdateProfile) {
  const std::string token = "secret-token-" + unique_suffix();
  const auto created = database().users().create({json{{"age", 41}}, fdb::token_sha256(token)});
  EXPECT_TRUE(fdb::is_uuid(created.id));
  EXPECT_EQ(created.profile, json({{"age", 41}}));

  const auto by_id = database().users().find(created.id);
  ASSERT_TRUE(by_id.has_value());
  EXPECT_EQ(by_id->token_sha256, fdb::token_sha256(token));
  EXPECT_EQ(by_id->created_at, created.created_at);
  EXPECT_EQ(database().users().find_by_token_sha256(fdb::token_sha256(token))->id, created.id);
  EXPECT_FALSE(database().users().find_by_token_sha256(fdb::token_sha256("other")).has_value());

  const auto updated =
      database().users().update_profile(created.id, json{{"age", 42}, {"goal", "lose"}});
  EXPECT_EQ(updated.profile["goal"], "lose");
  EXPECT_GE(updated.updated_at, created.updated_at);
}

TEST(UserRepository, NeverStoresTheTokenAndRejectsARepeatedHash) {
  const std::string token = "plain-token-" + unique_suffix();
  const auto user = database().users().create({json::object(), fdb::token_sha256(token)});
  EXPECT_NE(user.token_sha256, token);
  EXPECT_EQ(user.token_sha256.size(), 64U);
  try {
    database().users().create({json::object(), fdb::token_sha256(token)});
    FAIL() << "a second user with the same token hash was accepted";
  } catch (const fdb::ConflictError& e) {
    EXPECT_EQ(e.field(), "users.token_sha256");
    EXPECT_EQ(e.code(), "conflict");
  }
  EXPECT_THROW(database().users().create({json::object(), token}),
               std::invalid_argument);  // not a hash
}

TEST(UserRepository, MalformedAndUnknownIdsAreNotFound) {
  EXPECT_FALSE(database().users().find("not-a-uuid").has_value());
  EXPECT_FALSE(database().users().find("'; DROP TABLE users; --").has_value());
  EXPECT_FALSE(database().users().find("00000000-0000-0000-0000-000000000000").has_value());
  EXPECT_THROW(
      database().users().update_profile("00000000-0000-0000-0000-000000000000", json::object()),
      fdb::NotFoundError);
  EXPECT_THROW(database().users().create({json::array(), std::string(64, '0')}),
               std::invalid_argument);
}

TEST(UserStateRepository, PutGetLatestAndVersionChecks) {
  const auto user = make_user();
  using namespace std::chrono;
  const year_month_day monday{year{2024}, month{5}, day{6}};
  const year_month_day tuesday{year{2024}, month{5}, day{7}};
  auto& states = database().user_state();

  const auto first = states.put(user.id, monday, json{{"kcal", 0}}, 0);
  EXPECT_EQ(first.version, 1);
  EXPECT_EQ(first.day, monday);
  EXPECT_THROW(states.put(user.id, monday, json{{"kcal", 1}}, 0),
               fdb::ConflictError);  // exists already
  const auto second = states.put(user.id, monday, json{{"kcal", 650}}, 1);
  EXPECT_EQ(second.version, 2);
  try {
    states.put(user.id, monday, json{{"kcal", 9}}, 1);  // stale version
    FAIL();
  } catch (const fdb::ConflictError& e) {
    EXPECT_EQ(e.field(), "user_state.version");
  }
  EXPECT_EQ(states.put(user.id, monday, json{{"kcal", 700}}).version, 3);  // unconditional
  states.put(user.id, tuesday, json{{"kcal", 10}});

  EXPECT_EQ(states.get(user.id, monday)->state["kcal"], 700);
  EXPECT_EQ(states.latest(user.id)->day, tuesday);
  EXPECT_FALSE(states.get(user.id, year_month_day{year{2024}, month{1}, day{1}}).has_value());
  EXPECT_THROW(states.put("00000000-0000-0000-0000-000000000000", monday, json::object()),
               fdb::NotFoundError);
  EXPECT_THROW(states.put(user.id, year_month_day{year{2024}, month{2}, day{30}}, json::object()),
               std::invalid_argument);
}

TEST(DecisionRepository, RoundTripKeepsEverythingOffPolicyEvaluationNeeds) {
  const auto user = make_user();
  auto logged = decision_for(user.id);
  logged.candidate_features = {1, 2, 3, 4, 5, 6};
  logged.candidate_feature_dim = 2;
  logged.context = json{{"request_id", "r-1"}};
  logged.decided_at = fdb::Timestamp(std::chrono::microseconds(1'714'989'000'123'456));
  const auto stored = database().decisions().record(logged);
  EXPECT_TRUE(fdb::is_uuid(stored.event_id));

  const auto found = database().decisions().find(stored.event_id);
  ASSERT_TRUE(found.has_value());
  const auto& d = found->logged;
  EXPECT_EQ(d.user_id, user.id);
  EXPECT_EQ(d.decided_at, logged.decided_at);
  EXPECT_EQ(d.slot, fdb::Slot::lunch);
  EXPECT_EQ(d.model_version, "tabular-test");
  EXPECT_EQ(d.policy, "epsilon_greedy");
  EXPECT_EQ(d.epsilon, 0.1);
  EXPECT_EQ(d.candidates, logged.candidates);
  // Scores and features are stored as float32: each comes back as the nearest float.
  const auto as_floats = [](std::vector<double> v) {
    for (double& x : v) x = static_cast<double>(static_cast<float>(x));
    return v;
  };
  EXPECT_EQ(d.scores, as_floats(logged.scores));
  EXPECT_NE(as_floats(logged.state_features), logged.state_features);  // 1/3 is not a float: the test sees rounding
  EXPECT_EQ(d.probabilities, logged.probabilities);
  EXPECT_EQ(d.chosen, "pad_thai_shrimp");
  EXPECT_EQ(d.ranked, logged.ranked);
  EXPECT_EQ(d.state_features, as_floats(logged.state_features));
  EXPECT_EQ(d.candidate_features, as_floats(logged.candidate_features));
  EXPECT_EQ(d.candidate_feature_dim, 2);
  EXPECT_EQ(d.context["request_id"], "r-1");

  const auto mine = database().decisions().list_for_user(user.id);
  ASSERT_EQ(mine.size(), 1U);
  EXPECT_EQ(mine[0].event_id, stored.event_id);
  const auto window = database().decisions().list_between(
      *logged.decided_at, *logged.decided_at + std::chrono::microseconds(1));
  ASSERT_FALSE(window.empty());
  EXPECT_EQ(window[0].event_id, stored.event_id);
}

TEST(DecisionRepository, RejectsInconsistentDecisionsNamingTheField) {
  const auto user = make_user();
  auto expect_field = [&](fdb::NewDecision d, const std::string& field) {
    try {
      database().decisions().record(d);
      FAIL() << "accepted a decision with a bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind(field + ":", 0), 0U) << e.what();
    }
  };
  auto d = decision_for(user.id);
  d.scores.pop_back();
  expect_field(d, "scores");
  d = decision_for(user.id);
  d.probabilities = {0.5, 0.5, 0.5};
  expect_field(d, "probabilities");
  d = decision_for(user.id);
  d.chosen = "burger";
  expect_field(d, "chosen");
  d = decision_for(user.id);
  d.epsilon = 1.5;
  expect_field(d, "epsilon");
  d = decision_for(user.id);
  d.candidates[1] = d.candidates[0];
  expect_field(d, "candidates");
  d = decision_for("00000000-0000-0000-0000-000000000000");
  EXPECT_THROW(database().decisions().record(d), fdb::NotFoundError);
}

TEST(FeedbackRepository, SameKeyTwiceIsOneRowAndTheSecondCallReportsADuplicate) {
  const auto user = make_user();
  const auto event = database().decisions().record(decision_for(user.id));
  const std::string key = "fb-" + unique_suffix();

  const auto first = database().feedback().record(feedback_for(event.event_id, key));
  EXPECT_FALSE(first.duplicate);
  const auto second = database().feedback().record(feedback_for(event.event_id, key));
  EXPECT_TRUE(second.duplicate);
  EXPECT_EQ(second.feedback_id, first.feedback_id);
  // Through the group-commit writer as well.
  const auto third = database().feedback_writer().submit(feedback_for(event.event_id, key));
  EXPECT_TRUE(third.duplicate);
  EXPECT_EQ(third.feedback_id, first.feedback_id);

  const auto rows = database().feedback().list_for_event(event.event_id);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].recorded.reward, 1.2345678901234567);
  EXPECT_EQ(rows[0].recorded.rating, 4);
  EXPECT_EQ(database().feedback().find_by_key(key)->id, first.feedback_id);
}

TEST(FeedbackRepository, ReusedKeyWithDifferentContentIsAConflictAndUnknownEventIsNotFound) {
  const auto user = make_user();
  const auto event = database().decisions().record(decision_for(user.id));
  const std::string key = "fb-" + unique_suffix();
  database().feedback().record(feedback_for(event.event_id, key));
  auto changed = feedback_for(event.event_id, key);
  changed.outcome = fdb::Outcome::rejected;
  try {
    database().feedback().record(changed);
    FAIL();
  } catch (const fdb::ConflictError& e) {
    EXPECT_EQ(e.field(), "feedback.idempotency_key");
  }
  try {
    database().feedback().record(
        feedback_for("00000000-0000-0000-0000-000000000000", "fb-" + unique_suffix()));
    FAIL();
  } catch (const fdb::NotFoundError& e) {
    EXPECT_EQ(e.field(), "decisions.event_id");
  }
  auto bad = feedback_for(event.event_id, "fb-" + unique_suffix());
  bad.rating = 9;
  EXPECT_THROW(database().feedback().record(bad), std::invalid_argument);
  bad = feedback_for(event.event_id, "");
  EXPECT_THROW(database().feedback().record(bad), std::invalid_argument);
  // Byte sequences shaped like UTF-8 that are not (review, 2026-12-01: they passed the check
  // and failed later, in JSON serialisation, with an error that was not the caller's):
  // a UTF-16 surrogate, an overlong form, a code point above U+10FFFF.
  for (const char* not_utf8 : {"\xED\xA0\x80", "\xE0\x80\x80", "\xF0\x80\x80\x80", "\xF4\x90\x80\x80"}) {
    bad = feedback_for(event.event_id, std::string("fb-") + not_utf8);
    EXPECT_THROW(database().feedback().record(bad), std::invalid_argument) << "key bytes " << shown_bytes(not_utf8);
  }
  // The boundaries of those ranges are valid: U+0800, U+D7FF, U+10000, U+10FFFF.
  for (const char* utf8 : {"\xE0\xA0\x80", "\xED\x9F\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    auto ok = feedback_for(event.event_id, std::string("fb-") + utf8 + unique_suffix());
    EXPECT_NO_THROW(database().feedback().record(ok)) << "key bytes " << shown_bytes(utf8);
  }
}

TEST(MealLogRepository, AddListAndIdempotentRepeat) {
  const auto user = make_user();
  const auto event = database().decisions().record(decision_for(user.id));
  fdb::NewMealLogEntry entry;
  entry.user_id = user.id;
  entry.meal_id = "greek_salad";
  entry.slot = fdb::Slot::dinner;
  entry.eaten_at = fdb::Timestamp(std::chrono::microseconds(1'715'000'000'000'000));
  entry.servings = 1.5;
  entry.event_id = event.event_id;
  entry.idempotency_key = "meal-" + unique_suffix();
  const auto first = database().meal_log().add(entry);
  EXPECT_FALSE(first.duplicate);
  const auto again = database().meal_log().add(entry);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.entry.id, first.entry.id);

  entry.idempotency_key.reset();
  entry.event_id.reset();
  entry.eaten_at += std::chrono::hours(1);
  database().meal_log().add(entry);
  const auto listed = database().meal_log().list_for_user(user.id, fdb::Timestamp{},
                                                          entry.eaten_at + std::chrono::hours(1));
  ASSERT_EQ(listed.size(), 2U);
  EXPECT_EQ(listed[0].logged.meal_id, "greek_salad");
  EXPECT_EQ(listed[0].logged.servings, 1.5);
  EXPECT_EQ(listed[0].logged.event_id, event.event_id);
  EXPECT_FALSE(listed[1].logged.event_id.has_value());
}

TEST(ModelRepository, RegisterPromoteRollbackAndRetire) {
  auto& models = database().models();
  const std::string a = new_model_version();
  const std::string b = new_model_version();
  const auto registered = models.register_model(model(a));
  EXPECT_EQ(registered.status, fdb::ModelStatus::candidate);
  EXPECT_THROW(models.register_model(model(a)), fdb::ConflictError);
  models.register_model(model(b));

  EXPECT_EQ(models.promote(a).status, fdb::ModelStatus::production);
  EXPECT_EQ(models.production()->registered.version, a);
  const auto promoted_b = models.promote(b);
  EXPECT_EQ(promoted_b.status, fdb::ModelStatus::production);
  EXPECT_EQ(models.find(a)->status, fdb::ModelStatus::retired);
  EXPECT_EQ(models.promote(a).status, fdb::ModelStatus::production);  // rollback
  EXPECT_EQ(models.find(b)->status, fdb::ModelStatus::retired);

  EXPECT_THROW(models.promote("no-such-model"), fdb::NotFoundError);
  EXPECT_EQ(models.production()->registered.version, a)
      << "a failed promotion must not retire production";
  EXPECT_EQ(models.find(a)->registered.metrics["return_mean"], 12.5);
  EXPECT_EQ(models.retire(a).status, fdb::ModelStatus::retired);
  EXPECT_FALSE(models.production().has_value());
  EXPECT_THROW(models.register_model(model("../etc")), std::invalid_argument);
}

TEST(ModelRepository, TheSchemaAllowsOneProductionModelWhateverTheClient) {
  auto& models = database().models();
  const std::string a = new_model_version();
  const std::string b = new_model_version();
  models.register_model(model(a));
  models.register_model(model(b));
  models.promote(a);
  // A client that bypasses the repository cannot make a second production model.
  pqxx::connection c(shared_instance().url());
  pqxx::work tx(c);
  EXPECT_THROW(tx.exec_params("UPDATE models SET status = 'production' WHERE version = $1", b),
               pqxx::unique_violation);
}

TEST(ModelRepository, ConcurrentPromotionsLeaveExactlyOneProductionModel) {
  auto& models = database().models();
  std::vector<std::string> versions;
  for (int i = 0; i < 6; ++i) {
    versions.push_back(new_model_version());
    models.register_model(model(versions.back()));
  }
  std::vector<std::thread> threads;
  for (const auto& v : versions) {
    threads.emplace_back([&models, v] {
      try {
        models.promote(v);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "promote " << v << ": " << e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  int production = 0;
  for (const auto& m : models.list())
    production += m.status == fdb::ModelStatus::production ? 1 : 0;
  EXPECT_EQ(production, 1);
}

TEST(TrainingRunAndEvalReportRepositories, RoundTrip) {
  const std::string run_id = "run-" + unique_suffix();
  auto& runs = database().training_runs();
  const auto started =
      runs.start({run_id, "tabular", "mealsim", json{{"episodes", 1000}}, "abc123"});
  EXPECT_EQ(started.status, fdb::RunStatus::running);
  EXPECT_FALSE(started.finished_at.has_value());
  EXPECT_THROW(runs.start({run_id, "tabular", "mealsim", json::object(), ""}), fdb::ConflictError);
  const std::string version = new_model_version();
  database().models().register_model(model(version));
  const auto finished = runs.finish(run_id, fdb::RunStatus::finished, json{{"return_mean", 3.5}},
                                    "runs/x/final.safetensors", version);
  EXPECT_EQ(finished.status, fdb::RunStatus::finished);
  EXPECT_TRUE(finished.finished_at.has_value());
  EXPECT_EQ(runs.find(run_id)->model_version, version);
  EXPECT_EQ(runs.find(run_id)->started.config["episodes"], 1000);
  EXPECT_THROW(runs.finish("no-such-run", fdb::RunStatus::failed, json::object()),
               fdb::NotFoundError);

  auto& reports = database().eval_reports();
  const auto saved = reports.add({version, "snips", json{{"value", 0.42}, {"ci", {0.4, 0.44}}}});
  EXPECT_EQ(reports.find(saved.id)->saved.report["value"], 0.42);
  const auto listed = reports.list_for_model(version);
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].saved.method, "snips");
}
