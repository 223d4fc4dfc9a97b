#include "learning_test_support.hpp"

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "forkcast/env/population.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "pg_test_support.hpp"

namespace forkcast::learning::testing {

namespace {

namespace fdb = forkcast::db;
namespace fe = forkcast::env;
namespace fev = forkcast::evaluation;
using fdb::testing::unique_suffix;
using nlohmann::json;
using namespace std::chrono_literals;

std::string uuid_for(std::int64_t n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "01900000-0000-7000-8000-%012lld", static_cast<long long>(n % 1'000'000'000'000LL));
  return buf;
}

}  // namespace

const fe::Catalog& shipped_catalog() {
  static const fe::Catalog c = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  return c;
}

std::int64_t log_simulated_weeks(fdb::Database& db, const fe::Catalog& catalog, int users, std::uint64_t seed) {
  const auto population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
  fev::SyntheticLogOptions o;
  o.users = users;
  o.seed = seed;
  o.temperature = 1.0;
  o.epsilon = 0.3;
  o.candidate_features = true;
  const auto log = fev::generate_synthetic_log(catalog, population, {}, o);
  const std::string version = catalog.content_hash().substr(0, 16);
  std::map<std::string, std::string> user_ids;
  std::map<std::string, int> steps;
  std::vector<fdb::Decision> batch;
  std::vector<fdb::NewFeedback> feedback;
  std::int64_t n = 0;
  for (const fev::LoggedDecision& d : log) {
    auto [it, fresh] = user_ids.try_emplace(d.user_id);
    if (fresh) it->second = db.users().create({json::object(), fdb::token_sha256("t-" + d.user_id + unique_suffix())}).id;
    const int step = steps[d.user_id]++;
    const int user_index = static_cast<int>(std::distance(user_ids.begin(), user_ids.find(d.user_id)));
    fdb::Decision row;
    row.event_id = uuid_for(++n);
    auto& l = row.logged;
    l.user_id = it->second;
    l.decided_at = kT0 + std::chrono::minutes(user_index) + std::chrono::hours(3) * step;
    l.slot = static_cast<fdb::Slot>(d.slot);
    l.model_version = "logging";
    l.policy = "softmax";
    l.epsilon = d.epsilon;
    for (std::size_t c = 0; c < d.candidates.size(); ++c) {
      l.candidates.push_back(catalog.meals()[static_cast<std::size_t>(d.candidates[c])].id);
      l.candidate_features.push_back(d.candidate_features[c * static_cast<std::size_t>(d.candidate_feature_dim)]);
    }
    l.candidate_feature_dim = 1;
    l.scores.assign(d.candidates.size(), 0.0);
    l.probabilities = d.probabilities;
    l.chosen = l.candidates[d.chosen];
    l.state_features.assign(d.state_features.begin(), d.state_features.end());
    l.context = {{"catalog", version}, {"candidate_features", "recency"}};
    batch.push_back(std::move(row));
    fdb::NewFeedback f;
    f.event_id = batch.back().event_id;
    f.meal_id = batch.back().logged.chosen;
    f.outcome = d.outcome == "accepted" ? fdb::Outcome::accepted : fdb::Outcome::rejected;
    f.idempotency_key = "fb-" + f.event_id;
    f.received_at = *batch.back().logged.decided_at + 1min;
    feedback.push_back(f);
  }
  if (db.decisions().record_batch(batch) != batch.size()) throw std::runtime_error("not every decision was stored");
  for (const auto& f : feedback) db.feedback().record(f);
  return static_cast<std::int64_t>(batch.size());
}


}  // namespace forkcast::learning::testing
