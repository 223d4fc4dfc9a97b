// Simulated traffic (docs/learning-loop.md "Simulated traffic"): MealSim users as real
// HTTP clients of a running `forkcast serve`, so that the learning loop can be measured end
// to end — served, logged, learned from, promoted — on a population whose answers are known.
//
// Each simulated user u is MealSim::reset(seed + u): a profile and a hidden taste drawn from
// the population. The user is created through POST /v1/users with the observable profile
// (UTC, utc_offset_min 0) and lives one week on a compressed clock: for every MealSim step
// (slot s of day d, at start + d days + the slot's hour) it asks POST /v1/recommendations
// with that `time`, answers the first meal by MealSim's own choice model (MealSim::step),
// posts the feedback (accepted or rejected, at the same time), and, when it declined, logs
// the meal it ate by its own choice with POST /v1/meals/log (servings: MealSim's
// default_portion), so that the service's state follows the simulator's. A churned user
// stops. The service must run with server.simulation_clock on, so that the requests' times
// are the events' times. Users run `clients` at a time, each on its own connection.
//
// Results: the online weekly return (MealSim's reward, hidden taste included: the truth the
// service cannot see), acceptance and churn of the served policy, each with a 95 %
// percentile-bootstrap interval over users, and per user, for paired comparisons.
// Deterministic in what the users do for a given seed and served policy (the service's
// exploration draws are its own).
// Errors: std::invalid_argument naming the option; TrafficError when the service refuses
// what a correct client sends (a status that is not retryable), naming the request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "forkcast/config/config.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::traffic {

class TrafficError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrafficOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int users = 200;                            // simulated users, each one week
  int clients = 8;                            // users simulated at once
  std::uint64_t seed = 1;                     // user u is MealSim::reset(seed + u)
  std::chrono::sys_seconds start{};           // simulated 00:00 UTC of the users' first day
  std::chrono::milliseconds timeout{30'000};  // per request
  int max_retries = 50;                       // per request, on 429/503 (after Retry-After)
  std::uint64_t bootstrap_seed = 20'240'607;
  std::function<void(int users_done, int users)> progress;  // from the calling thread
};

struct UserWeek {
  double weekly_return = 0;  // sum of MealSim's rewards
  int steps = 0;
  int accepted = 0;
  bool churned = false;
};

struct Interval {
  double value = 0, lo = 0, hi = 0;
};

struct TrafficSummary {
  int users = 0;
  std::int64_t recommendations = 0, feedback = 0, meal_logs = 0, retries = 0;
  Interval weekly_return, acceptance;  // acceptance: accepted / steps, pooled per user
  double churn = 0;                    // share of users who churned
  std::map<std::string, std::int64_t> served_by_model;  // recommendations per model version
  std::vector<UserWeek> weeks;         // per user, in user order
  double wall_s = 0;
};

// Runs the traffic and waits for every user to finish. Throws as described above.
TrafficSummary simulate_traffic(const env::Catalog& catalog, const env::Population& population,
                                const config::MealSimConfig& mealsim, const TrafficOptions& options);

nlohmann::json summary_json(const TrafficSummary& summary);

// The slot's simulated local time of day, in minutes after midnight: 08:00, 12:30, 18:30, 21:30.
int slot_minutes(env::Slot slot) noexcept;

// The observable profile of a simulated user as POST /v1/users takes it.
nlohmann::json profile_json(const env::UserProfile& profile);

}  // namespace forkcast::traffic
