// service::handle() in process (no network) on a real PostgreSQL (a throwaway instance per
// test process): every route's happy path, a user's whole day, every error status, the
// authorization matrix, idempotent feedback, promotion and the safety mask.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "forkcast/db/database.hpp"
#include "forkcast/db/errors.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "pg_test_support.hpp"
#include "service_test_support.hpp"

namespace fs = std::filesystem;
namespace st = forkcast::service::testing;
using st::at_utc;
using forkcast::service::Application;
using forkcast::service::ApplicationOptions;
using nlohmann::json;
using verb = boost::beast::http::verb;

namespace {

std::unique_ptr<forkcast::db::Database> make_database() {
  forkcast::db::DatabaseOptions o;
  o.url = forkcast::db::testing::shared_instance().url();
  o.pool_size = 4;
  o.checkout_timeout_ms = 2'000;
  return std::make_unique<forkcast::db::Database>(o);
}

ApplicationOptions app_options(forkcast::config::Config config = st::test_config()) {
  ApplicationOptions o;
  o.config = std::move(config);
  o.default_model = st::serving_model();
  return o;
}


struct User {
  std::string id;
  std::string token;
};

class ServiceRouter : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    database_ = make_database().release();
    app_ = new Application(app_options(), st::catalog(), *database_);
  }
  static void TearDownTestSuite() {
    delete app_;
    delete database_;
    app_ = nullptr;
    database_ = nullptr;
  }

  static st::Reply call(verb method, const std::string& target, const std::string& body = {},
                        const std::string& token = {}) {
    return st::call(*app_, method, target, body, token);
  }
  static st::Reply post(const std::string& target, const json& body, const std::string& token = {}) {
    return st::call_json(*app_, verb::post, target, body, token);
  }

  // The decision row once the asynchronous log has stored it (waits up to 10 s).
  static std::optional<forkcast::db::Decision> stored_decision(const std::string& event_id) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::optional<forkcast::db::Decision> d;
    while (!(d = database_->decisions().find(event_id)) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return d;
  }

  static User create_user(json profile = st::profile_body()) {
    const auto r = post("/v1/users", profile);
    EXPECT_EQ(r.status, 201U) << r.text;
    return {r.body.value("id", ""), r.body.value("token", "")};
  }

  static json recommend(const User& u, const std::string& slot, const std::string& time, int n = 3) {
    const auto r = post("/v1/recommendations", {{"user_id", u.id}, {"slot", slot}, {"time", time}, {"n", n}}, u.token);
    EXPECT_EQ(r.status, 200U) << r.text;
    return r.body;
  }

  static forkcast::db::Database* database_;
  static Application* app_;
};

forkcast::db::Database* ServiceRouter::database_ = nullptr;
Application* ServiceRouter::app_ = nullptr;

const forkcast::env::Meal& meal_of(const std::string& id) {
  const auto m = st::catalog().find_meal(id);
  EXPECT_TRUE(m.has_value()) << id;
  return st::catalog().meals()[*m];
}

}  // namespace

// ---- happy paths ----------------------------------------------------------------------

TEST_F(ServiceRouter, OperationsRoutes) {
  auto r = call(verb::get, "/livez");
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(r.body["status"], "alive");
  EXPECT_FALSE(r.header("X-Request-Id").empty());
  r = call(verb::head, "/livez");
  EXPECT_EQ(r.status, 200U);

  r = call(verb::get, "/readyz");
  EXPECT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["status"], "ready");
  EXPECT_EQ(r.body["database"], "ok");
  EXPECT_EQ(r.body["model"], "mealsim-dqn-default");

  r = call(verb::get, "/metrics");
  EXPECT_EQ(r.status, 200U);
  EXPECT_NE(r.header("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(r.text.find("# TYPE"), std::string::npos);

  r = call(verb::get, "/openapi.json");
  EXPECT_EQ(r.status, 200U);
  EXPECT_TRUE(r.body.is_object());
  EXPECT_EQ(r.body.value("openapi", "").substr(0, 3), "3.1");

  r = call(verb::get, "/");
  EXPECT_EQ(r.status, 200U);
  EXPECT_NE(r.header("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r.text.find("<html"), std::string::npos);
}

TEST_F(ServiceRouter, UsersCreateGetPatch) {
  const User u = create_user();
  ASSERT_EQ(u.id.size(), 36U);
  EXPECT_EQ(u.token.substr(0, 3), "fc_");

  auto r = call(verb::get, "/v1/users/" + u.id, {}, u.token);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["id"], u.id);
  EXPECT_EQ(r.body["profile"]["age"], 34);
  EXPECT_EQ(r.body["profile"]["sex"], "female");
  EXPECT_GT(r.body["targets"]["kcal"].get<double>(), 1000);
  EXPECT_FALSE(r.body.contains("token"));  // shown once, at creation

  r = st::call_json(*app_, verb::patch, "/v1/users/" + u.id, {{"weight_kg", 70.5}, {"allergens", {"peanuts"}}}, u.token);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_DOUBLE_EQ(r.body["profile"]["weight_kg"].get<double>(), 70.5);
  EXPECT_EQ(r.body["profile"]["allergens"], json::array({"peanuts"}));
  EXPECT_EQ(r.body["profile"]["age"], 34);  // untouched fields keep their values

  // The change is durable: the row in users says so.
  const auto stored = database_->users().find(u.id);
  ASSERT_TRUE(stored);
  EXPECT_DOUBLE_EQ(stored->profile["weight_kg"].get<double>(), 70.5);

  // The admin key may read any user.
  r = call(verb::get, "/v1/users/" + u.id, {}, st::kAdminKey);
  EXPECT_EQ(r.status, 200U);
}

TEST_F(ServiceRouter, MealsListAndGet) {
  auto r = call(verb::get, "/v1/meals?slot=breakfast&limit=5");
  ASSERT_EQ(r.status, 200U) << r.text;
  ASSERT_EQ(r.body["meals"].size(), 5U);
  EXPECT_GT(r.body["total"].get<int>(), 5);
  for (const auto& m : r.body["meals"]) EXPECT_EQ(m["slot"], "breakfast");

  r = call(verb::get, "/v1/meals?free_of=peanuts&free_of=milk&diet=vegetarian&limit=500");
  ASSERT_EQ(r.status, 200U);
  ASSERT_GT(r.body["meals"].size(), 0U);
  for (const auto& m : r.body["meals"]) {
    const auto& allergens = m["allergens"];
    EXPECT_EQ(std::count(allergens.begin(), allergens.end(), "peanuts"), 0) << m["id"];
    EXPECT_EQ(std::count(allergens.begin(), allergens.end(), "milk"), 0) << m["id"];
    EXPECT_NE(std::count(m["diets"].begin(), m["diets"].end(), "vegetarian"), 0) << m["id"];
  }

  const std::string id = r.body["meals"][0]["id"];
  r = call(verb::get, "/v1/meals/" + id);
  ASSERT_EQ(r.status, 200U);
  EXPECT_EQ(r.body["id"], id);
  EXPECT_TRUE(r.body["ingredients"].is_array());
  EXPECT_GT(r.body["ingredients"].size(), 0U);
  EXPECT_NEAR(r.body["nutrition"]["kcal"].get<double>(), std::round(meal_of(id).per_serving.kcal), 0.5);
}

TEST_F(ServiceRouter, AdviceAndModels) {
  const User u = create_user();
  const json rec = recommend(u, "lunch", at_utc(1, 12, 30));
  const std::string meal = rec["meals"][0]["meal_id"];
  auto r = post("/v1/advice", {{"user_id", u.id}, {"meal_id", meal}}, u.token);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["meal_id"], meal);
  EXPECT_FALSE(r.body["text"].get<std::string>().empty());
  EXPECT_EQ(r.body["source"], "template");  // no engine in this Application

  r = call(verb::get, "/v1/models", {}, st::kAdminKey);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["serving"], "mealsim-dqn-default");
  bool production = false;
  for (const auto& m : r.body["models"]) {
    if (m["version"] == "mealsim-dqn-default") production = m["status"] == "production";
  }
  EXPECT_TRUE(production) << r.text;
}

// ---- a user's day -----------------------------------------------------------------------

TEST_F(ServiceRouter, AUsersWholeDay) {
  const User u = create_user();
  struct Slot {
    const char* name;
    int hour;
  };
  const Slot slots[] = {{"breakfast", 8}, {"lunch", 12}, {"dinner", 18}, {"snack", 22}};
  double eaten_kcal = 0, eaten_protein = 0;
  std::set<std::string> events;
  int i = 0;
  for (const Slot& s : slots) {
    const json rec = recommend(u, s.name, at_utc(1, s.hour, 15), 3);
    ASSERT_EQ(rec["slot"], s.name);
    ASSERT_EQ(rec["user_id"], u.id);
    ASSERT_EQ(rec["model_version"], "mealsim-dqn-default");
    ASSERT_EQ(rec["meals"].size(), 3U);
    const std::string event = rec["event_id"];
    EXPECT_TRUE(events.insert(event).second);
    double total_p = 0;
    for (std::size_t k = 0; k < rec["meals"].size(); ++k) {
      const auto& m = rec["meals"][k];
      EXPECT_EQ(m["rank"], k + 1);
      EXPECT_EQ(meal_of(m["meal_id"]).slot, forkcast::env::parse_slot(s.name).value());
      EXPECT_TRUE(m["nutrition"].contains("kcal"));
      EXPECT_TRUE(m["score"].is_number());
      EXPECT_GE(m["probability"].get<double>(), 0.0);
      EXPECT_FALSE(m["reasons"].empty());
      total_p += m["probability"].get<double>();
    }
    EXPECT_LE(total_p, 1.0 + 1e-9);
    // Breakfast and dinner accepted (rated), lunch rejected, the snack accepted unrated.
    const bool accept = i != 1;
    const std::string meal = rec["meals"][accept ? 0 : 1]["meal_id"];
    json fb = {{"event_id", event}, {"meal_id", meal}, {"outcome", accept ? "accepted" : "rejected"},
               {"idempotency_key", "day-" + u.id + "-" + std::to_string(i)}};
    if (i % 2 == 0) fb["rating"] = 4;
    const auto r = post("/v1/feedback", fb, u.token);
    ASSERT_EQ(r.status, 201U) << r.text;
    EXPECT_EQ(r.body["duplicate"], false);
    EXPECT_EQ(r.body["event_id"], event);
    if (accept) {
      eaten_kcal += meal_of(meal).per_serving.kcal;
      eaten_protein += meal_of(meal).per_serving.protein_g;
    }
    ++i;
  }
  // A meal eaten outside the recommendations: half a serving of a snack.
  const auto& meals = st::catalog().meals();
  const auto snack = std::find_if(meals.begin(), meals.end(), [](const forkcast::env::Meal& m) {
    return m.slot == forkcast::env::Slot::snack && m.allergens == 0;
  });
  ASSERT_NE(snack, meals.end());
  const std::string extra = snack->id;
  auto r = post("/v1/meals/log", {{"user_id", u.id}, {"meal_id", extra}, {"slot", "snack"}, {"time", at_utc(1, 22, 45)},
                                  {"servings", 0.5}, {"idempotency_key", "log-" + u.id}},
                u.token);
  ASSERT_EQ(r.status, 201U) << r.text;
  EXPECT_EQ(r.body["duplicate"], false);
  eaten_kcal += 0.5 * meal_of(extra).per_serving.kcal;
  eaten_protein += 0.5 * meal_of(extra).per_serving.protein_g;
  // The same log entry again is a duplicate and does not count twice.
  r = post("/v1/meals/log", {{"user_id", u.id}, {"meal_id", extra}, {"slot", "snack"}, {"time", at_utc(1, 22, 45)},
                             {"servings", 0.5}, {"idempotency_key", "log-" + u.id}},
           u.token);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["duplicate"], true);

  r = call(verb::get, "/v1/users/" + u.id + "/state", {}, u.token);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["slot"], "snack");
  EXPECT_EQ(r.body["date"], at_utc(1, 0, 0).substr(0, 10));
  EXPECT_NEAR(r.body["intake_today"]["kcal"].get<double>(), eaten_kcal, 1.0) << r.text;
  EXPECT_NEAR(r.body["intake_today"]["protein_g"].get<double>(), eaten_protein, 0.2) << r.text;
  const double target = r.body["targets"]["kcal"].get<double>();
  EXPECT_NEAR(r.body["remaining_kcal"].get<double>(), target - eaten_kcal, 1.5);
  EXPECT_EQ(r.body["recommendations_served"], 4);
  EXPECT_EQ(r.body["recent_recommendations"].size(), 4U);
  EXPECT_EQ(r.body["recent_recommendations"][0]["slot"], "snack");  // newest first

  // Everything durable: four decisions (once the log drains), four feedback rows, one
  // meal-log entry, and the state row carries the intake.
  for (const auto& e : events) {
    const auto d = stored_decision(e);
    ASSERT_TRUE(d) << e;
    EXPECT_EQ(d->logged.user_id, u.id);
    EXPECT_EQ(d->logged.model_version, "mealsim-dqn-default");
  }
  for (int k = 0; k < 4; ++k) {
    const auto f = database_->feedback().find_by_key("day-" + u.id + "-" + std::to_string(k));
    ASSERT_TRUE(f) << k;
    EXPECT_EQ(f->recorded.outcome, k == 1 ? forkcast::db::Outcome::rejected : forkcast::db::Outcome::accepted);
  }
  const auto latest = database_->user_state().latest(u.id);
  ASSERT_TRUE(latest);
  EXPECT_NEAR(latest->state["intake_today"][0].get<double>(), eaten_kcal, 1e-6);
}

// The learner must score logged candidates as the serving model did: the stored row (the
// observation, the candidates' recencies, the catalog it names) rebuilds every score.
TEST_F(ServiceRouter, ALoggedDecisionRebuildsTheServedScoresFromItsRow) {
  const User u = create_user();
  // A day of accepted meals first, so that some candidates have a non-zero recency.
  std::vector<std::string> events;
  const char* slots[] = {"breakfast", "lunch", "dinner", "snack", "breakfast", "lunch"};
  for (int k = 0; k < 6; ++k) {
    const json rec = recommend(u, slots[k], at_utc(1 + k / 4, 8 + 4 * (k % 4), 0), 1);
    events.push_back(rec["event_id"]);
    const json fb = {{"event_id", rec["event_id"]}, {"meal_id", rec["meals"][0]["meal_id"]}, {"outcome", "accepted"},
                     {"idempotency_key", "rebuild-" + u.id + "-" + std::to_string(k)}};
    ASSERT_EQ(post("/v1/feedback", fb, u.token).status, 201U);
  }
  const auto snapshot = app_->model()->snapshot;
  auto workspace = snapshot->make_workspace();
  int nonzero_recency = 0;
  for (const auto& e : events) {
    const auto d = stored_decision(e);
    ASSERT_TRUE(d) << e;
    const auto& row = d->logged;
    ASSERT_EQ(row.candidate_feature_dim, 1) << "no recency logged";
    ASSERT_EQ(row.candidate_features.size(), row.candidates.size());
    EXPECT_EQ(row.context.value("candidate_features", ""), "recency");
    EXPECT_EQ(row.context.value("catalog", ""), st::catalog().content_hash().substr(0, 16));
    std::vector<std::int32_t> candidates;
    std::vector<float> recency, observation(row.state_features.begin(), row.state_features.end());
    for (std::size_t i = 0; i < row.candidates.size(); ++i) {
      const auto index = st::catalog().find_meal(row.candidates[i]);
      ASSERT_TRUE(index) << row.candidates[i];
      candidates.push_back(static_cast<std::int32_t>(*index));
      recency.push_back(static_cast<float>(row.candidate_features[i]));
      nonzero_recency += recency.back() > 0 ? 1 : 0;
    }
    std::vector<float> scores(candidates.size());
    snapshot->score(observation, candidates, recency, scores, workspace);
    for (std::size_t i = 0; i < scores.size(); ++i) {
      EXPECT_EQ(scores[i], static_cast<float>(row.scores[i])) << e << " candidate " << row.candidates[i];
    }
  }
  EXPECT_GT(nonzero_recency, 0) << "every recency was 0: the check proved nothing about them";
}

TEST_F(ServiceRouter, IdempotentFeedback) {
  const User u = create_user();
  const json rec = recommend(u, "dinner", at_utc(1, 19, 0));
  const json fb = {{"event_id", rec["event_id"]}, {"meal_id", rec["meals"][0]["meal_id"]}, {"outcome", "eaten"},
                   {"rating", 5}, {"idempotency_key", "idem-" + u.id}};
  auto first = post("/v1/feedback", fb, u.token);
  ASSERT_EQ(first.status, 201U) << first.text;
  EXPECT_EQ(first.body["duplicate"], false);
  auto state1 = call(verb::get, "/v1/users/" + u.id + "/state", {}, u.token).body;

  auto second = post("/v1/feedback", fb, u.token);
  ASSERT_EQ(second.status, 200U) << second.text;
  EXPECT_EQ(second.body["duplicate"], true);
  EXPECT_EQ(second.body["feedback_id"], first.body["feedback_id"]);
  // The duplicate did not eat the meal twice.
  auto state2 = call(verb::get, "/v1/users/" + u.id + "/state", {}, u.token).body;
  EXPECT_EQ(state1["intake_today"], state2["intake_today"]);

  // The same key with other content is a conflict.
  json other = fb;
  other["outcome"] = "rejected";
  auto conflict = post("/v1/feedback", other, u.token);
  EXPECT_EQ(conflict.status, 409U) << conflict.text;
  EXPECT_EQ(conflict.error_code(), "conflict");
}

// ---- errors -----------------------------------------------------------------------------

TEST_F(ServiceRouter, BadInputIs400NamingTheField) {
  struct Case {
    json body;
    const char* code;
    const char* field;
  };
  json missing = st::profile_body();
  missing.erase("age");
  json unknown = st::profile_body();
  unknown["agee"] = 30;
  json wrong_type = st::profile_body();
  wrong_type["age"] = "thirty";
  json too_young = st::profile_body();
  too_young["age"] = 7;
  json negative = st::profile_body();
  negative["weight_kg"] = -60;
  json bad_choice = st::profile_body();
  bad_choice["sex"] = "x";
  json bad_allergen = st::profile_body();
  bad_allergen["allergens"] = {"milk", "kryptonite"};
  json nested_type = st::profile_body();
  nested_type["allergens"] = {"milk", 3};
  json float_age = st::profile_body();
  float_age["age"] = 30.5;
  json huge_int = st::profile_body();
  huge_int["age"] = 18446744073709551615ULL;
  json inf_like = st::profile_body();
  inf_like["height_cm"] = 1e308;
  const Case cases[] = {
      {missing, "missing_field", "age"},        {unknown, "unknown_field", "agee"},
      {wrong_type, "invalid_type", "age"},      {too_young, "out_of_range", "age"},
      {negative, "out_of_range", "weight_kg"},  {bad_choice, "invalid_value", "sex"},
      {bad_allergen, "invalid_value", "allergens[1]"}, {nested_type, "invalid_type", "allergens[1]"},
      {float_age, "invalid_type", "age"},       {huge_int, "out_of_range", "age"},
      {inf_like, "out_of_range", "height_cm"},
  };
  for (const auto& c : cases) {
    const auto r = post("/v1/users", c.body);
    EXPECT_EQ(r.status, 400U) << c.body.dump() << " -> " << r.text;
    EXPECT_EQ(r.error_code(), c.code) << r.text;
    EXPECT_EQ(r.error_field(), c.field) << r.text;
    EXPECT_FALSE(r.body["error"].value("message", "").empty());
  }

  // Malformed JSON, a non-object, invalid UTF-8: 400 with a JSON error body.
  for (const std::string& body : {std::string("{\"sex\":"), std::string("[1,2]"), std::string("{\"sex\":\"\xff\xfe\"}"),
                                 std::string("{} trailing"), std::string("{\"a\":1,}"),
                                  std::string("{\"age\":1e400}"), std::string("{\"age\":-1e400}")}) {
    const auto r = call(verb::post, "/v1/users", body);
    EXPECT_EQ(r.status, 400U) << body << " -> " << r.text;
    EXPECT_TRUE(r.error_code() == "invalid_json" || r.error_code() == "invalid_type") << r.text;
  }

  const User u = create_user();
  // Recommendations: huge n, negative n, n of the wrong type, an unknown slot, a bad time.
  const struct {
    json body;
    const char* code;
    const char* field;
  } rec_cases[] = {
      {{{"user_id", u.id}, {"n", 1000000000}}, "out_of_range", "n"},
      {{{"user_id", u.id}, {"n", -3}}, "out_of_range", "n"},
      {{{"user_id", u.id}, {"n", 0}}, "out_of_range", "n"},
      {{{"user_id", u.id}, {"n", "3"}}, "invalid_type", "n"},
      {{{"user_id", u.id}, {"n", 1e300}}, "invalid_type", "n"},
      {{{"user_id", u.id}, {"slot", "brunch"}}, "invalid_value", "slot"},
      {{{"user_id", u.id}, {"time", "yesterday"}}, "invalid_value", "time"},
      {{{"user_id", u.id}, {"time", "2026-02-30T10:00:00Z"}}, "invalid_value", "time"},
      {{{"user_id", u.id}, {"advice", "yes"}}, "invalid_type", "advice"},
      {{{"user_id", u.id}, {"extra", 1}}, "unknown_field", "extra"},
      {{{"n", 3}}, "missing_field", "user_id"},
      {{{"user_id", 42}}, "invalid_type", "user_id"},
  };
  for (const auto& c : rec_cases) {
    const auto r = post("/v1/recommendations", c.body, u.token);
    EXPECT_EQ(r.status, 400U) << c.body.dump() << " -> " << r.text;
    EXPECT_EQ(r.error_code(), c.code) << c.body.dump() << " -> " << r.text;
    EXPECT_EQ(r.error_field(), c.field) << c.body.dump() << " -> " << r.text;
  }

  const json rec = recommend(u, "lunch", at_utc(1, 12, 0));
  const std::string event = rec["event_id"], meal = rec["meals"][0]["meal_id"];
  const struct {
    json body;
    const char* code;
    const char* field;
  } fb_cases[] = {
      {{{"event_id", event}, {"meal_id", meal}, {"outcome", "loved"}, {"idempotency_key", "k1"}}, "invalid_value", "outcome"},
      {{{"event_id", event}, {"meal_id", meal}, {"idempotency_key", "k1"}}, "missing_field", "outcome"},
      {{{"event_id", event}, {"meal_id", meal}, {"outcome", "accepted"}}, "missing_field", "idempotency_key"},
      {{{"event_id", event}, {"meal_id", meal}, {"outcome", "accepted"}, {"rating", 6}, {"idempotency_key", "k1"}}, "out_of_range", "rating"},
      {{{"event_id", event}, {"meal_id", meal}, {"outcome", "accepted"}, {"rating", -1}, {"idempotency_key", "k1"}}, "out_of_range", "rating"},
      {{{"event_id", event}, {"meal_id", meal}, {"outcome", "accepted"}, {"idempotency_key", ""}}, "out_of_range", "idempotency_key"},
      {{{"event_id", event}, {"meal_id", meal}, {"outcome", "accepted"}, {"idempotency_key", std::string(300, 'k')}}, "out_of_range", "idempotency_key"},
  };
  for (const auto& c : fb_cases) {
    const auto r = post("/v1/feedback", c.body, u.token);
    EXPECT_EQ(r.status, 400U) << c.body.dump() << " -> " << r.text;
    EXPECT_EQ(r.error_code(), c.code) << r.text;
    EXPECT_EQ(r.error_field(), c.field) << r.text;
  }
  // A meal that was not recommended in the event.
  std::string other_meal;
  for (const auto& m : st::catalog().meals()) {
    bool shown = false;
    for (const auto& s : rec["meals"]) shown = shown || s["meal_id"] == m.id;
    if (!shown) {
      other_meal = m.id;
      break;
    }
  }
  auto r = post("/v1/feedback", {{"event_id", event}, {"meal_id", other_meal}, {"outcome", "accepted"}, {"idempotency_key", "k2"}}, u.token);
  EXPECT_EQ(r.status, 400U) << r.text;
  EXPECT_EQ(r.error_field(), "meal_id");

  // Meal log: servings out of range, negative, a bad event id.
  for (const json& body : {json{{"user_id", u.id}, {"meal_id", meal}, {"servings", 0}},
                           json{{"user_id", u.id}, {"meal_id", meal}, {"servings", -1}},
                           json{{"user_id", u.id}, {"meal_id", meal}, {"servings", 11}}}) {
    r = post("/v1/meals/log", body, u.token);
    EXPECT_EQ(r.status, 400U) << r.text;
    EXPECT_EQ(r.error_field(), "servings");
  }
  r = post("/v1/meals/log", {{"user_id", u.id}, {"meal_id", meal}, {"event_id", "not-a-uuid"}}, u.token);
  EXPECT_EQ(r.status, 400U) << r.text;
  EXPECT_EQ(r.error_field(), "event_id");

  // Query parameters.
  r = call(verb::get, "/v1/meals?limit=0");
  EXPECT_EQ(r.status, 400U);
  EXPECT_EQ(r.error_field(), "limit");
  r = call(verb::get, "/v1/meals?limit=-5");
  EXPECT_EQ(r.status, 400U);
  r = call(verb::get, "/v1/meals?limit=99999999999999999999999");
  EXPECT_EQ(r.status, 400U);
  r = call(verb::get, "/v1/meals?slot=brunch");
  EXPECT_EQ(r.status, 400U);
  EXPECT_EQ(r.error_field(), "slot");
  r = call(verb::get, "/v1/meals?colour=red");
  EXPECT_EQ(r.status, 400U);
  EXPECT_EQ(r.error_code(), "unknown_field");
  r = call(verb::get, "/v1/meals?slot=%zz");
  EXPECT_EQ(r.status, 400U);
  r = call(verb::get, "/v1/meals?slot=%4");
  EXPECT_EQ(r.status, 400U);

  // A profile that leaves no meal for some slot.
  json impossible = st::profile_body();
  impossible["diet"] = "vegan";
  impossible["allergens"] = {"gluten", "soy", "tree_nuts", "peanuts", "sesame"};
  r = post("/v1/users", impossible);
  if (r.status != 201U) {
    EXPECT_EQ(r.status, 400U) << r.text;
    EXPECT_EQ(r.error_code(), "unsatisfiable_profile");
  }
}

TEST_F(ServiceRouter, AuthenticationAndNotFoundStatuses) {
  const User u = create_user();
  // 401: no credentials, a malformed header, an unknown token.
  auto r = call(verb::get, "/v1/users/" + u.id);
  EXPECT_EQ(r.status, 401U) << r.text;
  EXPECT_EQ(r.error_field(), "Authorization");
  {
    forkcast::service::Request req{verb::get, "/v1/users/" + u.id, 11};
    req.set(boost::beast::http::field::authorization, "Basic dXNlcjpwYXNz");
    const auto resp = forkcast::service::handle(*app_, req, {"t", "127.0.0.1"});
    EXPECT_EQ(resp.result_int(), 401U);
  }
  r = call(verb::get, "/v1/users/" + u.id, {}, "fc_00000000000000000000000000000000");
  EXPECT_EQ(r.status, 401U);
  r = call(verb::get, "/v1/users/" + u.id, {}, std::string(1000, 'x'));
  EXPECT_EQ(r.status, 401U);
  r = post("/v1/recommendations", {{"user_id", u.id}});
  EXPECT_EQ(r.status, 401U);
  r = post("/v1/feedback", {{"event_id", "00000000-0000-4000-8000-000000000000"}, {"meal_id", "x"}, {"outcome", "accepted"}, {"idempotency_key", "k"}});
  EXPECT_EQ(r.status, 401U);
  r = call(verb::get, "/v1/models");
  EXPECT_EQ(r.status, 401U);
  // 403: a user token on an admin route.
  r = call(verb::get, "/v1/models", {}, u.token);
  EXPECT_EQ(r.status, 403U);
  r = call(verb::post, "/v1/models/mealsim-dqn-default/promote", {}, u.token);
  EXPECT_EQ(r.status, 403U);
  // 404: unknown route, unknown meal, unknown event, unknown user (as admin), unknown model.
  r = call(verb::get, "/v2/users");
  EXPECT_EQ(r.status, 404U);
  EXPECT_EQ(r.error_code(), "not_found");
  r = call(verb::get, "/v1/meals/no-such-meal");
  EXPECT_EQ(r.status, 404U);
  r = post("/v1/feedback", {{"event_id", "00000000-0000-4000-8000-000000000000"}, {"meal_id", "x"}, {"outcome", "accepted"}, {"idempotency_key", "k404"}}, u.token);
  EXPECT_EQ(r.status, 404U) << r.text;
  EXPECT_EQ(r.error_field(), "event_id");
  r = post("/v1/feedback", {{"event_id", "not-a-uuid"}, {"meal_id", "x"}, {"outcome", "accepted"}, {"idempotency_key", "k404b"}}, u.token);
  EXPECT_EQ(r.status, 404U) << r.text;
  r = call(verb::get, "/v1/users/00000000-0000-4000-8000-000000000000", {}, st::kAdminKey);
  EXPECT_EQ(r.status, 404U) << r.text;
  r = call(verb::get, "/v1/users/not-a-uuid", {}, st::kAdminKey);
  EXPECT_EQ(r.status, 404U) << r.text;
  r = call(verb::post, "/v1/models/no-such-version/promote", {}, st::kAdminKey);
  EXPECT_EQ(r.status, 404U) << r.text;
  r = post("/v1/recommendations", {{"user_id", u.id}, {"n", 2}}, u.token);
  EXPECT_EQ(r.status, 200U) << r.text;
  r = post("/v1/meals/log", {{"user_id", u.id}, {"meal_id", "no-such-meal"}}, u.token);
  EXPECT_EQ(r.status, 404U);
  EXPECT_EQ(r.error_field(), "meal_id");
  // 405: a known path with another method.
  for (const auto& [method, target] : std::vector<std::pair<verb, std::string>>{
           {verb::delete_, "/v1/users/" + u.id}, {verb::put, "/v1/users/" + u.id}, {verb::get, "/v1/recommendations"},
           {verb::get, "/v1/feedback"}, {verb::post, "/v1/meals"}, {verb::post, "/livez"}, {verb::delete_, "/v1/models"}}) {
    r = call(method, target, {}, u.token);
    EXPECT_EQ(r.status, 405U) << target << " " << r.text;
    EXPECT_EQ(r.error_code(), "method_not_allowed");
  }
}

// ---- authorization matrix ---------------------------------------------------------------

TEST_F(ServiceRouter, AUsersTokenNeverReachesAnotherUsersObjects) {
  const User a = create_user();
  json b_profile = st::profile_body();
  b_profile["age"] = 51;
  const User b = create_user(b_profile);
  const json rec_a = recommend(a, "breakfast", at_utc(1, 8, 0));
  const std::string event_a = rec_a["event_id"], meal_a = rec_a["meals"][0]["meal_id"];
  // A's feedback and a meal-log entry exist, so that "already there" cases are covered too.
  ASSERT_EQ(post("/v1/feedback", {{"event_id", event_a}, {"meal_id", meal_a}, {"outcome", "accepted"}, {"idempotency_key", "a-" + a.id}}, a.token).status, 201U);
  const auto a_state_before = call(verb::get, "/v1/users/" + a.id + "/state", {}, a.token).body;
  const auto a_user_before = call(verb::get, "/v1/users/" + a.id, {}, a.token).body;
  // Wait until A's decision is stored, so that the event-id cases reach the database path.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!database_->decisions().find(event_a) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  struct Attempt {
    verb method;
    std::string target;
    json body;
    std::set<unsigned> allowed;
  };
  const std::vector<Attempt> attempts = {
      {verb::get, "/v1/users/" + a.id, nullptr, {403}},
      {verb::patch, "/v1/users/" + a.id, {{"age", 99}}, {403}},
      {verb::patch, "/v1/users/" + a.id, json::object(), {403}},
      {verb::get, "/v1/users/" + a.id + "/state", nullptr, {403}},
      {verb::get, "/v1/users/" + a.id + "/state?x=1", nullptr, {403}},
      {verb::post, "/v1/recommendations", {{"user_id", a.id}}, {403}},
      {verb::post, "/v1/recommendations", {{"user_id", a.id}, {"advice", true}, {"n", 1}}, {403}},
      {verb::post, "/v1/feedback", {{"event_id", event_a}, {"meal_id", meal_a}, {"outcome", "rejected"}, {"idempotency_key", "b-steal-" + b.id}}, {403, 404}},
      // B replaying A's idempotency key must not learn A's feedback id.
      {verb::post, "/v1/feedback", {{"event_id", event_a}, {"meal_id", meal_a}, {"outcome", "accepted"}, {"idempotency_key", "a-" + a.id}}, {403, 404}},
      {verb::post, "/v1/meals/log", {{"user_id", a.id}, {"meal_id", meal_a}}, {403}},
      {verb::post, "/v1/meals/log", {{"user_id", b.id}, {"meal_id", meal_a}, {"event_id", event_a}}, {403, 404}},
      {verb::post, "/v1/advice", {{"user_id", a.id}, {"meal_id", meal_a}}, {403}},
      {verb::post, "/v1/advice", {{"user_id", a.id}, {"meal_id", meal_a}, {"stream", true}}, {403}},
      {verb::get, "/v1/models", nullptr, {403}},
      {verb::post, "/v1/models/mealsim-dqn-default/promote", nullptr, {403}},
  };
  for (const auto& at : attempts) {
    const auto r = st::call(*app_, at.method, at.target, at.body.is_null() ? std::string() : at.body.dump(), b.token);
    const std::string what = std::string(boost::beast::http::to_string(at.method)) + " " + at.target + " " +
                             (at.body.is_null() ? "" : at.body.dump());
    EXPECT_TRUE(at.allowed.count(r.status)) << what << " -> " << r.status << " " << r.text;
    // Never A's data: no profile, state, event or feedback id of A's in the answer.
    EXPECT_EQ(r.text.find("\"profile\""), std::string::npos) << what;
    EXPECT_EQ(r.text.find("intake_today"), std::string::npos) << what;
    EXPECT_EQ(r.text.find("feedback_id"), std::string::npos) << what;
    EXPECT_EQ(r.text.find("\"token\""), std::string::npos) << what;
  }
  // Nothing of A's changed.
  EXPECT_EQ(call(verb::get, "/v1/users/" + a.id, {}, a.token).body, a_user_before);
  const auto a_state_after = call(verb::get, "/v1/users/" + a.id + "/state", {}, a.token).body;
  EXPECT_EQ(a_state_after["intake_today"], a_state_before["intake_today"]);
  EXPECT_EQ(a_state_after["recommendations_served"], a_state_before["recommendations_served"]);
  EXPECT_FALSE(database_->feedback().find_by_key("b-steal-" + b.id));
  // A nonexistent user id named by a user token is 403 too (nothing about existence leaks).
  auto r = call(verb::get, "/v1/users/00000000-0000-4000-8000-000000000000", {}, b.token);
  EXPECT_EQ(r.status, 403U);
  // B's own routes still work, and A may link a meal-log entry to A's own event.
  EXPECT_EQ(call(verb::get, "/v1/users/" + b.id, {}, b.token).status, 200U);
  r = post("/v1/meals/log", {{"user_id", a.id}, {"meal_id", meal_a}, {"event_id", event_a}, {"time", at_utc(1, 9, 0)}}, a.token);
  EXPECT_EQ(r.status, 201U) << r.text;
  const json rec_a2 = recommend(a, "lunch", at_utc(1, 12, 0));  // not yet stored, maybe
  r = post("/v1/meals/log", {{"user_id", a.id}, {"meal_id", rec_a2["meals"][0]["meal_id"]}, {"event_id", rec_a2["event_id"]}}, a.token);
  EXPECT_EQ(r.status, 201U) << r.text;
}

// Bearer tokens come from a CSPRNG, not from the seeded service generator (whose SplitMix64
// outputs are invertible): two services with the same seed hand out different tokens.
TEST_F(ServiceRouter, TokensDoNotFollowTheServiceSeed) {
  Application twin(app_options(), st::catalog(), *database_);  // the same server.seed
  std::set<std::string> tokens;
  for (int i = 0; i < 3; ++i) {
    for (Application* app : {app_, &twin}) {
      const auto r = st::call_json(*app, verb::post, "/v1/users", st::profile_body());
      ASSERT_EQ(r.status, 201U) << r.text;
      const std::string token = r.body["token"];
      EXPECT_EQ(token.size(), 35U);
      EXPECT_EQ(token.find_first_not_of("0123456789abcdef", 3), std::string::npos) << token;
      EXPECT_TRUE(tokens.insert(token).second) << "token handed out twice: " << token;
    }
  }
}

// ---- rate limits ------------------------------------------------------------------------

TEST(ServiceRateLimit, TinyBucketGives429WithRetryAfter) {
  auto database = make_database();
  auto config = st::test_config();
  config.server.rate_limit_per_second = 0.2;
  config.server.rate_limit_burst = 3;
  Application app(app_options(config), st::catalog(), *database);
  // Anonymous requests are limited per client address.
  std::vector<unsigned> statuses;
  for (int i = 0; i < 5; ++i) statuses.push_back(st::call(app, verb::get, "/v1/meals?limit=1", {}, {}, "10.0.0.9").status);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200U), 3);
  EXPECT_EQ(statuses.back(), 429U);
  auto limited = st::call(app, verb::get, "/v1/meals?limit=1", {}, {}, "10.0.0.9");
  EXPECT_EQ(limited.status, 429U);
  EXPECT_EQ(limited.error_code(), "rate_limited");
  ASSERT_FALSE(limited.header("Retry-After").empty());
  EXPECT_GE(std::stoi(limited.header("Retry-After")), 1);
  EXPECT_LE(std::stoi(limited.header("Retry-After")), 5);
  // Another client address has its own bucket.
  EXPECT_EQ(st::call(app, verb::get, "/v1/meals?limit=1", {}, {}, "10.0.0.10").status, 200U);
  // A user's token has its own bucket, whatever address it comes from.
  const auto created = st::call_json(app, verb::post, "/v1/users", st::profile_body());
  ASSERT_EQ(created.status, 201U) << created.text;
  const std::string token = created.body["token"], id = created.body["id"];
  statuses.clear();
  for (int i = 0; i < 4; ++i) statuses.push_back(st::call(app, verb::get, "/v1/users/" + id, {}, token, "10.0.0.9").status);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200U), 3);
  EXPECT_EQ(statuses.back(), 429U);
}

// ---- models -----------------------------------------------------------------------------

TEST_F(ServiceRouter, PromoteWithABadModelFileLeavesTheOldOneServing) {
  const fs::path dir = forkcast::db::testing::make_temp_dir("forkcast-service-promote");
  // A file whose sha256 the registry records, but which is not a model at all.
  const fs::path garbage = dir / "garbage.safetensors";
  {
    std::ofstream out(garbage, std::ios::binary);
    out << "this is not a safetensors file";
  }
  forkcast::db::NewModel bad;
  bad.version = "bad-" + forkcast::db::testing::unique_suffix();
  bad.kind = "dqn";
  bad.sha256 = forkcast::policy::sha256_file_hex(garbage);
  bad.path = garbage.string();
  database_->models().register_model(bad);
  // A good model file that changed after it was registered.
  const fs::path altered = dir / "altered.safetensors";
  fs::copy_file(st::serving_model(), altered);
  forkcast::db::NewModel changed;
  changed.version = "altered-" + forkcast::db::testing::unique_suffix();
  changed.kind = "dqn";
  changed.sha256 = forkcast::policy::sha256_file_hex(altered);
  changed.path = altered.string();
  database_->models().register_model(changed);
  { std::ofstream(altered, std::ios::binary | std::ios::app) << "x"; }
  // A file that is missing, and a model of a kind the service does not serve.
  forkcast::db::NewModel missing = changed;
  missing.version = "missing-" + forkcast::db::testing::unique_suffix();
  missing.path = (dir / "nope.safetensors").string();
  database_->models().register_model(missing);
  forkcast::db::NewModel tabular = changed;
  tabular.version = "tabular-" + forkcast::db::testing::unique_suffix();
  tabular.kind = "tabular";
  database_->models().register_model(tabular);

  const User u = create_user();
  for (const auto& version : {bad.version, changed.version, missing.version, tabular.version}) {
    const auto r = call(verb::post, "/v1/models/" + version + "/promote", {}, st::kAdminKey);
    EXPECT_EQ(r.status, 400U) << version << " " << r.text;
    EXPECT_EQ(r.error_code(), "invalid_model") << r.text;
    EXPECT_NE(r.body["error"].value("message", "").find(version), std::string::npos) << r.text;  // says why
    EXPECT_EQ(app_->model()->version, "mealsim-dqn-default") << version;
    EXPECT_EQ(database_->models().production()->registered.version, "mealsim-dqn-default") << version;
    const auto rec = post("/v1/recommendations", {{"user_id", u.id}, {"n", 1}}, u.token);
    EXPECT_EQ(rec.status, 200U);
    EXPECT_EQ(rec.body["model_version"], "mealsim-dqn-default");
  }

  // A good model promotes, serves, and the old one can be promoted back.
  const fs::path good = dir / "good.safetensors";
  fs::copy_file(st::serving_model(), good);
  forkcast::db::NewModel next = changed;
  next.version = "good-" + forkcast::db::testing::unique_suffix();
  next.path = good.string();
  next.sha256 = forkcast::policy::sha256_file_hex(good);
  database_->models().register_model(next);
  auto r = call(verb::post, "/v1/models/" + next.version + "/promote", {}, st::kAdminKey);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(r.body["serving"], next.version);
  EXPECT_EQ(post("/v1/recommendations", {{"user_id", u.id}, {"n", 1}}, u.token).body["model_version"], next.version);
  r = call(verb::post, "/v1/models/mealsim-dqn-default/promote", {}, st::kAdminKey);
  ASSERT_EQ(r.status, 200U) << r.text;
  EXPECT_EQ(app_->model()->version, "mealsim-dqn-default");
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// ---- safety -----------------------------------------------------------------------------

TEST_F(ServiceRouter, NoUnsafeMealIsEverRecommended) {
  using forkcast::env::Allergen;
  using forkcast::env::Diet;
  struct Profile {
    const char* diet;
    std::vector<std::string> allergens;
  };
  const std::vector<Profile> profiles = {
      {"vegan", {"peanuts", "soy"}}, {"vegetarian", {"milk", "egg"}}, {"pescatarian", {"shellfish", "gluten"}},
      {"none", {"fish", "tree_nuts", "sesame"}}, {"none", {"milk", "gluten", "egg"}}};
  std::mt19937 rng(7);
  const char* slots[] = {"breakfast", "lunch", "dinner", "snack"};
  int checked = 0;
  for (const auto& p : profiles) {
    json body = st::profile_body();
    body["diet"] = p.diet;
    body["allergens"] = p.allergens;
    const auto created = post("/v1/users", body);
    if (created.status != 201U) {
      ADD_FAILURE() << "profile " << body.dump() << " refused: " << created.text;
      continue;
    }
    const User u{created.body["id"], created.body["token"]};
    forkcast::env::AllergenSet excluded = 0;
    for (const auto& a : p.allergens) excluded |= 1U << static_cast<int>(*forkcast::env::parse_allergen(a));
    for (int i = 0; i < 60; ++i) {
      json req = {{"user_id", u.id}, {"n", 20}};
      if (i % 3 != 0) req["slot"] = slots[rng() % 4];
      if (i % 2 == 0) req["time"] = at_utc(1 + i / 8, static_cast<int>(rng() % 24), 0);
      const auto r = post("/v1/recommendations", req, u.token);
      ASSERT_EQ(r.status, 200U) << r.text;
      for (const auto& m : r.body["meals"]) {
        const auto& meal = meal_of(m["meal_id"]);
        ++checked;
        EXPECT_EQ(meal.allergens & excluded, 0U) << meal.id << " for " << body.dump();
        const std::string diet = p.diet;
        if (diet == "vegan") {
          EXPECT_TRUE(forkcast::env::has(meal.diets, Diet::vegan)) << meal.id;
        } else if (diet == "vegetarian") {
          EXPECT_TRUE(forkcast::env::has(meal.diets, Diet::vegetarian)) << meal.id;
        } else if (diet == "pescatarian") {
          EXPECT_TRUE(forkcast::env::has(meal.diets, Diet::pescatarian)) << meal.id;
        }
      }
    }
    // Advice by id for a meal the user must not eat is refused, too.
    for (const auto& meal : st::catalog().meals()) {
      if ((meal.allergens & excluded) == 0) continue;
      const auto r = post("/v1/advice", {{"user_id", u.id}, {"meal_id", meal.id}}, u.token);
      EXPECT_EQ(r.status, 400U) << r.text;
      EXPECT_EQ(r.error_code(), "unsafe_meal");
      break;
    }
  }
  EXPECT_GT(checked, 1000);
}

// Review (issue 21): a body was read as JSON whatever its Content-Type said, and a key given
// twice was taken silently (the last one won), although input is read strictly: a proxy
// and forkcast could read different requests.
TEST_F(ServiceRouter, ABodyMustSayItIsJsonAndGiveEachKeyOnce) {
  const std::string profile = st::profile_body().dump();
  for (const char* type : {"text/plain", "", "application/x-www-form-urlencoded", "application/jsonx"}) {
    const auto r = st::call(*app_, verb::post, "/v1/users", profile, {}, "127.0.0.1", type);
    EXPECT_EQ(r.status, 415U) << type << ": " << r.text;
    EXPECT_EQ(r.error_code(), "unsupported_media_type") << type;
    EXPECT_EQ(r.error_field(), "Content-Type") << type;
  }
  const auto charset = st::call(*app_, verb::post, "/v1/users", profile, {}, "127.0.0.1", "Application/JSON; charset=utf-8");
  EXPECT_EQ(charset.status, 201U) << charset.text;

  auto twice = st::call(*app_, verb::post, "/v1/users", R"({"sex":"female","age":30,"age":90,"height_cm":170,"weight_kg":60})");
  EXPECT_EQ(twice.status, 400U) << twice.text;
  EXPECT_EQ(twice.error_code(), "duplicate_key");
  EXPECT_EQ(twice.error_field(), "age");
  // Inside a nested object too; the same key in two different objects is no duplicate.
  twice = st::call(*app_, verb::post, "/v1/users", R"({"sex":"female","x":{"k":1,"k":2}})");
  EXPECT_EQ(twice.error_code(), "duplicate_key") << twice.text;
  const auto siblings = st::call(*app_, verb::post, "/v1/users", R"({"sex":"female","x":{"k":1},"y":{"k":2}})");
  EXPECT_EQ(siblings.status, 400U);
  EXPECT_NE(siblings.error_code(), "duplicate_key") << siblings.text;
}
