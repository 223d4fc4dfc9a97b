#include "forkcast/evaluation/ope.hpp"

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <unordered_map>

#include "forkcast/env/mealsim.hpp"
#include "forkcast/evaluation/evaluation.hpp"
#include "forkcast/policy/explore.hpp"
#include "forkcast/policy/episode_seed.hpp"

namespace forkcast::evaluation {

using policy::episode_seed;
using policy::epsilon_greedy_pmf;
using policy::sample_from_pmf;
using policy::softmax_pmf;

namespace {

using nlohmann::json;

// Probabilities are floating point written by other programs: a sum within this of 1 is 1.
constexpr double kSumTolerance = 1e-6;
constexpr std::uint64_t kLoggingRngSalt = 0x106'6ed0'0000'0001ULL;
constexpr std::uint64_t kTruthRngSalt = 0x7ee7'0000'0000'0002ULL;

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string fmt_fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Rounds to 9 significant digits so the export stays small; 1e-9 relative is far inside
// the reader's tolerance on probability sums.
double round9(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return std::strtod(buf, nullptr);
}

// Floats as JSON numbers of at most 7 significant digits (a float holds about that many;
// nlohmann would print the widened double's 17).
json float_array(std::span<const float> values) {
  json out = json::array();
  char buf[40];
  for (const float v : values) {
    std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(v));
    out.push_back(std::strtod(buf, nullptr));
  }
  return out;
}

// FNV-1a 64: a fixed hash (std::hash differs between standard libraries) for the folds.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}

struct Reader {
  std::string source;
  std::int64_t line = 0;
  [[noreturn]] void fail(const std::string& problem) const { throw OpeInputError(source, line, problem); }

  const json& field(const json& record, const char* key) const {
    const auto it = record.find(key);
    if (it == record.end()) fail(std::string("missing field \"") + key + "\"");
    return *it;
  }
  std::string string_field(const json& record, const char* key) const {
    const auto& v = field(record, key);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
    fail(std::string("field \"") + key + "\" must be a string, got " + v.dump());
  }
  double number(const json& v, const std::string& what) const {
    if (!v.is_number()) fail(what + " must be a number, got " + v.dump());
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(what + " is not finite");
    return x;
  }
  std::vector<double> numbers(const json& v, const std::string& what) const {
    if (!v.is_array()) fail("field \"" + what + "\" must be an array of numbers");
    std::vector<double> out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out.push_back(number(v[i], what + "[" + std::to_string(i) + "]"));
    return out;
  }
};

int slot_of(const Reader& r, const json& v) {
  if (v.is_number_integer()) {
    const auto s = v.get<int>();
    if (s < 0 || s >= env::kNumSlots) r.fail("field \"slot\": " + std::to_string(s) + " is not in 0..3");
    return s;
  }
  if (v.is_string()) {
    const auto s = env::parse_slot(v.get<std::string>());
    if (!s) r.fail("field \"slot\": \"" + v.get<std::string>() + "\" is not breakfast, lunch, dinner or snack");
    return static_cast<int>(*s);
  }
  r.fail("field \"slot\" must be a slot name or 0..3");
}

LoggedDecision parse_decision(const Reader& r, const json& rec, const env::Catalog& catalog) {
  LoggedDecision d;
  d.line = r.line;
  d.event_id = r.string_field(rec, "event_id");
  d.user_id = r.string_field(rec, "user_id");
  if (rec.contains("model_version") && rec["model_version"].is_string()) d.model_version = rec["model_version"].get<std::string>();
  if (rec.contains("slot") && !rec["slot"].is_null()) d.slot = slot_of(r, rec["slot"]);
  const auto& cands = r.field(rec, "candidates");
  if (!cands.is_array() || cands.empty()) r.fail("field \"candidates\" must be a non-empty array of meal ids");
  for (const auto& c : cands) {
    if (!c.is_string()) r.fail("field \"candidates\" must hold meal ids (strings), got " + c.dump());
    const auto idx = catalog.find_meal(c.get<std::string>());
    if (!idx) r.fail("candidate meal \"" + c.get<std::string>() + "\" is not in the catalog (sha256 " + catalog.content_hash() + ")");
    d.candidates.push_back(static_cast<std::int32_t>(*idx));
  }
  d.probabilities = r.numbers(r.field(rec, "probabilities"), "probabilities");
  if (rec.contains("scores") && !rec["scores"].is_null()) d.scores = r.numbers(rec["scores"], "scores");
  const std::string chosen = r.string_field(rec, "chosen");
  const auto chosen_idx = catalog.find_meal(chosen);
  if (!chosen_idx) r.fail("chosen meal \"" + chosen + "\" is not in the catalog");
  const auto it = std::find(d.candidates.begin(), d.candidates.end(), static_cast<std::int32_t>(*chosen_idx));
  if (it == d.candidates.end()) r.fail("chosen meal \"" + chosen + "\" is not among the candidates");
  d.chosen = static_cast<std::size_t>(it - d.candidates.begin());
  if (rec.contains("epsilon") && !rec["epsilon"].is_null()) d.epsilon = r.number(rec["epsilon"], "epsilon");
  if (rec.contains("state_features") && !rec["state_features"].is_null()) {
    for (const double v : r.numbers(rec["state_features"], "state_features")) d.state_features.push_back(static_cast<float>(v));
  }
  if (rec.contains("candidate_features") && !rec["candidate_features"].is_null()) {
    const auto& cf = rec["candidate_features"];
    if (!cf.is_array() || cf.size() != d.candidates.size()) {
      r.fail("field \"candidate_features\" must hold one array per candidate (" + std::to_string(d.candidates.size()) + ")");
    }
    for (std::size_t j = 0; j < cf.size(); ++j) {
      const auto row = r.numbers(cf[j], "candidate_features[" + std::to_string(j) + "]");
      if (j == 0) d.candidate_feature_dim = static_cast<int>(row.size());
      if (static_cast<int>(row.size()) != d.candidate_feature_dim) r.fail("field \"candidate_features\": rows differ in length");
      for (const double v : row) d.candidate_features.push_back(static_cast<float>(v));
    }
  }
  validate_decision(d, r.source);
  return d;
}

// --- synthetic logging policy --------------------------------------------------------------

void check_logging(const SyntheticLogOptions& o, const env::Catalog& catalog) {
  if (o.users < 1) throw std::invalid_argument("synthetic logs: users " + std::to_string(o.users) + " must be >= 1");
  if (!(o.temperature > 0) || !std::isfinite(o.temperature)) {
    throw std::invalid_argument("synthetic logs: temperature " + fmt_g(o.temperature) + " must be finite and > 0");
  }
  if (!(o.epsilon >= 0 && o.epsilon <= 1)) throw std::invalid_argument("synthetic logs: epsilon " + fmt_g(o.epsilon) + " is not in [0, 1]");
  if (o.score != "myopic" && o.score != "popularity") {
    throw std::invalid_argument("synthetic logs: score \"" + o.score + "\" is not myopic or popularity");
  }
  if (o.score == "popularity" && o.popularity.size() != catalog.size()) {
    throw std::invalid_argument("synthetic logs: score popularity needs one popularity value per catalog meal (" +
                                std::to_string(catalog.size()) + "), got " + std::to_string(o.popularity.size()));
  }
}

// Runs the logging policy for `users` weeks from `seed`; calls on_decision(sim, decision)
// with the decision filled except reward/outcome, before the logged meal is stepped.
template <class OnDecision, class OnReward>
void run_logging_policy(const env::Catalog& catalog, const env::Population& population, const config::MealSimConfig& config,
                        const SyntheticLogOptions& o, int users, std::uint64_t seed, OnDecision&& on_decision,
                        OnReward&& on_reward) {
  check_logging(o, catalog);
  env::MealSim sim(catalog, population, config);
  std::vector<double> allowed_scores, softmax;
  std::vector<float> dynamic(catalog.size() * env::kCandidateDynamicFeatures);
  for (int u = 0; u < users; ++u) {
    const std::uint64_t user_seed = seed + static_cast<std::uint64_t>(u);
    sim.reset(user_seed);
    std::mt19937_64 rng(episode_seed(user_seed ^ kLoggingRngSalt, 0));
    while (!sim.done()) {
      LoggedDecision d;
      d.user_id = "u" + std::to_string(user_seed);
      d.event_id = "e" + std::to_string(user_seed) + "-" + std::to_string(sim.step_index());
      d.model_version = "synthetic-softmax-" + o.score;
      d.slot = static_cast<int>(sim.slot());
      d.epsilon = o.epsilon;
      const auto mask = sim.action_mask();
      for (std::size_t m = 0; m < mask.size(); ++m) {
        if (!mask[m]) continue;
        d.candidates.push_back(static_cast<std::int32_t>(m));
        d.scores.push_back(o.score == "myopic" ? sim.expected_reward(static_cast<env::Action>(m)) : o.popularity[m]);
      }
      softmax.assign(d.candidates.size(), 0.0);
      softmax_pmf(std::span<const double>(d.scores), {}, o.temperature, softmax);
      const double n = static_cast<double>(d.candidates.size());
      d.probabilities.resize(d.candidates.size());
      for (std::size_t j = 0; j < softmax.size(); ++j) d.probabilities[j] = (1.0 - o.epsilon) * softmax[j] + o.epsilon / n;
      d.chosen = sample_from_pmf(d.probabilities, rng);
      const auto obs = sim.observation();
      d.state_features.assign(obs.begin(), obs.end());
      if (o.candidate_features) {
        sim.candidate_features(dynamic);
        d.candidate_feature_dim = env::kCandidateDynamicFeatures;
        for (const auto c : d.candidates) {
          const auto* row = dynamic.data() + static_cast<std::size_t>(c) * env::kCandidateDynamicFeatures;
          d.candidate_features.insert(d.candidate_features.end(), row, row + env::kCandidateDynamicFeatures);
        }
      }
      on_decision(sim, d);
      const auto step = sim.step(d.chosen_meal());
      on_reward(d, step);
    }
  }
}

// --- direct-method regression ----------------------------------------------------------------

struct FeatureLayout {
  std::size_t state = 0;       // state_features per decision
  std::size_t candidate = 0;   // candidate features per candidate
  bool scores = false;
  bool mealsim = false;        // state_features has the MealSim observation layout
  std::size_t dim() const {
    return 1 + state + static_cast<std::size_t>(env::kMealStaticFeatures) + candidate + (scores ? 1 : 0) + (mealsim ? 5 : 0);
  }
};

FeatureLayout layout_of(const DecisionLog& log) {
  FeatureLayout l;
  const auto& first = log.decisions.front();
  l.state = first.state_features.size();
  l.candidate = static_cast<std::size_t>(first.candidate_feature_dim);
  l.scores = true;
  for (const auto& d : log.decisions) {
    if (d.state_features.size() != l.state) {
      throw OpeInputError(log.source, d.line, "state_features has " + std::to_string(d.state_features.size()) +
                                                  " values; the first decision has " + std::to_string(l.state));
    }
    if (static_cast<std::size_t>(d.candidate_feature_dim) != l.candidate) {
      throw OpeInputError(log.source, d.line, "candidate_features has " + std::to_string(d.candidate_feature_dim) +
                                                  " values per candidate; the first decision has " + std::to_string(l.candidate));
    }
    if (d.scores.empty()) l.scores = false;
  }
  l.mealsim = l.state == static_cast<std::size_t>(env::kObservationSize);
  return l;
}

void features(const LoggedDecision& d, std::size_t j, const FeatureLayout& l, const env::Catalog& catalog, double* out) {
  std::size_t k = 0;
  out[k++] = 1.0;
  for (std::size_t i = 0; i < l.state; ++i) out[k++] = d.state_features[i];
  const auto meal = static_cast<std::size_t>(d.candidates[j]);
  const float* mf = catalog.meal_features().data() + meal * env::kMealStaticFeatures;
  for (int i = 0; i < env::kMealStaticFeatures; ++i) out[k++] = mf[i];
  for (std::size_t i = 0; i < l.candidate; ++i) out[k++] = d.candidate_features[j * l.candidate + i];
  if (l.scores) out[k++] = d.scores[j];
  if (l.mealsim) {
    // What a linear model cannot form itself: the state seen through this meal.
    const auto cuisine = static_cast<std::size_t>(catalog.meals()[meal].cuisine_index);
    const auto& s = d.state_features;
    out[k++] = s[static_cast<std::size_t>(env::kObsCuisineAccept) + cuisine];   // acceptance of its cuisine
    out[k++] = s[static_cast<std::size_t>(env::kObsCuisineMemory) + cuisine];   // boredom with its cuisine
    out[k++] = mf[0] * s[static_cast<std::size_t>(env::kObsKcalLeft)];          // kcal vs what is left today
    out[k++] = mf[1] * s[static_cast<std::size_t>(env::kObsProtein)];           // protein vs eaten today
    out[k++] = mf[6] * s[static_cast<std::size_t>(env::kObsSodium)];            // sodium vs eaten today
  }
}

struct Ridge {
  Eigen::VectorXd mean, scale, beta;
  double intercept = 0;
  bool ok = false;
  double predict(const double* x) const {
    double y = intercept;
    for (Eigen::Index i = 0; i < beta.size(); ++i) {
      if (scale[i] > 0) y += beta[i] * (x[i] - mean[i]) / scale[i];
    }
    return y;
  }
};

Ridge fit_ridge(const Eigen::MatrixXd& x, const Eigen::VectorXd& y, double lambda) {
  Ridge r;
  const auto n = x.rows();
  if (n == 0) return r;
  r.mean = x.colwise().mean().transpose();
  r.scale.resize(x.cols());
  Eigen::MatrixXd z(n, x.cols());
  for (Eigen::Index c = 0; c < x.cols(); ++c) {
    const Eigen::VectorXd centred = x.col(c).array() - r.mean[c];
    const double sd = std::sqrt(centred.squaredNorm() / static_cast<double>(n));
    // Constant columns (the intercept among them) carry nothing once centred.
    r.scale[c] = sd > 1e-12 ? sd : 0.0;
    z.col(c) = r.scale[c] > 0 ? Eigen::VectorXd(centred / sd) : Eigen::VectorXd::Zero(n);
  }
  r.intercept = y.mean();
  const Eigen::VectorXd yc = y.array() - r.intercept;
  Eigen::MatrixXd gram = z.transpose() * z;
  gram.diagonal().array() += lambda;
  r.beta = gram.ldlt().solve(z.transpose() * yc);
  r.ok = true;
  return r;
}

struct UserIndex {
  std::vector<std::size_t> user_of;  // per decision
  std::size_t users = 0;
};

UserIndex index_users(const DecisionLog& log) {
  UserIndex ui;
  std::unordered_map<std::string, std::size_t> ids;
  for (const auto& d : log.decisions) {
    const auto [it, inserted] = ids.emplace(d.user_id, ids.size());
    ui.user_of.push_back(it->second);
  }
  ui.users = ids.size();
  return ui;
}

OpeInterval interval(std::span<const double> num, std::span<const double> den,
                     const std::vector<std::vector<std::uint32_t>>& resamples, double confidence) {
  const Estimate e = ratio_estimate(num, den, resamples, confidence);
  return {e.value, e.lo, e.hi};
}

}  // namespace

OpeInputError::OpeInputError(std::string source, std::int64_t line, std::string problem)
    : std::invalid_argument(source + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + problem),
      source_(std::move(source)),
      line_(line),
      problem_(std::move(problem)) {}

void validate_decision(const LoggedDecision& d, std::string_view source) {
  auto fail = [&](const std::string& problem) { throw OpeInputError(std::string(source), d.line, problem); };
  if (d.candidates.empty()) fail("decision " + d.event_id + " has no candidates");
  if (d.probabilities.size() != d.candidates.size()) {
    fail("field \"probabilities\" has " + std::to_string(d.probabilities.size()) + " values for " +
         std::to_string(d.candidates.size()) + " candidates");
  }
  if (!d.scores.empty() && d.scores.size() != d.candidates.size()) {
    fail("field \"scores\" has " + std::to_string(d.scores.size()) + " values for " + std::to_string(d.candidates.size()) +
         " candidates");
  }
  if (d.chosen >= d.candidates.size()) fail("chosen index " + std::to_string(d.chosen) + " is not a candidate");
  {
    // A meal twice among the candidates makes its propensity ambiguous (which copy was chosen?).
    std::vector<std::int32_t> sorted(d.candidates);
    std::sort(sorted.begin(), sorted.end());
    if (const auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end()) {
      fail("candidate meal index " + std::to_string(*dup) + " appears more than once in decision " + d.event_id);
    }
  }
  const double p = d.probabilities[d.chosen];
  if (!(p > 0.0 && p <= 1.0)) {
    fail("propensity of the chosen meal is " + fmt_g(p) + ", outside (0, 1]: the logging policy must give what it chose a "
         "positive probability");
  }
  if (!std::isfinite(1.0 / p)) {
    fail("propensity of the chosen meal is " + fmt_g(p) + ": too small to invert into an importance weight");
  }
  double sum = 0;
  for (std::size_t j = 0; j < d.probabilities.size(); ++j) {
    const double q = d.probabilities[j];
    if (!(q >= 0.0 && q <= 1.0)) fail("probabilities[" + std::to_string(j) + "] is " + fmt_g(q) + ", outside [0, 1]");
    sum += q;
  }
  if (std::abs(sum - 1.0) > kSumTolerance) fail("probabilities sum to " + fmt_g(sum) + ", not 1");
  if (d.candidate_feature_dim < 0 ||
      d.candidate_features.size() != d.candidates.size() * static_cast<std::size_t>(d.candidate_feature_dim)) {
    fail("candidate_features does not hold " + std::to_string(d.candidate_feature_dim) + " values per candidate");
  }
}

DecisionLog read_decision_log(const std::filesystem::path& path, const env::Catalog& catalog) {
  Reader r{path.string(), 0};
  std::ifstream in(path);
  if (!in) throw OpeInputError(path.string(), 0, "cannot open the decision log");
  DecisionLog log;
  log.source = path.string();
  struct Feedback {
    double reward;
    std::string outcome, key;
    std::int64_t line;
  };
  std::vector<LoggedDecision> decisions;
  std::unordered_map<std::string, std::size_t> decision_of;
  std::unordered_map<std::string, Feedback> feedback;
  std::string text;
  std::int64_t records = 0;
  while (std::getline(in, text)) {
    ++r.line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    json rec;
    try {
      rec = json::parse(text);
    } catch (const json::parse_error& e) {
      r.fail(std::string("not valid JSON: ") + e.what());
    }
    if (!rec.is_object()) r.fail("a record must be a JSON object");
    ++records;
    const std::string kind = r.string_field(rec, "kind");
    if (kind == "decision") {
      auto d = parse_decision(r, rec, catalog);
      if (const auto it = decision_of.find(d.event_id); it != decision_of.end()) {
        r.fail("event_id \"" + d.event_id + "\" was already logged on line " + std::to_string(decisions[it->second].line));
      }
      decision_of.emplace(d.event_id, decisions.size());
      decisions.push_back(std::move(d));
    } else if (kind == "feedback") {
      const std::string event = r.string_field(rec, "event_id");
      Feedback f{r.number(r.field(rec, "reward"), "field \"reward\""), "", "", r.line};
      if (rec.contains("outcome") && rec["outcome"].is_string()) f.outcome = rec["outcome"].get<std::string>();
      if (rec.contains("idempotency_key") && rec["idempotency_key"].is_string()) f.key = rec["idempotency_key"].get<std::string>();
      const auto it = feedback.find(event);
      if (it == feedback.end()) {
        feedback.emplace(event, f);
      } else if (!f.key.empty() && f.key == it->second.key) {
        // A retried request: the service stores it once; so do we.
        if (f.reward != it->second.reward) {
          r.fail("idempotency key \"" + f.key + "\" was used on line " + std::to_string(it->second.line) +
                 " with reward " + fmt_g(it->second.reward) + ", here with " + fmt_g(f.reward));
        }
        ++log.duplicate_feedback;
      } else {
        r.fail("event \"" + event + "\" already has feedback on line " + std::to_string(it->second.line) +
               "; the estimators need one reward per decision");
      }
    } else {
      r.fail("field \"kind\": \"" + kind + "\" is not decision or feedback");
    }
  }
  if (in.bad()) throw OpeInputError(path.string(), r.line, "read error");
  if (records == 0) throw OpeInputError(path.string(), 0, "empty decision log: no records");
  if (decisions.empty()) throw OpeInputError(path.string(), 0, "no decision records (only feedback)");
  for (auto& d : decisions) {
    const auto it = feedback.find(d.event_id);
    if (it == feedback.end()) {
      ++log.decisions_without_feedback;
      continue;
    }
    d.reward = it->second.reward;
    d.outcome = it->second.outcome;
    log.decisions.push_back(std::move(d));
  }
  for (const auto& [event, f] : feedback) {
    if (!decision_of.contains(event)) ++log.orphan_feedback;
  }
  if (log.decisions.empty()) {
    throw OpeInputError(path.string(), 0, "none of the " + std::to_string(decisions.size()) + " decisions has feedback");
  }
  return log;
}

void write_decision_log(const std::filesystem::path& path, const std::vector<LoggedDecision>& decisions,
                        const env::Catalog& catalog) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error(path.string() + ": cannot write the decision log");
    const auto& meals = catalog.meals();
    for (const auto& d : decisions) {
      json rec = {{"kind", "decision"}, {"event_id", d.event_id}, {"user_id", d.user_id}};
      if (!d.model_version.empty()) rec["model_version"] = d.model_version;
      if (d.slot >= 0) rec["slot"] = std::string(env::slot_name(static_cast<env::Slot>(d.slot)));
      json cands = json::array(), probs = json::array(), scores = json::array();
      for (std::size_t j = 0; j < d.candidates.size(); ++j) {
        cands.push_back(meals[static_cast<std::size_t>(d.candidates[j])].id);
        probs.push_back(round9(d.probabilities[j]));
        if (!d.scores.empty()) scores.push_back(round9(d.scores[j]));
      }
      rec["candidates"] = std::move(cands);
      if (!d.scores.empty()) rec["scores"] = std::move(scores);
      rec["probabilities"] = std::move(probs);
      rec["chosen"] = meals[static_cast<std::size_t>(d.chosen_meal())].id;
      if (!std::isnan(d.epsilon)) rec["epsilon"] = d.epsilon;
      if (!d.state_features.empty()) rec["state_features"] = float_array(d.state_features);
      if (d.candidate_feature_dim > 0) {
        json rows = json::array();
        const auto k = static_cast<std::size_t>(d.candidate_feature_dim);
        for (std::size_t j = 0; j < d.candidates.size(); ++j) {
          rows.push_back(float_array(std::span<const float>(d.candidate_features).subspan(j * k, k)));
        }
        rec["candidate_features"] = std::move(rows);
      }
      out << rec.dump() << "\n";
      out << json{{"kind", "feedback"},
                  {"event_id", d.event_id},
                  {"outcome", d.outcome},
                  {"reward", d.reward},
                  {"idempotency_key", "fb-" + d.event_id}}
                 .dump()
          << "\n";
    }
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw std::runtime_error(path.string() + ": write failed");
    }
  }
  std::filesystem::rename(tmp, path);
}

// ---- targets ---------------------------------------------------------------------------

void UniformTarget::pmf(const LoggedDecision& d, std::span<double> pmf) {
  std::fill(pmf.begin(), pmf.end(), 1.0 / static_cast<double>(d.candidates.size()));
}

void MealScoreGreedyTarget::pmf(const LoggedDecision& d, std::span<double> pmf) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < d.candidates.size(); ++j) {
    const auto a = static_cast<std::size_t>(d.candidates[j]), b = static_cast<std::size_t>(d.candidates[best]);
    if (meal_scores_[a] > meal_scores_[b] || (meal_scores_[a] == meal_scores_[b] && a < b)) best = j;
  }
  std::fill(pmf.begin(), pmf.end(), 0.0);
  pmf[best] = 1.0;
}

LoggedScoreTarget::LoggedScoreTarget(std::string name, double temperature, double epsilon)
    : name_(std::move(name)), temperature_(temperature), epsilon_(epsilon) {
  if (!(temperature >= 0) || !std::isfinite(temperature)) {
    throw std::invalid_argument("LoggedScoreTarget: temperature " + fmt_g(temperature) + " must be finite and >= 0");
  }
  if (!(epsilon >= 0 && epsilon <= 1)) throw std::invalid_argument("LoggedScoreTarget: epsilon " + fmt_g(epsilon) + " is not in [0, 1]");
}

void LoggedScoreTarget::pmf(const LoggedDecision& d, std::span<double> pmf) {
  if (d.scores.size() != d.candidates.size()) {
    throw std::invalid_argument("target " + name_ + ": decision " + d.event_id + " has no logged scores");
  }
  if (temperature_ == 0) {
    epsilon_greedy_pmf(std::span<const double>(d.scores), {}, epsilon_, pmf);
    return;
  }
  softmax_pmf(std::span<const double>(d.scores), {}, temperature_, pmf);
  const double n = static_cast<double>(pmf.size());
  for (auto& p : pmf) p = (1.0 - epsilon_) * p + epsilon_ / n;
}

// ---- estimators ------------------------------------------------------------------------

DirectMethodModel fit_direct_method(const DecisionLog& log, const env::Catalog& catalog, const OpeOptions& options) {
  if (log.decisions.empty()) throw OpeInputError(log.source, 0, "no decisions to fit the direct-method model on");
  const FeatureLayout layout = layout_of(log);
  const std::size_t dim = layout.dim();
  DirectMethodModel model;
  model.features = static_cast<int>(dim);
  const std::size_t n = log.decisions.size();
  std::vector<int> fold(n);
  std::array<std::size_t, 2> fold_size{};
  for (std::size_t i = 0; i < n; ++i) {
    fold[i] = static_cast<int>(fnv1a(log.decisions[i].user_id) & 1U);
    ++fold_size[static_cast<std::size_t>(fold[i])];
  }
  // Cross-fitting needs both folds big enough to fit; otherwise one model for everything.
  const bool cross_fit = std::min(fold_size[0], fold_size[1]) >= 2 * dim;
  if (!cross_fit) {
    model.notes.push_back("too few decisions per user fold for cross-fitting (" + std::to_string(fold_size[0]) + " and " +
                          std::to_string(fold_size[1]) + " for " + std::to_string(dim) +
                          " features): one model fitted and evaluated on all decisions, so DR may be optimistic");
  }
  std::array<Ridge, 2> models;
  std::vector<double> row(dim);
  for (int f = 0; f < (cross_fit ? 2 : 1); ++f) {
    std::vector<std::size_t> train;
    for (std::size_t i = 0; i < n; ++i) {
      if (!cross_fit || fold[i] != f) train.push_back(i);
    }
    Eigen::MatrixXd x(static_cast<Eigen::Index>(train.size()), static_cast<Eigen::Index>(dim));
    Eigen::VectorXd y(static_cast<Eigen::Index>(train.size()));
    for (std::size_t t = 0; t < train.size(); ++t) {
      const auto& d = log.decisions[train[t]];
      features(d, d.chosen, layout, catalog, row.data());
      for (std::size_t c = 0; c < dim; ++c) x(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(c)) = row[c];
      y[static_cast<Eigen::Index>(t)] = d.reward;
    }
    models[static_cast<std::size_t>(f)] = fit_ridge(x, y, options.ridge_lambda);
  }
  model.predictions.resize(n);
  double mean_r = 0;
  for (const auto& d : log.decisions) mean_r += d.reward;
  mean_r /= static_cast<double>(n);
  double ss_res = 0, ss_tot = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& d = log.decisions[i];
    // Cross-fitted: fold f's decisions are predicted by the model that never saw them.
    const Ridge& m = models[cross_fit ? static_cast<std::size_t>(1 - fold[i]) : 0];
    auto& pred = model.predictions[i];
    pred.resize(d.candidates.size());
    for (std::size_t j = 0; j < d.candidates.size(); ++j) {
      features(d, j, layout, catalog, row.data());
      pred[j] = m.predict(row.data());
    }
    ss_res += (d.reward - pred[d.chosen]) * (d.reward - pred[d.chosen]);
    ss_tot += (d.reward - mean_r) * (d.reward - mean_r);
  }
  model.train_r2 = ss_tot > 0 ? 1.0 - ss_res / ss_tot : 0.0;
  return model;
}

OpeResult evaluate_off_policy(const DecisionLog& log, const DirectMethodModel& model, OpeTarget& target,
                              const OpeOptions& options) {
  if (log.decisions.empty()) throw OpeInputError(log.source, 0, "no decisions to evaluate");
  if (model.predictions.size() != log.decisions.size()) {
    throw std::invalid_argument("evaluate_off_policy: the direct-method model was fitted on another log (" +
                                std::to_string(model.predictions.size()) + " decisions, this log has " +
                                std::to_string(log.decisions.size()) + ")");
  }
  OpeResult out;
  out.target = std::string(target.name());
  const UserIndex ui = index_users(log);
  const std::size_t users = ui.users;
  std::vector<double> n_u(users), r_u(users), wr_u(users), w_u(users), dm_u(users), dr_u(users);
  double sum_w = 0, unsupported = 0;
  std::vector<double> weights;
  weights.reserve(log.decisions.size());
  out.min_propensity = 1.0;
  std::vector<double> pi;
  for (std::size_t i = 0; i < log.decisions.size(); ++i) {
    const auto& d = log.decisions[i];
    pi.assign(d.candidates.size(), 0.0);
    target.pmf(d, pi);
    const auto& q = model.predictions[i];
    double dm = 0;
    for (std::size_t j = 0; j < pi.size(); ++j) {
      dm += pi[j] * q[j];
      if (d.probabilities[j] == 0.0) unsupported += pi[j];
    }
    const double mu = d.propensity();
    const double w = pi[d.chosen] / mu;
    const std::size_t u = ui.user_of[i];
    n_u[u] += 1;
    r_u[u] += d.reward;
    wr_u[u] += w * d.reward;
    w_u[u] += w;
    dm_u[u] += dm;
    dr_u[u] += dm + w * (d.reward - q[d.chosen]);
    sum_w += w;
    weights.push_back(w);
    out.max_weight = std::max(out.max_weight, w);
    out.min_propensity = std::min(out.min_propensity, mu);
    if (mu < options.near_zero_propensity) ++out.near_zero_propensities;
  }
  const auto n = static_cast<double>(log.decisions.size());
  out.decisions = static_cast<std::int64_t>(log.decisions.size());
  out.users = static_cast<std::int64_t>(users);
  // Kish's ESS on weights scaled by the largest: the unscaled squares overflow to inf (and
  // the ratio to NaN) for the very weights the ESS is meant to flag.
  out.ess = 0.0;
  if (out.max_weight > 0) {
    double s1 = 0, s2 = 0;
    for (const double w : weights) {
      const double x = w / out.max_weight;
      s1 += x;
      s2 += x * x;
    }
    out.ess = s1 * s1 / s2;
  }
  out.mean_weight = sum_w / n;
  out.unsupported_mass = unsupported / n;

  std::mt19937_64 rng(options.bootstrap_seed);
  const auto resamples = bootstrap_resamples(users, options.bootstrap_resamples, rng);
  const double c = options.confidence;
  out.logged = interval(r_u, n_u, resamples, c);
  out.ips = interval(wr_u, n_u, resamples, c);
  out.snips = interval(wr_u, w_u, resamples, c);
  out.dm = interval(dm_u, n_u, resamples, c);
  out.dr = interval(dr_u, n_u, resamples, c);

  if (out.near_zero_propensities > 0) {
    out.warnings.push_back(std::to_string(out.near_zero_propensities) + " of " + std::to_string(out.decisions) +
                           " logged propensities are below " + fmt_g(options.near_zero_propensity) + " (smallest " +
                           fmt_g(out.min_propensity) + "); importance weights reach " + fmt_fixed(out.max_weight, 1) +
                           ", so IPS and DR rest on a few decisions");
  }
  if (out.unsupported_mass > 0) {
    out.warnings.push_back("the target puts " + fmt_fixed(100.0 * out.unsupported_mass, 1) +
                           " % of its probability on meals the logging policy gave probability 0: IPS, SNIPS and DR "
                           "cannot see their rewards and are biased there; DM extrapolates");
  }
  if (!(out.ess >= options.low_ess_fraction * n)) {
    out.warnings.push_back("effective sample size " + fmt_fixed(out.ess, 0) + " is " + fmt_fixed(100.0 * out.ess / n, 1) +
                           " % of the " + std::to_string(out.decisions) +
                           " decisions: the estimate rests on the few decisions where the target agrees with the "
                           "logging policy; intervals are wide and may under-cover");
  }
  return out;
}

// ---- synthetic logs ----------------------------------------------------------------------

std::vector<LoggedDecision> generate_synthetic_log(const env::Catalog& catalog, const env::Population& population,
                                                   const config::MealSimConfig& config, const SyntheticLogOptions& options) {
  std::vector<LoggedDecision> out;
  out.reserve(static_cast<std::size_t>(options.users) * env::kStepsPerWeek);
  run_logging_policy(
      catalog, population, config, options, options.users, options.seed, [](const env::MealSim&, LoggedDecision&) {},
      [&](LoggedDecision& d, const env::MealStep& step) {
        d.reward = step.reward;
        d.outcome = step.accepted ? "accepted" : "rejected";
        d.line = static_cast<std::int64_t>(out.size()) * 2 + 1;
        out.push_back(std::move(d));
      });
  return out;
}

TrueValue simulate_target_value(const env::Catalog& catalog, const env::Population& population,
                                const config::MealSimConfig& config, const SyntheticLogOptions& logging,
                                OpeTarget& target, int users, std::uint64_t seed) {
  env::MealSim scratch(catalog, population, config);
  std::vector<double> pi;
  // Per-user sums: a week's decisions are dependent, so the Monte Carlo error is clustered.
  std::vector<double> user_sum, user_n;
  std::string current_user;
  double sum = 0;
  std::int64_t count = 0;
  run_logging_policy(
      catalog, population, config, logging, users, seed,
      [&](const env::MealSim& sim, LoggedDecision& d) {
        pi.assign(d.candidates.size(), 0.0);
        target.pmf(d, pi);
        // One target action and one reward from a copy with its own coins: an unbiased draw
        // of sum_a pi(a|x) E[r|x,a] that leaves the logged trajectory untouched.
        const std::uint64_t draw_seed = episode_seed(fnv1a(d.event_id) ^ kTruthRngSalt, 0);
        std::mt19937_64 rng(draw_seed);
        const std::size_t j = sample_from_pmf(pi, rng);
        scratch = sim;
        scratch.generator().seed(draw_seed + 1);
        const double r = scratch.step(d.candidates[j]).reward;
        if (user_sum.empty() || d.user_id != current_user) {
          current_user = d.user_id;
          user_sum.push_back(0.0);
          user_n.push_back(0.0);
        }
        user_sum.back() += r;
        user_n.back() += 1.0;
        sum += r;
        ++count;
      },
      [](LoggedDecision&, const env::MealStep&) {});
  TrueValue t;
  t.decisions = count;
  t.value = sum / static_cast<double>(count);
  // Delta method for a ratio of cluster sums: Var ~ sum_u (s_u - V n_u)^2 / N^2.
  double var = 0;
  for (std::size_t u = 0; u < user_sum.size(); ++u) {
    const double e = user_sum[u] - t.value * user_n[u];
    var += e * e;
  }
  t.standard_error = std::sqrt(var) / static_cast<double>(count);
  return t;
}

}  // namespace forkcast::evaluation
