#include "forkcast/db/repositories.hpp"

#include <cctype>
#include <cmath>
#include <unordered_map>

#include "feedback_batch.hpp"
#include "repositories/support.hpp"

namespace forkcast::db {

using nlohmann::json;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// What makes two writes of a key the same (same_content): event, meal, outcome, rating and
// reward, read from the five columns starting at `first`.
NewFeedback content_of(const pqxx::row& r, int first) {
  NewFeedback n;
  n.event_id = r[first].as<std::string>();
  n.meal_id = r[first + 1].as<std::string>();
  n.outcome = outcome_from_name(r[first + 2].as<std::string>());
  if (!r[first + 3].is_null()) n.rating = r[first + 3].as<int>();
  if (!r[first + 4].is_null()) n.reward = r[first + 4].as<double>();
  return n;
}

Feedback feedback_of(const pqxx::row& r) {
  Feedback f;
  f.id = r[0].as<std::int64_t>();
  f.recorded = content_of(r, 1);
  f.recorded.idempotency_key = r[6].as<std::string>();
  f.recorded.received_at = from_us(r[7].as<std::int64_t>());
  return f;
}

bool sqlstate_is(const pqxx::sql_error& e, std::string_view state) { return e.sqlstate() == state; }

bool same_content(const NewFeedback& a, const NewFeedback& b) {
  return lower(a.event_id) == lower(b.event_id) && a.meal_id == b.meal_id &&
         a.outcome == b.outcome && a.rating == b.rating && a.reward == b.reward;
}

std::exception_ptr key_conflict(const NewFeedback& f) {
  return std::make_exception_ptr(
      ConflictError("feedback.idempotency_key",
                    "idempotency_key " + shown(f.idempotency_key) +
                        " was already used for different feedback (event, meal, outcome, rating "
                        "or reward differ)"));
}

bool is_key_conflict(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ConflictError&) {
    return true;
  } catch (...) {
    return false;
  }
}

json batch_json(std::span<const NewFeedback> batch, std::span<const std::size_t> indices) {
  json rows = json::array();
  for (std::size_t ord = 0; ord < indices.size(); ++ord) {
    const NewFeedback& f = batch[indices[ord]];
    json row = {{"ord", ord},
                {"event_id", f.event_id},
                {"meal_id", f.meal_id},
                {"outcome", outcome_name(f.outcome)},
                {"idempotency_key", f.idempotency_key}};
    row["rating"] = f.rating ? json(*f.rating) : json();
    row["reward"] = f.reward ? json(*f.reward) : json();
    row["received_us"] = f.received_at ? json(to_us(*f.received_at)) : json();
    rows.push_back(std::move(row));
  }
  return rows;
}

// Fills out[indices[ord]] from the batch statement's rows.
void resolve_batch_rows(pqxx::transaction_base& tx, const pqxx::result& rows,
                        std::span<const NewFeedback> batch, std::span<const std::size_t> indices,
                        std::vector<detail::FeedbackOutcome>& out) {
  for (const auto& r : rows) {
    const std::size_t index = indices[r[0].as<std::size_t>()];
    const NewFeedback& mine = batch[index];
    if (!r[1].is_null()) {
      out[index] = FeedbackResult{r[1].as<std::int64_t>(), false};
      continue;
    }
    NewFeedback stored;
    std::int64_t stored_id = 0;
    if (!r[2].is_null()) {
      stored_id = r[2].as<std::int64_t>();
      stored = content_of(r, 3);
    } else {
      // Committed by a concurrent transaction after this statement's snapshot was taken.
      const auto again = tx.exec_prepared(sql::kFeedbackByKey.name, mine.idempotency_key);
      if (again.empty()) {
        throw DatabaseError("feedback " + shown(mine.idempotency_key) +
                            " was neither stored nor found");
      }
      const Feedback f = feedback_of(again[0]);
      stored_id = f.id;
      stored = f.recorded;
    }
    out[index] = same_content(stored, mine)
                     ? detail::FeedbackOutcome(FeedbackResult{stored_id, true})
                     : detail::FeedbackOutcome(key_conflict(mine));
  }
}

// Errors caused by one write's content rather than by the database or the connection.
bool is_write_error(const pqxx::sql_error& e) {
  const std::string& s = e.sqlstate();
  return s.rfind("23", 0) == 0 || s.rfind("22", 0) == 0;
}

std::exception_ptr write_error(const pqxx::sql_error& e, const NewFeedback& f) {
  if (sqlstate_is(e, "23503")) {
    return std::make_exception_ptr(NotFoundError(
        "decisions.event_id", "feedback for event " + f.event_id + ": no such decision"));
  }
  return std::make_exception_ptr(std::invalid_argument("feedback " + shown(f.idempotency_key) +
                                                       " refused by the database: " + e.what()));
}

}  // namespace

namespace detail {

void validate_feedback(const NewFeedback& f) {
  require_uuid(f.event_id, "event_id");
  require_text(f.meal_id, "meal_id", 200);
  require_text(f.idempotency_key, "idempotency_key", 255);
  if (static_cast<std::size_t>(f.outcome) > static_cast<std::size_t>(Outcome::skipped)) {
    throw std::invalid_argument("outcome: " + std::to_string(static_cast<int>(f.outcome)) +
                                " is not an outcome");
  }
  if (f.rating && (*f.rating < 1 || *f.rating > 5)) {
    throw std::invalid_argument("rating: " + std::to_string(*f.rating) + " is out of range 1..5");
  }
  if (f.reward && !(std::isfinite(*f.reward) && std::fabs(*f.reward) <= 1e12)) {
    throw std::invalid_argument("reward: " + std::to_string(*f.reward) +
                                " is not a finite number within +-1e12");
  }
}

std::vector<FeedbackOutcome> write_feedback_batch(pqxx::connection& connection,
                                                  std::span<const NewFeedback> batch) {
  std::vector<FeedbackOutcome> out(batch.size());
  // A key repeated inside the batch is sent once; its repeats are answered from the first.
  std::unordered_map<std::string_view, std::size_t> first_with_key;
  std::vector<std::size_t> sent;
  std::vector<std::pair<std::size_t, std::size_t>> repeats;  // (index, index of first)
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto [it, is_new] = first_with_key.emplace(batch[i].idempotency_key, i);
    if (is_new)
      sent.push_back(i);
    else
      repeats.emplace_back(i, it->second);
  }

  bool one_by_one = false;
  try {
    // One statement, run outside an explicit transaction block: PostgreSQL runs it as its own
    // transaction and answers only after that transaction's COMMIT (synchronous_commit = on),
    // so the batch costs one round trip instead of three (BEGIN, INSERT, COMMIT).
    pqxx::nontransaction tx(connection);
    const auto rows =
        tx.exec_prepared(sql::kFeedbackWriteBatch.name, batch_json(batch, sent).dump());
    resolve_batch_rows(tx, rows, batch, sent, out);
  } catch (const pqxx::sql_error& e) {
    if (!is_write_error(e)) throw;
    one_by_one = true;  // some write is bad (e.g. an unknown event): isolate it
  }
  if (one_by_one) {
    // Plain SAVEPOINT statements: libpqxx 6's subtransaction does not roll back to its
    // savepoint after a failed prepared statement, leaving the transaction aborted.
    pqxx::work tx(connection);
    for (const std::size_t index : sent) {
      const std::size_t single[] = {index};
      tx.exec0("SAVEPOINT feedback_write");
      try {
        const auto rows =
            tx.exec_prepared(sql::kFeedbackWriteBatch.name, batch_json(batch, single).dump());
        resolve_batch_rows(tx, rows, batch, single, out);
        tx.exec0("RELEASE SAVEPOINT feedback_write");
      } catch (const pqxx::sql_error& e) {
        if (!is_write_error(e)) throw;
        out[index] = write_error(e, batch[index]);
        tx.exec0("ROLLBACK TO SAVEPOINT feedback_write");
      }
    }
    tx.commit();
  }

  for (const auto& [index, first] : repeats) {
    if (const auto* result = std::get_if<FeedbackResult>(&out[first])) {
      out[index] = same_content(batch[first], batch[index])
                       ? FeedbackOutcome(FeedbackResult{result->feedback_id, true})
                       : FeedbackOutcome(key_conflict(batch[index]));
    } else if (is_key_conflict(std::get<std::exception_ptr>(out[first]))) {
      // The first copy differs from a row stored before this batch; this copy (a correct
      // retry, say) may be that row: compare it with what is stored, not with the first.
      pqxx::nontransaction tx(connection);
      const auto stored = tx.exec_prepared(sql::kFeedbackByKey.name, batch[index].idempotency_key);
      if (stored.empty()) {
        out[index] = out[first];
        continue;
      }
      const Feedback f = feedback_of(stored[0]);
      out[index] = same_content(f.recorded, batch[index]) ? FeedbackOutcome(FeedbackResult{f.id, true})
                                                          : FeedbackOutcome(key_conflict(batch[index]));
    } else {
      out[index] = out[first];
    }
  }
  return out;
}

}  // namespace detail

FeedbackResult FeedbackRepository::record(const NewFeedback& feedback) {
  detail::validate_feedback(feedback);
  const auto outcomes = pool_.internal().run([&](pqxx::connection& c) {
    return detail::write_feedback_batch(c, std::span<const NewFeedback>(&feedback, 1));
  });
  if (const auto* result = std::get_if<FeedbackResult>(&outcomes[0])) return *result;
  std::rethrow_exception(std::get<std::exception_ptr>(outcomes[0]));
}

std::optional<Feedback> FeedbackRepository::find_by_key(std::string_view idempotency_key) {
  return first_row(query(pool_, sql::kFeedbackByKey, std::string(idempotency_key)), feedback_of);
}

std::vector<Feedback> FeedbackRepository::list_for_event(std::string_view event_id) {
  if (!is_uuid(event_id)) return {};
  return all_rows(query(pool_, sql::kFeedbackForEvent, std::string(event_id)), feedback_of);
}

}  // namespace forkcast::db
