// What is served is what is evaluated: a simulated user's week run twice, once through the
// service's POST /v1/recommendations (in process, on a real PostgreSQL) and once through
// the "served" policy `forkcast evaluate --policy served:<model>` runs, must make the same
// decision at every step — the same observation, candidates, scores, probabilities,
// epsilon and chosen meal — when the evaluated policy draws with the seed the service
// logged. The service learns the user's answers as an app would tell it (feedback for the
// suggestion, a meal log for the user's own meal when they declined), so both trackers walk
// the same week.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "forkcast/db/database.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/evaluation/served_policy.hpp"
#include "api.hpp"
#include "user_directory.hpp"
#include "pg_test_support.hpp"
#include "service_test_support.hpp"

namespace st = forkcast::service::testing;
using st::at_utc;
namespace fe = forkcast::env;
using nlohmann::json;
using verb = boost::beast::http::verb;

namespace {


// The simulated user's profile as an app would send it (the API's own serializer).
json profile_body_of(const fe::UserProfile& p) {
  forkcast::service::ProfileDocument doc;
  doc.profile = p;
  for (int a = 0; a < fe::kNumAllergens; ++a) {
    if (fe::has(p.excluded, static_cast<fe::Allergen>(a))) doc.allergens.emplace_back(fe::allergen_name(static_cast<fe::Allergen>(a)));
  }
  return forkcast::service::profile_json(doc);
}

std::optional<forkcast::db::Decision> stored_decision(forkcast::db::Database& db, const std::string& event_id) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::optional<forkcast::db::Decision> d;
  while (!(d = db.decisions().find(event_id)) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return d;
}

}  // namespace

TEST(ServedPolicy, EvaluationAndTheServiceRouteMakeTheSameDecisions) {
  forkcast::db::DatabaseOptions db_options;
  db_options.url = forkcast::db::testing::shared_instance().url();
  db_options.pool_size = 2;
  forkcast::db::Database database(db_options);
  forkcast::service::ApplicationOptions options;
  options.config = st::test_config();
  // Explore a lot, so that draws other than the greedy meal are compared too.
  options.config.exploration.serving_epsilon_max = 0.6;
  options.config.exploration.serving_epsilon_min = 0.2;
  options.config.exploration.serving_decay = 0.05;
  options.default_model = st::serving_model();
  forkcast::service::Application app(options, st::catalog(), database);

  const auto& catalog = st::catalog();
  const auto population = fe::Population::load(std::filesystem::path(FORKCAST_SOURCE_DIR) / "data" / "population.yaml");
  fe::MealSim sim(catalog, population, options.config.mealsim);
  forkcast::evaluation::ServedMealPolicy served(
      forkcast::policy::PolicySnapshot::load(st::serving_model(), catalog, "served"), options.config.exploration);

  const int hours[fe::kNumSlots] = {8, 12, 18, 22};
  // The service's day starts at 04:00 local time (user_directory.hpp): before then, a user
  // created now is on yesterday's day, so the simulated week starts there too.
  const auto utc_today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now()).time_since_epoch().count();
  const int first_day = static_cast<int>(forkcast::service::local_day(forkcast::db::now_timestamp(), 0) - utc_today);
  int users = 0, decisions = 0, explored = 0;
  for (std::uint64_t seed = 11; users < 3; ++seed) {
    sim.reset(seed);
    auto created = st::call_json(app, verb::post, "/v1/users", profile_body_of(sim.user().profile));
    if (created.status != 201) continue;  // a sampled profile outside the API's ranges
    ++users;
    const std::string user_id = created.body["id"], token = created.body["token"];
    for (int t = 0; !sim.done(); ++t) {
      const int day = first_day + t / fe::kNumSlots;
      const auto slot = static_cast<std::size_t>(sim.tracker().slot());
      const std::string time = at_utc(day, hours[slot], 15);
      const auto reply = st::call_json(app, verb::post, "/v1/recommendations",
                                       {{"user_id", user_id}, {"slot", fe::kSlotNames[slot]}, {"time", time}, {"n", 1}}, token);
      ASSERT_EQ(reply.status, 200U) << reply.text;
      const std::string event_id = reply.body["event_id"];
      const auto logged = stored_decision(database, event_id);
      ASSERT_TRUE(logged) << event_id;
      const std::uint64_t draw_seed = logged->logged.context.at("draw_seed").get<std::uint64_t>();

      const forkcast::policy::Decision d = served.decide(sim, draw_seed);
      const auto& candidates = served.candidates();
      ASSERT_EQ(logged->logged.candidates.size(), candidates.size()) << "user " << users << " step " << t;
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        ASSERT_EQ(logged->logged.candidates[c], catalog.meals()[static_cast<std::size_t>(candidates[c])].id);
        ASSERT_EQ(static_cast<float>(logged->logged.scores[c]), d.scores[c]) << "candidate " << c;
        ASSERT_EQ(logged->logged.probabilities[c], d.probabilities[c]) << "candidate " << c;
      }
      ASSERT_EQ(logged->logged.state_features.size(), d.observation.size());
      for (std::size_t i = 0; i < d.observation.size(); ++i) {
        ASSERT_EQ(static_cast<float>(logged->logged.state_features[i]), d.observation[i]) << "feature " << i << " step " << t;
      }
      const auto chosen = static_cast<fe::Action>(candidates[d.chosen]);
      const std::string chosen_id = catalog.meals()[static_cast<std::size_t>(chosen)].id;
      ASSERT_EQ(reply.body["meals"][0]["meal_id"], chosen_id) << "step " << t;
      ASSERT_EQ(logged->logged.chosen, chosen_id);
      ASSERT_EQ(reply.body["epsilon"].get<double>(), logged->logged.epsilon);
      ++decisions;
      if (d.chosen != d.greedy) ++explored;

      // The user answers in the simulator; the app tells the service.
      const fe::MealStep step = sim.step(chosen);
      json feedback = {{"event_id", event_id}, {"meal_id", chosen_id}, {"outcome", step.accepted ? "accepted" : "rejected"},
                       {"idempotency_key", event_id}};
      auto r = st::call_json(app, verb::post, "/v1/feedback", feedback, token);
      ASSERT_EQ(r.status, 201U) << r.text;
      if (!step.accepted) {
        r = st::call_json(app, verb::post, "/v1/meals/log",
                          {{"user_id", user_id},
                           {"meal_id", catalog.meals()[static_cast<std::size_t>(step.eaten)].id},
                           {"slot", fe::kSlotNames[slot]},
                           {"time", at_utc(day, hours[slot], 30)},
                           {"servings", options.config.mealsim.default_portion},
                           {"idempotency_key", "own-" + event_id}},
                          token);
        ASSERT_EQ(r.status, 201U) << r.text;
      }
    }
  }
  EXPECT_GE(decisions, 3 * 8);  // three users, two days at least
  EXPECT_GT(explored, 0);       // exploration draws were compared, not only greedy choices
}
