#include "forkcast/traffic/simulate.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/traffic/http_client.hpp"

namespace forkcast::traffic {

namespace {

using json = nlohmann::json;

std::string rfc3339(std::chrono::sys_seconds t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{t - day};
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(hms.hours().count()), static_cast<long long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()));
  return text;
}

// Percentile bootstrap of a mean over users (B resamples, seeded, raw draws only).
Interval bootstrap_mean(const std::vector<double>& values, std::uint64_t seed) {
  Interval out;
  if (values.empty()) return out;
  double sum = 0;
  for (const double v : values) sum += v;
  out.value = sum / static_cast<double>(values.size());
  constexpr int kResamples = 2'000;
  std::mt19937_64 rng(seed);
  std::vector<double> means(kResamples);
  for (double& m : means) {
    double s = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      s += values[std::min(values.size() - 1, static_cast<std::size_t>(u * static_cast<double>(values.size())))];
    }
    m = s / static_cast<double>(values.size());
  }
  std::sort(means.begin(), means.end());
  out.lo = means[static_cast<std::size_t>(0.025 * kResamples)];
  out.hi = means[static_cast<std::size_t>(0.975 * kResamples) - 1];
  return out;
}

struct Counters {
  std::atomic<std::int64_t> recommendations{0}, feedback{0}, meal_logs{0}, retries{0};
};

class SimulatedClient {
 public:
  SimulatedClient(const TrafficOptions& o, Counters& counters)
      : options_(o), http_(o.host, o.port, o.timeout), counters_(counters) {}

  // One request, retried on 429/503 after Retry-After (bounded); any other non-2xx is an error.
  json call(std::string_view method, std::string_view target, const json& body, std::string_view token = {}) {
    const std::string text = body.is_null() ? std::string() : body.dump();
    for (int attempt = 0;; ++attempt) {
      const HttpResponse r = http_.request(method, target, text, token);
      if (r.status >= 200 && r.status < 300) return json::parse(r.body);
      if ((r.status == 429 || r.status == 503) && attempt < options_.max_retries) {
        ++counters_.retries;
        int wait_ms = 100;
        if (!r.retry_after.empty()) wait_ms = std::clamp(std::atoi(r.retry_after.c_str()) * 1000, 50, 2'000);
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
        continue;
      }
      throw TrafficError(std::string(method) + " " + std::string(target) + " answered " + std::to_string(r.status) +
                         ": " + r.body.substr(0, 300));
    }
  }

 private:
  const TrafficOptions& options_;
  HttpClient http_;
  Counters& counters_;
};

}  // namespace

int slot_minutes(env::Slot slot) noexcept {
  switch (slot) {
    case env::Slot::breakfast: return 8 * 60;
    case env::Slot::lunch: return 12 * 60 + 30;
    case env::Slot::dinner: return 18 * 60 + 30;
    case env::Slot::snack: break;
  }
  return 21 * 60 + 30;
}

json profile_json(const env::UserProfile& p) {
  json allergens = json::array();
  for (int k = 0; k < env::kNumAllergens; ++k) {
    if (env::has(p.excluded, static_cast<env::Allergen>(k))) allergens.push_back(env::allergen_name(static_cast<env::Allergen>(k)));
  }
  return {{"sex", env::sex_name(p.sex)},
          {"age", p.age},
          {"height_cm", p.height_cm},
          {"weight_kg", p.weight_kg},
          {"activity", env::activity_name(p.activity)},
          {"goal", env::goal_name(p.goal)},
          {"diet", env::diet_preference_name(p.diet)},
          {"allergens", allergens},
          {"budget_usd", p.budget_usd},
          {"cook_time_min", p.cook_time_min},
          {"sodium_limit_mg", p.sodium_limit_mg},
          {"protein_g_per_kg", p.protein_g_per_kg},
          {"utc_offset_min", 0}};
}

TrafficSummary simulate_traffic(const env::Catalog& catalog, const env::Population& population,
                                const config::MealSimConfig& mealsim, const TrafficOptions& o) {
  if (o.users < 1) throw std::invalid_argument("users: " + std::to_string(o.users) + " must be >= 1");
  if (o.clients < 1 || o.clients > 1024) throw std::invalid_argument("clients: " + std::to_string(o.clients) + " is outside 1..1024");
  const auto started = std::chrono::steady_clock::now();
  std::unordered_map<std::string, std::int32_t> meal_index;
  for (std::size_t i = 0; i < catalog.size(); ++i) meal_index.emplace(catalog.meals()[i].id, static_cast<std::int32_t>(i));

  TrafficSummary summary;
  summary.users = o.users;
  summary.weeks.resize(static_cast<std::size_t>(o.users));
  Counters counters;
  std::atomic<int> next_user{0}, done{0};
  std::mutex mutex;
  std::string first_error;
  std::map<std::string, std::int64_t> served;

  const auto run_user = [&](SimulatedClient& client, int u) {
    env::MealSim sim(catalog, population, mealsim);
    sim.reset(o.seed + static_cast<std::uint64_t>(u));
    const json user = client.call("POST", "/v1/users", profile_json(sim.user().profile));
    const std::string user_id = user.at("id").get<std::string>();
    const std::string token = user.at("token").get<std::string>();
    UserWeek week;
    std::map<std::string, std::int64_t> versions;
    while (!sim.done()) {
      const env::Slot slot = sim.slot();
      const std::string slot_name(env::kSlotNames[static_cast<std::size_t>(slot)]);
      const auto at = o.start + std::chrono::days(sim.day()) + std::chrono::minutes(slot_minutes(slot));
      const std::string time = rfc3339(at);
      const json rec = client.call("POST", "/v1/recommendations",
                                   {{"user_id", user_id}, {"time", time}, {"slot", slot_name}, {"n", 1}}, token);
      ++counters.recommendations;
      ++versions[rec.at("model_version").get<std::string>()];
      const std::string event_id = rec.at("event_id").get<std::string>();
      const std::string meal_id = rec.at("meals").at(0).at("meal_id").get<std::string>();
      const auto found = meal_index.find(meal_id);
      if (found == meal_index.end()) throw TrafficError("the service suggested '" + meal_id + "', which the catalog does not have");
      const auto mask = sim.action_mask();
      if (!mask[static_cast<std::size_t>(found->second)]) {
        throw TrafficError("the service suggested '" + meal_id + "' for the " + slot_name +
                           ", which MealSim's mask does not allow for this user (the two masks disagree)");
      }
      const env::MealStep step = sim.step(found->second);
      week.weekly_return += step.reward;
      ++week.steps;
      if (step.accepted) ++week.accepted;
      const std::string key = "sim-" + user_id + "-" + std::to_string(week.steps);  // unique: a new user per run
      client.call("POST", "/v1/feedback",
                  {{"event_id", event_id}, {"meal_id", meal_id}, {"outcome", step.accepted ? "accepted" : "rejected"},
                   {"idempotency_key", key + "-f"}, {"time", time}},
                  token);
      ++counters.feedback;
      if (!step.accepted && step.eaten >= 0) {
        client.call("POST", "/v1/meals/log",
                    {{"user_id", user_id},
                     {"meal_id", catalog.meals()[static_cast<std::size_t>(step.eaten)].id},
                     {"slot", slot_name},
                     {"time", time},
                     {"servings", mealsim.default_portion},
                     {"event_id", event_id},
                     {"idempotency_key", key + "-m"}},
                    token);
        ++counters.meal_logs;
      }
      if (step.churned) week.churned = true;
    }
    std::lock_guard lock(mutex);
    summary.weeks[static_cast<std::size_t>(u)] = week;
    for (const auto& [v, n] : versions) served[v] += n;
  };

  std::vector<std::thread> threads;
  const int clients = std::min(o.clients, o.users);
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      try {
        SimulatedClient client(o, counters);
        for (int u = next_user++; u < o.users; u = next_user++) {
          run_user(client, u);
          ++done;
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        if (first_error.empty()) first_error = e.what();
        next_user = o.users;  // the others stop after their current user
      }
    });
  }
  while (done.load() < o.users) {
    {
      std::lock_guard lock(mutex);
      if (!first_error.empty()) break;
    }
    if (o.progress) o.progress(done.load(), o.users);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& t : threads) t.join();
  if (!first_error.empty()) throw TrafficError(first_error);
  if (o.progress) o.progress(o.users, o.users);

  std::vector<double> returns, acceptance;
  int churned = 0;
  for (const UserWeek& w : summary.weeks) {
    returns.push_back(w.weekly_return);
    acceptance.push_back(w.steps > 0 ? static_cast<double>(w.accepted) / w.steps : 0.0);
    churned += w.churned ? 1 : 0;
  }
  summary.weekly_return = bootstrap_mean(returns, o.bootstrap_seed);
  summary.acceptance = bootstrap_mean(acceptance, o.bootstrap_seed + 1);
  summary.churn = static_cast<double>(churned) / o.users;
  summary.recommendations = counters.recommendations;
  summary.feedback = counters.feedback;
  summary.meal_logs = counters.meal_logs;
  summary.retries = counters.retries;
  summary.served_by_model = std::move(served);
  summary.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

json summary_json(const TrafficSummary& s) {
  const auto interval = [](const Interval& i) { return json{{"value", i.value}, {"lo", i.lo}, {"hi", i.hi}}; };
  json weeks = json::array();
  for (const UserWeek& w : s.weeks) {
    weeks.push_back({{"return", w.weekly_return}, {"steps", w.steps}, {"accepted", w.accepted}, {"churned", w.churned}});
  }
  return {{"users", s.users},
          {"weekly_return", interval(s.weekly_return)},
          {"acceptance", interval(s.acceptance)},
          {"churn", s.churn},
          {"recommendations", s.recommendations},
          {"feedback", s.feedback},
          {"meal_logs", s.meal_logs},
          {"retries", s.retries},
          {"served_by_model", s.served_by_model},
          {"wall_s", s.wall_s},
          {"per_user", weeks}};
}

}  // namespace forkcast::traffic
