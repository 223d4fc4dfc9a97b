#include "forkcast/db/repositories.hpp"

#include <algorithm>
#include <cmath>
#include <span>

#include "pg_binary.hpp"
#include "repositories/support.hpp"

namespace forkcast::db {

using nlohmann::json;

namespace {

template <typename T>
std::vector<T> vector_of(const pqxx::field& f) {
  if (f.is_null()) return {};
  return json::parse(f.c_str()).get<std::vector<T>>();
}

// A real[] column (scores, features): each value is the float32 that was stored, widened.
std::vector<double> floats_of(const pqxx::field& f) {
  std::vector<double> out;
  for (const float x : vector_of<float>(f)) out.push_back(static_cast<double>(x));
  return out;
}


void validate_decision(const NewDecision& d) {
  require_uuid(d.user_id, "user_id");
  require_text(d.model_version, "model_version", 128);
  require_text(d.policy, "policy", 64);
  if (!(d.epsilon >= 0.0 && d.epsilon <= 1.0)) {
    throw std::invalid_argument("epsilon: " + std::to_string(d.epsilon) + " is outside [0, 1]");
  }
  if (d.candidates.empty()) throw std::invalid_argument("candidates: must not be empty");
  // Sorted views, not a std::set: one allocation instead of one per candidate.
  std::vector<std::string_view> distinct;
  distinct.reserve(d.candidates.size());
  for (const auto& c : d.candidates) {
    require_text(c, "candidates", 200);
    if (std::any_of(c.begin(), c.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20; }))
      throw std::invalid_argument("candidates: " + shown(c) + " contains a control character");
    distinct.push_back(c);
  }
  std::sort(distinct.begin(), distinct.end());
  if (const auto twice = std::adjacent_find(distinct.begin(), distinct.end()); twice != distinct.end())
    throw std::invalid_argument("candidates: " + shown(*twice) + " appears twice");
  const auto n = d.candidates.size();
  if (d.scores.size() != n) {
    throw std::invalid_argument("scores: " + std::to_string(d.scores.size()) + " values for " +
                                std::to_string(n) + " candidates");
  }
  if (d.probabilities.size() != n) {
    throw std::invalid_argument("probabilities: " + std::to_string(d.probabilities.size()) +
                                " values for " + std::to_string(n) + " candidates");
  }
  // Scores and features are stored as real (float32): they must fit one.
  const auto fits_float = [](double x) { return std::isfinite(static_cast<float>(x)); };
  for (double s : d.scores) {
    if (!std::isfinite(s))
      throw std::invalid_argument("scores: " + std::to_string(s) + " is not finite");
    if (!fits_float(s))
      throw std::invalid_argument("scores: " + std::to_string(s) + " is outside the range of a 32-bit float");
  }
  double sum = 0.0;
  for (double p : d.probabilities) {
    if (!(p >= 0.0 && p <= 1.0))
      throw std::invalid_argument("probabilities: " + std::to_string(p) + " is outside [0, 1]");
    sum += p;
  }
  if (std::fabs(sum - 1.0) > 1e-6) {
    throw std::invalid_argument("probabilities: they sum to " + std::to_string(sum) + ", not 1");
  }
  const auto chosen = std::find(d.candidates.begin(), d.candidates.end(), d.chosen);
  if (chosen == d.candidates.end())
    throw std::invalid_argument("chosen: " + shown(d.chosen) + " is not a candidate");
  if (d.probabilities[static_cast<std::size_t>(chosen - d.candidates.begin())] <= 0.0) {
    throw std::invalid_argument("chosen: " + shown(d.chosen) +
                                " has probability 0, so it cannot have been drawn");
  }
  for (const auto& r : d.ranked) {
    if (!std::binary_search(distinct.begin(), distinct.end(), std::string_view(r)))
      throw std::invalid_argument("ranked: " + shown(r) + " is not a candidate");
  }
  for (double x : d.state_features) {
    if (!std::isfinite(x))
      throw std::invalid_argument("state_features: " + std::to_string(x) + " is not finite");
    if (!fits_float(x))
      throw std::invalid_argument("state_features: " + std::to_string(x) + " is outside the range of a 32-bit float");
  }
  if (d.candidate_feature_dim < 0) {
    throw std::invalid_argument(
        "candidate_feature_dim: " + std::to_string(d.candidate_feature_dim) + " is negative");
  }
  if (!d.candidate_features.empty() &&
      d.candidate_features.size() != n * static_cast<std::size_t>(d.candidate_feature_dim)) {
    throw std::invalid_argument(
        "candidate_features: " + std::to_string(d.candidate_features.size()) +
        " values, expected candidates x candidate_feature_dim = " +
        std::to_string(n * static_cast<std::size_t>(d.candidate_feature_dim)));
  }
  for (double x : d.candidate_features) {
    if (!std::isfinite(x))
      throw std::invalid_argument("candidate_features: " + std::to_string(x) + " is not finite");
    if (!fits_float(x))
      throw std::invalid_argument("candidate_features: " + std::to_string(x) + " is outside the range of a 32-bit float");
  }
  require_object(d.context, "context");
}

// Meal ids of one decision joined for the batch statement (they contain no control
// characters: validate_decision).
constexpr char kIdSeparator = '\x1f';

void join_ids(std::string& out, std::span<const std::string> ids) {
  out.clear();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(kIdSeparator);
    out += ids[i];
  }
}

pqxx::binarystring binary(pg_binary::ArrayWriter& array) {
  const std::string bytes = array.finish();
  return pqxx::binarystring(bytes.data(), bytes.size());
}

pqxx::binarystring float4_array(std::span<const double> values) {
  pg_binary::ArrayWriter a(pg_binary::kFloat4);
  for (const double v : values) a.add_float4(static_cast<float>(v));
  return binary(a);
}

}  // namespace

Decision decision_of(const pqxx::row& r) {
  Decision d;
  d.event_id = r[0].as<std::string>();
  auto& l = d.logged;
  l.user_id = r[1].as<std::string>();
  l.decided_at = from_us(r[2].as<std::int64_t>());
  l.slot = slot_from_name(r[3].as<std::string>());
  l.model_version = r[4].as<std::string>();
  l.policy = r[5].as<std::string>();
  l.epsilon = r[6].as<double>();
  l.candidates = vector_of<std::string>(r[7]);
  l.scores = floats_of(r[8]);
  l.probabilities = vector_of<double>(r[9]);
  l.chosen = r[10].as<std::string>();
  l.ranked = vector_of<std::string>(r[11]);
  l.state_features = floats_of(r[12]);
  l.candidate_features = floats_of(r[13]);
  l.candidate_feature_dim = r[14].as<int>();
  l.context = json_of(r[15]);
  return d;
}

Decision DecisionRepository::record(const NewDecision& decision) {
  validate_decision(decision);
  Decision d;
  d.logged = decision;
  if (d.logged.ranked.empty()) d.logged.ranked = {decision.chosen};
  const int feature_dim = decision.candidate_features.empty() ? 0 : decision.candidate_feature_dim;
  d.logged.candidate_feature_dim = feature_dim;
  pg_binary::ArrayWriter candidates(pg_binary::kText), ranked(pg_binary::kText), probabilities(pg_binary::kFloat8);
  for (const auto& c : decision.candidates) candidates.add_text(c);
  for (const auto& r : d.logged.ranked) ranked.add_text(r);
  for (const double p : decision.probabilities) probabilities.add_float8(p);
  pqxx::result rows;
  try {
    rows = in_transaction(pool_, [&](pqxx::work& tx) {
      return tx.exec_prepared(
          sql::kDecisionInsert.name, decision.user_id, to_us(decision.decided_at),
          std::string(slot_name(decision.slot)), decision.model_version, decision.policy,
          decision.epsilon, binary(candidates), float4_array(decision.scores), binary(probabilities),
          decision.chosen, binary(ranked), float4_array(decision.state_features),
          float4_array(decision.candidate_features), feature_dim, json_text(decision.context, "context"));
    });
  } catch (const NotFoundError&) {
    throw NotFoundError("users.id", "no user " + shown(decision.user_id));
  }
  d.event_id = rows[0][0].as<std::string>();
  d.logged.decided_at = from_us(rows[0][1].as<std::int64_t>());
  return d;
}

std::size_t DecisionRepository::record_batch(std::span<const Decision> decisions) {
  return record_batch(encode_batch(decisions));
}

EncodedDecisionBatch DecisionRepository::encode_batch(std::span<const Decision> decisions) {
  using namespace pg_binary;
  ArrayWriter event_ids(kUuid), user_ids(kUuid), decided_us(kInt8), slots(kText), versions(kText), policies(kText),
      epsilons(kFloat8), candidates(kText), chosen(kText), ranked(kText), feature_dims(kInt4), contexts(kText),
      scores(kFloat4), probabilities(kFloat8), state_features(kFloat4), candidate_offsets(kInt4),
      state_offsets(kInt4), candidate_features(kFloat4), feature_offsets(kInt4);
  candidate_offsets.add_int4(0);
  state_offsets.add_int4(0);
  feature_offsets.add_int4(0);
  std::string joined;
  for (const Decision& d : decisions) {
    validate_decision(d.logged);
    require_uuid(d.event_id, "event_id");
    if (!d.logged.decided_at) throw std::invalid_argument("decided_at: must be set for a batched decision");
    const NewDecision& n = d.logged;
    const bool has_features = !n.candidate_features.empty();
    event_ids.add_uuid(d.event_id);
    user_ids.add_uuid(n.user_id);
    decided_us.add_int8(to_us(n.decided_at).value_or(0));
    slots.add_text(slot_name(n.slot));
    versions.add_text(n.model_version);
    policies.add_text(n.policy);
    epsilons.add_float8(n.epsilon);
    join_ids(joined, n.candidates);
    candidates.add_text(joined);
    chosen.add_text(n.chosen);
    join_ids(joined, n.ranked.empty() ? std::span<const std::string>(&n.chosen, 1) : std::span<const std::string>(n.ranked));
    ranked.add_text(joined);
    feature_dims.add_int4(has_features ? n.candidate_feature_dim : 0);
    contexts.add_text(json_text(n.context, "context"));
    for (const double v : n.scores) scores.add_float4(static_cast<float>(v));
    for (const double v : n.probabilities) probabilities.add_float8(v);
    for (const double v : n.state_features) state_features.add_float4(static_cast<float>(v));
    for (const double v : n.candidate_features) candidate_features.add_float4(static_cast<float>(v));
    candidate_offsets.add_int4(static_cast<std::int32_t>(scores.size()));
    state_offsets.add_int4(static_cast<std::int32_t>(state_features.size()));
    feature_offsets.add_int4(static_cast<std::int32_t>(candidate_features.size()));
  }
  EncodedDecisionBatch batch;
  batch.count_ = decisions.size();
  // In the order of the statement's parameters $1..$19 (statements.cpp).
  for (ArrayWriter* a : {&event_ids, &user_ids, &decided_us, &slots, &versions, &policies, &epsilons, &candidates,
                         &chosen, &ranked, &feature_dims, &contexts, &scores, &probabilities, &state_features,
                         &candidate_offsets, &state_offsets, &candidate_features, &feature_offsets}) {
    batch.arrays_.push_back(a->finish());
  }
  return batch;
}

std::size_t DecisionRepository::record_batch(const EncodedDecisionBatch& batch) {
  if (batch.count_ == 0) return 0;
  const auto& p = batch.arrays_;
  const auto bin = [&](std::size_t i) { return pqxx::binarystring(p[i].data(), p[i].size()); };
  try {
    const auto stored = in_transaction(pool_, [&](pqxx::work& tx) {
      return tx.exec_prepared(sql::kDecisionInsertBatch.name, bin(0), bin(1), bin(2), bin(3), bin(4), bin(5), bin(6),
                              bin(7), bin(8), bin(9), bin(10), bin(11), bin(12), bin(13), bin(14), bin(15), bin(16),
                              bin(17), bin(18));
    });
    return static_cast<std::size_t>(stored.size());
  } catch (const NotFoundError&) {
    throw NotFoundError("users.id", "a decision of this batch names an unknown user");
  }
}

std::optional<Decision> DecisionRepository::find(std::string_view event_id) {
  if (!is_uuid(event_id)) return std::nullopt;
  return first_row(query(pool_, sql::kDecisionById, std::string(event_id)), decision_of);
}

std::int64_t DecisionRepository::count_for_user(std::string_view user_id) {
  if (!is_uuid(user_id)) return 0;
  return query(pool_, sql::kDecisionCountForUser, std::string(user_id))[0][0].as<std::int64_t>();
}

std::vector<Decision> DecisionRepository::list_for_user(std::string_view user_id, int limit) {
  if (!is_uuid(user_id)) return {};
  if (limit < 1) throw std::invalid_argument("limit: " + std::to_string(limit) + " is below 1");
  return all_rows(query(pool_, sql::kDecisionsForUser, std::string(user_id), limit), decision_of);
}

std::vector<Decision> DecisionRepository::list_between(Timestamp from, Timestamp to, int limit) {
  if (limit < 1) throw std::invalid_argument("limit: " + std::to_string(limit) + " is below 1");
  return all_rows(query(pool_, sql::kDecisionsBetween, to_us(from), to_us(to), limit),
                  decision_of);
}

}  // namespace forkcast::db
