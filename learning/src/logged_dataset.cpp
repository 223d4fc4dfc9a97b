#include "forkcast/learning/logged_dataset.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace forkcast::learning {

namespace {

constexpr double kProbabilitySumTolerance = 1e-6;  // as the decision repository checks

}  // namespace

std::uint64_t user_key_of(std::string_view user_id) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : user_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

RewardSource reward_source_from_name(std::string_view name, std::string_view field) {
  if (name == "computed") return RewardSource::computed;
  if (name == "client") return RewardSource::client;
  throw std::invalid_argument(std::string(field) + ": '" + std::string(name) + "' (allowed: computed, client)");
}

std::string_view reward_source_name(RewardSource source) noexcept {
  return source == RewardSource::client ? "client" : "computed";
}

DatasetBuilder::DatasetBuilder(const env::Catalog& catalog, const config::MealSimConfig& mealsim, DatasetOptions options)
    : catalog_(catalog), mealsim_(mealsim), options_(options), catalog_version_(catalog.content_hash().substr(0, 16)) {
  if (!(options_.gamma >= 0.0 && options_.gamma <= 1.0)) {
    throw std::invalid_argument("gamma: " + std::to_string(options_.gamma) + " is outside [0, 1]");
  }
  if (catalog.size() > 32'767) {
    throw std::invalid_argument("catalog: " + std::to_string(catalog.size()) + " meals exceed 32767 (int16 indices)");
  }
  meal_index_.reserve(catalog.size());
  for (std::size_t i = 0; i < catalog.size(); ++i) meal_index_.emplace(catalog.meals()[i].id, static_cast<std::int16_t>(i));
}

std::int32_t DatasetBuilder::add_row(const db::Decision& decision) {
  const db::NewDecision& d = decision.logged;
  if (const auto it = d.context.find("catalog"); it != d.context.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>() != catalog_version_) {
      ++stats_.skipped_other_catalog;
      return -1;
    }
  }
  const std::size_t count = d.candidates.size();
  if (d.candidate_feature_dim != 1 || d.candidate_features.size() != count) {
    ++stats_.skipped_no_recency;
    return -1;
  }
  if (d.state_features.size() != static_cast<std::size_t>(env::kObservationSize)) {
    ++stats_.skipped_bad_observation;
    return -1;
  }
  if (count == 0 || d.probabilities.size() != count) {
    ++stats_.skipped_bad_probabilities;
    return -1;
  }
  double sum = 0;
  for (const double p : d.probabilities) {
    if (!(p >= 0.0 && p <= 1.0)) {
      ++stats_.skipped_bad_probabilities;
      return -1;
    }
    sum += p;
  }
  if (std::abs(sum - 1.0) > kProbabilitySumTolerance) {
    ++stats_.skipped_bad_probabilities;
    return -1;
  }
  // Resolve every meal before appending anything, so a skip leaves no half row.
  scratch_candidates_.clear();
  std::int32_t chosen = -1;
  for (std::size_t i = 0; i < count; ++i) {
    const auto it = meal_index_.find(d.candidates[i]);
    if (it == meal_index_.end()) {
      ++stats_.skipped_unknown_meal;
      return -1;
    }
    scratch_candidates_.push_back(it->second);
    if (chosen < 0 && d.candidates[i] == d.chosen) chosen = static_cast<std::int32_t>(i);
  }
  if (chosen < 0 || d.probabilities[static_cast<std::size_t>(chosen)] <= 0.0) {
    ++stats_.skipped_bad_probabilities;
    return -1;
  }

  const auto row = data_.rows();
  for (const double x : d.state_features) data_.observations.push_back(static_cast<float>(x));
  data_.candidates.insert(data_.candidates.end(), scratch_candidates_.begin(), scratch_candidates_.end());
  for (const double r : d.candidate_features) data_.recency.push_back(static_cast<float>(r));
  for (const double p : d.probabilities) data_.propensities.push_back(static_cast<float>(p));
  data_.candidate_begin.push_back(static_cast<std::int64_t>(data_.candidates.size()));
  data_.chosen.push_back(chosen);
  data_.epsilon.push_back(static_cast<float>(d.epsilon));
  const auto temperature = d.context.find("temperature");
  data_.temperature.push_back(temperature != d.context.end() && temperature->is_number() && temperature->get<double>() > 0
                                  ? static_cast<float>(temperature->get<double>())
                                  : 0.0F);
  data_.user_key.push_back(user_key_of(d.user_id));
  data_.decided_at.push_back(d.decided_at.value_or(db::Timestamp{}));
  data_.event_id.push_back(decision.event_id);
  ++stats_.rows;
  return row;
}

float DatasetBuilder::reward_of(const db::JoinedDecision& joined, std::int32_t row, bool& accepted,
                                bool& client_reward) const {
  const db::FeedbackSummary& f = joined.feedback;
  accepted = f.accepted || f.eaten;
  client_reward = false;
  if (options_.reward_source == RewardSource::client && f.reward) {
    client_reward = true;
    return static_cast<float>(*f.reward);
  }
  LoggedStep step;
  step.observation = data_.observation(row);
  step.slot = static_cast<env::Slot>(joined.decision.logged.slot);
  step.accepted = accepted;
  // What was eaten at this slot: the accepted meal (the one the feedback names, else the
  // suggestion), or the meal the user logged against the decision.
  if (accepted) {
    const auto it = meal_index_.find(f.meal_id.empty() ? joined.decision.logged.chosen : f.meal_id);
    step.eaten_meal = it != meal_index_.end() ? it->second : data_.chosen_meal(row);
    if (joined.logged_meal_id && *joined.logged_meal_id == catalog_.meals()[static_cast<std::size_t>(*step.eaten_meal)].id &&
        joined.logged_servings > 0) {
      step.portion = joined.logged_servings;
    }
  } else if (joined.logged_meal_id) {
    if (const auto it = meal_index_.find(*joined.logged_meal_id); it != meal_index_.end() && joined.logged_servings > 0) {
      step.eaten_meal = it->second;
      step.portion = joined.logged_servings;
    }
  }
  if (f.rating && *f.rating >= 1 && *f.rating <= 5) step.rating = f.rating;
  return static_cast<float>(logged_reward(catalog_, mealsim_, step).total);
}

void DatasetBuilder::add(std::span<const db::JoinedDecision> batch) {
  for (const db::JoinedDecision& joined : batch) {
    ++stats_.decisions;
    const db::Decision& decision = joined.decision;
    const auto waiting = waiting_for_.find(decision.event_id);
    const bool before_until = decision.logged.decided_at.value_or(db::Timestamp{}) < options_.until;
    if (!before_until && waiting == waiting_for_.end()) {
      ++stats_.after_until;  // nobody's next state, and no transition of its own
      continue;
    }
    const std::int32_t row = add_row(decision);
    if (waiting != waiting_for_.end()) {
      Transition& previous = data_.transitions[waiting->second];
      if (row >= 0) {
        previous.next_row = row;
        previous.discount = static_cast<float>(options_.gamma);
        ++stats_.with_next;
      } else {
        ++stats_.next_unusable;
      }
      waiting_for_.erase(waiting);
    }
    if (!before_until) {
      ++stats_.after_until;
      continue;
    }
    if (row < 0) continue;
    Transition t;
    t.row = row;
    bool client_reward = false;
    t.reward = reward_of(joined, row, t.accepted, client_reward);
    data_.transitions.push_back(t);
    ++stats_.transitions;
    stats_.reward_sum += t.reward;
    if (t.accepted) ++stats_.accepted;
    if (joined.feedback.events > 0) ++stats_.with_feedback;
    if (client_reward) ++stats_.client_rewards;
    if (joined.next_event_id) waiting_for_.emplace(*joined.next_event_id, data_.transitions.size() - 1);
  }
}

LoggedDataset DatasetBuilder::finish() && {
  // A next decision the scan never reached (outside its range): the transition ends there.
  stats_.next_unusable += static_cast<std::int64_t>(waiting_for_.size());
  waiting_for_.clear();
  return std::move(data_);
}

}  // namespace forkcast::learning
