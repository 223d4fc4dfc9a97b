// Simulated traffic (traffic/simulate.hpp) against a real `forkcast serve` on simulated
// time: every MealSim step is one recommendation, one feedback and, when the user declined,
// one logged meal, all stored with the simulated times; the week's return is MealSim's; the
// same seed gives the same users; and a service on its own clock refuses the simulated
// feedback times, naming the setting.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "forkcast/traffic/http_client.hpp"
#include "forkcast/traffic/simulate.hpp"
#include "pg_test_support.hpp"
#include "service_test_support.hpp"

namespace ft = forkcast::traffic;
namespace fe = forkcast::env;
using forkcast::service::testing::ServeProcess;

namespace {

const fe::Catalog& catalog() {
  static const fe::Catalog c = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  return c;
}
const fe::Population& population() {
  static const fe::Population p = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
  return p;
}

ft::TrafficOptions options_for(int port, int users) {
  ft::TrafficOptions o;
  o.port = port;
  o.users = users;
  o.clients = 2;
  o.seed = 31;
  o.start = std::chrono::sys_seconds{std::chrono::sys_days{std::chrono::year{2030} / 3 / 4}};
  return o;
}

}  // namespace

TEST(SimulatedTraffic, EveryStepIsARecommendationAFeedbackAndTheMealEatenAtTheSimulatedTimes) {
  ServeProcess serve({"FORKCAST_SERVER__SIMULATION_CLOCK=true"});
  const ft::TrafficSummary s = ft::simulate_traffic(catalog(), population(), {}, options_for(serve.port(), 3));
  ASSERT_EQ(s.weeks.size(), 3U);
  std::int64_t steps = 0, declined = 0;
  for (const ft::UserWeek& w : s.weeks) {
    EXPECT_GT(w.steps, 0);
    EXPECT_TRUE(w.churned || w.steps == 28) << w.steps;
    steps += w.steps;
    declined += w.steps - w.accepted;
  }
  EXPECT_EQ(s.recommendations, steps);
  EXPECT_EQ(s.feedback, steps);
  EXPECT_EQ(s.meal_logs, declined);
  EXPECT_EQ(s.served_by_model.size(), 1U);
  EXPECT_GE(s.weekly_return.value, s.weekly_return.lo);
  EXPECT_LE(s.weekly_return.value, s.weekly_return.hi);

  // What the service stored: the simulated times, not the wall clock's.
  pqxx::connection c(serve.database_url());
  pqxx::nontransaction tx(c);
  const auto decisions = tx.exec1("SELECT count(*), min(decided_at) >= '2030-03-04', max(decided_at) < '2030-03-11' FROM decisions");
  EXPECT_EQ(decisions[0].as<std::int64_t>(), steps);
  EXPECT_TRUE(decisions[1].as<bool>());
  EXPECT_TRUE(decisions[2].as<bool>());
  const auto feedback = tx.exec1(
      "SELECT count(*), bool_and(f.received_at = d.decided_at) FROM feedback f JOIN decisions d USING (event_id)");
  EXPECT_EQ(feedback[0].as<std::int64_t>(), steps);
  EXPECT_TRUE(feedback[1].as<bool>());
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM meal_log WHERE event_id IS NOT NULL")[0].as<std::int64_t>(), declined);
  // A breakfast at 08:00 of the first day.
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM decisions WHERE decided_at = '2030-03-04 08:00:00+00' AND slot = 'breakfast'")[0]
                .as<std::int64_t>(),
            3);

  // The same seed: the same users, who answer the same way as long as the service serves
  // the same meals (its exploration is its own, so only the shapes are compared).
  const ft::TrafficSummary again = ft::simulate_traffic(catalog(), population(), {}, options_for(serve.port(), 3));
  EXPECT_EQ(again.users, 3);
  EXPECT_EQ(again.recommendations + again.feedback + again.meal_logs > 0, true);
}

TEST(SimulatedTraffic, AServiceOnItsOwnClockRefusesSimulatedFeedbackTimes) {
  ServeProcess serve;
  try {
    (void)ft::simulate_traffic(catalog(), population(), {}, options_for(serve.port(), 1));
    FAIL() << "a service on its own clock took the simulated times";
  } catch (const ft::TrafficError& e) {
    // The recommendation's time is more than 14 days from now, or the feedback's time is refused.
    const std::string what = e.what();
    EXPECT_TRUE(what.find("more than 14 days from now") != std::string::npos ||
                what.find("server.simulation_clock is off") != std::string::npos)
        << what;
  }
}

TEST(SimulatedTraffic, BadOptionsAreRefusedBeforeAnyRequest) {
  EXPECT_THROW(ft::simulate_traffic(catalog(), population(), {}, options_for(1, 0)), std::invalid_argument);
  ft::TrafficOptions o = options_for(1, 1);
  o.clients = 0;
  EXPECT_THROW(ft::simulate_traffic(catalog(), population(), {}, o), std::invalid_argument);
  EXPECT_THROW(ft::HttpClient("localhost", 80), std::invalid_argument);
  ft::HttpClient nobody("127.0.0.1", forkcast::db::testing::free_loopback_port());
  EXPECT_THROW(nobody.request("GET", "/livez"), ft::HttpError);
}
