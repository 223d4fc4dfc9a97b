#include "forkcast/db/repositories.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "feedback_batch.hpp"
#include "pg_binary.hpp"
#include "statements.hpp"

namespace forkcast::db {
namespace {

using nlohmann::json;

// ---- input checks ---------------------------------------------------------------------

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      extra = 3;
    } else {
      return false;
    }
    if (i + extra >= s.size() && extra > 0) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    // The second byte's range excludes overlong forms (E0, F0), UTF-16 surrogates (ED) and
    // code points above U+10FFFF (F4): what PostgreSQL and nlohmann::json both refuse.
    const auto second = extra > 0 ? static_cast<unsigned char>(s[i + 1]) : 0;
    if ((c == 0xE0 && second < 0xA0) || (c == 0xED && second > 0x9F) || (c == 0xF0 && second < 0x90) ||
        (c == 0xF4 && second > 0x8F)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string shown(std::string_view value) {
  constexpr std::size_t kMax = 80;
  std::string out = "\"";
  for (char c : value.substr(0, kMax))
    out += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?';
  return out + (value.size() > kMax ? "...\"" : "\"");
}

// PostgreSQL text holds valid UTF-8 without NUL bytes.
void require_text(std::string_view value, std::string_view field, std::size_t max_bytes,
                  bool allow_empty = false) {
  if (value.empty() && !allow_empty)
    throw std::invalid_argument(std::string(field) + ": must not be empty");
  if (value.size() > max_bytes) {
    throw std::invalid_argument(std::string(field) + ": " + shown(value) + " is longer than " +
                                std::to_string(max_bytes) + " bytes");
  }
  if (value.find('\0') != std::string_view::npos || !valid_utf8(value)) {
    throw std::invalid_argument(std::string(field) + ": " + shown(value) +
                                " is not valid UTF-8 text");
  }
}

void require_uuid(std::string_view value, std::string_view field) {
  if (!is_uuid(value))
    throw std::invalid_argument(std::string(field) + ": " + shown(value) + " is not a UUID");
}

void require_hex64(std::string_view value, std::string_view field) {
  const bool ok = value.size() == 64 && std::all_of(value.begin(), value.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (!ok)
    throw std::invalid_argument(std::string(field) + ": " + shown(value) +
                                " is not 64 lowercase hex digits");
}

void require_object(const json& value, std::string_view field) {
  if (!value.is_object()) {
    throw std::invalid_argument(std::string(field) + ": must be a JSON object, not " +
                                value.type_name());
  }
}

// JSON text for a jsonb parameter; nlohmann refuses to serialise invalid UTF-8.
std::string json_text(const json& value, std::string_view field) {
  try {
    return value.dump();
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string(field) + ": " + e.what());
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// ---- conversions ----------------------------------------------------------------------

Timestamp from_us(std::int64_t us) { return Timestamp(std::chrono::microseconds(us)); }
std::int64_t to_us(Timestamp t) { return t.time_since_epoch().count(); }
std::optional<std::int64_t> to_us(const std::optional<Timestamp>& t) {
  if (!t) return std::nullopt;
  return to_us(*t);
}
std::optional<Timestamp> optional_time(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return from_us(f.as<std::int64_t>());
}
std::optional<std::string> optional_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}
json json_of(const pqxx::field& f) { return f.is_null() ? json() : json::parse(f.c_str()); }

std::string day_text(std::chrono::year_month_day day, std::string_view field) {
  if (!day.ok() || static_cast<int>(day.year()) < 1 || static_cast<int>(day.year()) > 9999) {
    throw std::invalid_argument(std::string(field) +
                                ": not a valid calendar date in years 1..9999");
  }
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(day.year()),
                static_cast<unsigned>(day.month()), static_cast<unsigned>(day.day()));
  return buffer;
}

std::chrono::year_month_day parse_day(const std::string& text) {
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  if (std::sscanf(text.c_str(), "%d-%u-%u", &y, &m, &d) != 3) {
    throw DatabaseError("unexpected date from the database: " + text);
  }
  return std::chrono::year_month_day{std::chrono::year{y}, std::chrono::month{m},
                                     std::chrono::day{d}};
}

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

// ---- rows -----------------------------------------------------------------------------

User user_of(const pqxx::row& r) {
  User u;
  u.id = r[0].as<std::string>();
  u.profile = json_of(r[1]);
  u.token_sha256 = r[2].as<std::string>();
  u.created_at = from_us(r[3].as<std::int64_t>());
  u.updated_at = from_us(r[4].as<std::int64_t>());
  return u;
}

UserState state_of(const pqxx::row& r) {
  UserState s;
  s.user_id = r[0].as<std::string>();
  s.day = parse_day(r[1].as<std::string>());
  s.state = json_of(r[2]);
  s.version = r[3].as<std::int64_t>();
  s.updated_at = from_us(r[4].as<std::int64_t>());
  return s;
}

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

Feedback feedback_of(const pqxx::row& r) {
  Feedback f;
  f.id = r[0].as<std::int64_t>();
  auto& n = f.recorded;
  n.event_id = r[1].as<std::string>();
  n.meal_id = r[2].as<std::string>();
  n.outcome = outcome_from_name(r[3].as<std::string>());
  if (!r[4].is_null()) n.rating = r[4].as<int>();
  if (!r[5].is_null()) n.reward = r[5].as<double>();
  n.idempotency_key = r[6].as<std::string>();
  n.received_at = from_us(r[7].as<std::int64_t>());
  return f;
}

MealLogEntry meal_log_of(const pqxx::row& r) {
  MealLogEntry e;
  e.id = r[0].as<std::int64_t>();
  auto& l = e.logged;
  l.user_id = r[1].as<std::string>();
  l.meal_id = r[2].as<std::string>();
  l.slot = slot_from_name(r[3].as<std::string>());
  l.eaten_at = from_us(r[4].as<std::int64_t>());
  l.servings = r[5].as<double>();
  l.event_id = optional_text(r[6]);
  l.idempotency_key = optional_text(r[7]);
  e.logged_at = from_us(r[8].as<std::int64_t>());
  return e;
}

Model model_of(const pqxx::row& r) {
  Model m;
  m.registered.version = r[0].as<std::string>();
  m.registered.kind = r[1].as<std::string>();
  m.registered.sha256 = r[2].as<std::string>();
  m.registered.path = r[3].as<std::string>();
  m.registered.metrics = json_of(r[4]);
  m.status = model_status_from_name(r[5].as<std::string>());
  m.created_at = from_us(r[6].as<std::int64_t>());
  m.promoted_at = optional_time(r[7]);
  m.retired_at = optional_time(r[8]);
  return m;
}

TrainingRun run_of(const pqxx::row& r) {
  TrainingRun t;
  t.started.id = r[0].as<std::string>();
  t.started.agent = r[1].as<std::string>();
  t.started.env = r[2].as<std::string>();
  t.status = run_status_from_name(r[3].as<std::string>());
  t.started.config = json_of(r[4]);
  t.metrics = json_of(r[5]);
  t.started.git_revision = r[6].as<std::string>();
  t.checkpoint_path = optional_text(r[7]);
  t.model_version = optional_text(r[8]);
  t.started_at = from_us(r[9].as<std::int64_t>());
  t.finished_at = optional_time(r[10]);
  return t;
}

EvalReport report_of(const pqxx::row& r) {
  EvalReport e;
  e.id = r[0].as<std::int64_t>();
  e.saved.model_version = r[1].as<std::string>();
  e.saved.method = r[2].as<std::string>();
  e.saved.report = json_of(r[3]);
  e.created_at = from_us(r[4].as<std::int64_t>());
  return e;
}

// Runs `fn(transaction)` in one read-write transaction on a pooled connection and commits.
template <typename Fn>
auto in_transaction(ConnectionPool& pool, Fn&& fn) {
  return pool.run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto result = fn(tx);
    tx.commit();
    return result;
  });
}

// A read: one statement, no explicit transaction (autocommit), one round trip.
template <typename... Args>
pqxx::result query(ConnectionPool& pool, const sql::Statement& statement, Args&&... args) {
  return pool.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared(statement.name, std::forward<Args>(args)...);
  });
}

bool sqlstate_is(const pqxx::sql_error& e, std::string_view state) { return e.sqlstate() == state; }

// ---- feedback -------------------------------------------------------------------------

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
      stored.event_id = r[3].as<std::string>();
      stored.meal_id = r[4].as<std::string>();
      stored.outcome = outcome_from_name(r[5].as<std::string>());
      if (!r[6].is_null()) stored.rating = r[6].as<int>();
      if (!r[7].is_null()) stored.reward = r[7].as<double>();
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

// ---- shared ---------------------------------------------------------------------------

std::vector<PreparedStatement> repository_statements() {
  std::vector<PreparedStatement> out;
  out.reserve(static_cast<std::size_t>(sql::kAllCount));
  for (int i = 0; i < sql::kAllCount; ++i) out.push_back({sql::kAll[i]->name, sql::kAll[i]->text});
  return out;
}

bool is_uuid(std::string_view text) noexcept {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
      return false;
    }
  }
  return true;
}

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

// ---- users ----------------------------------------------------------------------------

User UserRepository::create(const NewUser& user) {
  require_object(user.profile, "profile");
  require_hex64(user.token_sha256, "token_sha256");
  const std::string profile = json_text(user.profile, "profile");
  try {
    return in_transaction(pool_, [&](pqxx::work& tx) {
      return user_of(tx.exec_prepared1(sql::kUserInsert.name, profile, user.token_sha256));
    });
  } catch (const ConflictError&) {
    throw ConflictError("users.token_sha256", "another user already has this token hash");
  }
}

std::optional<User> UserRepository::find(std::string_view id) {
  if (!is_uuid(id)) return std::nullopt;
  const auto rows = query(pool_, sql::kUserById, std::string(id));
  if (rows.empty()) return std::nullopt;
  return user_of(rows[0]);
}

std::optional<User> UserRepository::find_by_token_sha256(std::string_view token_sha256) {
  const auto rows = query(pool_, sql::kUserByToken, std::string(token_sha256));
  if (rows.empty()) return std::nullopt;
  return user_of(rows[0]);
}

User UserRepository::update_profile(std::string_view id, const nlohmann::json& profile) {
  require_object(profile, "profile");
  const std::string text = json_text(profile, "profile");
  const auto missing = [&] { return NotFoundError("users.id", "no user " + shown(id)); };
  if (!is_uuid(id)) throw missing();
  const auto rows = in_transaction(pool_, [&](pqxx::work& tx) {
    return tx.exec_prepared(sql::kUserUpdateProfile.name, std::string(id), text);
  });
  if (rows.empty()) throw missing();
  return user_of(rows[0]);
}

// ---- user_state -----------------------------------------------------------------------

UserState UserStateRepository::put(std::string_view user_id, std::chrono::year_month_day day,
                                   const nlohmann::json& state,
                                   std::optional<std::int64_t> expected_version) {
  require_uuid(user_id, "user_id");
  const std::string day_string = day_text(day, "day");
  require_object(state, "state");
  const std::string text = json_text(state, "state");
  if (expected_version && *expected_version < 0) {
    throw std::invalid_argument("expected_version: " + std::to_string(*expected_version) +
                                " is negative");
  }
  const std::string user(user_id);
  std::optional<pqxx::result> rows;
  try {
    rows = in_transaction(pool_, [&](pqxx::work& tx) {
      if (!expected_version)
        return tx.exec_prepared(sql::kStateUpsert.name, user, day_string, text);
      if (*expected_version == 0)
        return tx.exec_prepared(sql::kStateInsertNew.name, user, day_string, text);
      return tx.exec_prepared(sql::kStateUpdateVersion.name, user, day_string, text,
                              *expected_version);
    });
  } catch (const NotFoundError&) {
    throw NotFoundError("users.id", "no user " + shown(user_id));
  }
  if (rows->empty()) {
    if (!query(pool_, sql::kUserExists, user).empty()) {
      throw ConflictError("user_state.version", "the state of user " + user + " for " + day_string +
                                                    " is not at version " +
                                                    std::to_string(*expected_version) +
                                                    " (another write came first: read it again)");
    }
    throw NotFoundError("users.id", "no user " + shown(user_id));
  }
  return state_of((*rows)[0]);
}

std::optional<UserState> UserStateRepository::get(std::string_view user_id,
                                                  std::chrono::year_month_day day) {
  if (!is_uuid(user_id)) return std::nullopt;
  const auto rows = query(pool_, sql::kStateGet, std::string(user_id), day_text(day, "day"));
  if (rows.empty()) return std::nullopt;
  return state_of(rows[0]);
}

std::optional<UserState> UserStateRepository::latest(std::string_view user_id) {
  if (!is_uuid(user_id)) return std::nullopt;
  const auto rows = query(pool_, sql::kStateLatest, std::string(user_id));
  if (rows.empty()) return std::nullopt;
  return state_of(rows[0]);
}

// ---- decisions ------------------------------------------------------------------------

namespace {

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
  const auto rows = query(pool_, sql::kDecisionById, std::string(event_id));
  if (rows.empty()) return std::nullopt;
  return decision_of(rows[0]);
}

std::int64_t DecisionRepository::count_for_user(std::string_view user_id) {
  if (!is_uuid(user_id)) return 0;
  return query(pool_, sql::kDecisionCountForUser, std::string(user_id))[0][0].as<std::int64_t>();
}

std::vector<Decision> DecisionRepository::list_for_user(std::string_view user_id, int limit) {
  if (!is_uuid(user_id)) return {};
  if (limit < 1) throw std::invalid_argument("limit: " + std::to_string(limit) + " is below 1");
  std::vector<Decision> out;
  for (const auto& r : query(pool_, sql::kDecisionsForUser, std::string(user_id), limit))
    out.push_back(decision_of(r));
  return out;
}

std::vector<Decision> DecisionRepository::list_between(Timestamp from, Timestamp to, int limit) {
  if (limit < 1) throw std::invalid_argument("limit: " + std::to_string(limit) + " is below 1");
  std::vector<Decision> out;
  for (const auto& r : query(pool_, sql::kDecisionsBetween, to_us(from), to_us(to), limit)) {
    out.push_back(decision_of(r));
  }
  return out;
}

// ---- feedback -------------------------------------------------------------------------

FeedbackResult FeedbackRepository::record(const NewFeedback& feedback) {
  detail::validate_feedback(feedback);
  const auto outcomes = pool_.run([&](pqxx::connection& c) {
    return detail::write_feedback_batch(c, std::span<const NewFeedback>(&feedback, 1));
  });
  if (const auto* result = std::get_if<FeedbackResult>(&outcomes[0])) return *result;
  std::rethrow_exception(std::get<std::exception_ptr>(outcomes[0]));
}

std::optional<Feedback> FeedbackRepository::find_by_key(std::string_view idempotency_key) {
  const auto rows = query(pool_, sql::kFeedbackByKey, std::string(idempotency_key));
  if (rows.empty()) return std::nullopt;
  return feedback_of(rows[0]);
}

std::vector<Feedback> FeedbackRepository::list_for_event(std::string_view event_id) {
  if (!is_uuid(event_id)) return {};
  std::vector<Feedback> out;
  for (const auto& r : query(pool_, sql::kFeedbackForEvent, std::string(event_id)))
    out.push_back(feedback_of(r));
  return out;
}

// ---- meal_log -------------------------------------------------------------------------

MealLogResult MealLogRepository::add(const NewMealLogEntry& entry) {
  require_uuid(entry.user_id, "user_id");
  require_text(entry.meal_id, "meal_id", 200);
  if (!(entry.servings > 0.0 && entry.servings <= 100.0)) {
    throw std::invalid_argument("servings: " + std::to_string(entry.servings) +
                                " is outside (0, 100]");
  }
  if (entry.event_id) require_uuid(*entry.event_id, "event_id");
  if (entry.idempotency_key) require_text(*entry.idempotency_key, "idempotency_key", 255);
  pqxx::result rows;
  bool duplicate = false;
  try {
    rows = in_transaction(pool_, [&](pqxx::work& tx) {
      auto inserted = tx.exec_prepared(sql::kMealLogInsert.name, entry.user_id, entry.meal_id,
                                       std::string(slot_name(entry.slot)), to_us(entry.eaten_at),
                                       entry.servings, entry.event_id, entry.idempotency_key);
      duplicate = inserted.empty() && entry.idempotency_key;
      if (duplicate) return tx.exec_prepared(sql::kMealLogByKey.name, *entry.idempotency_key);
      return inserted;
    });
  } catch (const NotFoundError&) {
    throw NotFoundError(
        entry.event_id ? "users.id or decisions.event_id" : "users.id",
        "no user " + shown(entry.user_id) +
            (entry.event_id ? " or no decision " + shown(*entry.event_id) : std::string()));
  }
  if (rows.empty()) throw DatabaseError("meal log entry was neither stored nor found");
  MealLogResult result;
  result.entry = meal_log_of(rows[0]);
  result.duplicate = duplicate;
  return result;
}

std::vector<MealLogEntry> MealLogRepository::list_for_user(std::string_view user_id, Timestamp from,
                                                           Timestamp to) {
  if (!is_uuid(user_id)) return {};
  std::vector<MealLogEntry> out;
  for (const auto& r :
       query(pool_, sql::kMealLogForUser, std::string(user_id), to_us(from), to_us(to))) {
    out.push_back(meal_log_of(r));
  }
  return out;
}

// ---- models ---------------------------------------------------------------------------

namespace {

// Any fixed number: the advisory lock key of the model registry.
constexpr std::int64_t kModelRegistryLockKey = 0x666f726b63617374;  // "forkcast"

void validate_version(std::string_view version) {
  const bool ok =
      !version.empty() && version.size() <= 128 &&
      std::isalnum(static_cast<unsigned char>(version[0])) &&
      std::all_of(version.begin(), version.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
      });
  if (!ok) {
    throw std::invalid_argument(
        "version: " + shown(version) +
        " must be 1..128 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
}

}  // namespace

Model ModelRepository::register_model(const NewModel& model) {
  validate_version(model.version);
  require_text(model.kind, "kind", 64);
  require_hex64(model.sha256, "sha256");
  require_text(model.path, "path", 4096);
  require_object(model.metrics, "metrics");
  const std::string metrics = json_text(model.metrics, "metrics");
  try {
    return in_transaction(pool_, [&](pqxx::work& tx) {
      return model_of(tx.exec_prepared1(sql::kModelInsert.name, model.version, model.kind,
                                        model.sha256, model.path, metrics));
    });
  } catch (const ConflictError&) {
    throw ConflictError("models.version",
                        "model version " + shown(model.version) + " is already registered");
  }
}

std::optional<Model> ModelRepository::find(std::string_view version) {
  const auto rows = query(pool_, sql::kModelByVersion, std::string(version));
  if (rows.empty()) return std::nullopt;
  return model_of(rows[0]);
}

std::vector<Model> ModelRepository::list() {
  std::vector<Model> out;
  for (const auto& r : query(pool_, sql::kModelsAll)) out.push_back(model_of(r));
  return out;
}

std::optional<Model> ModelRepository::production() {
  const auto rows = query(pool_, sql::kModelProduction);
  if (rows.empty()) return std::nullopt;
  return model_of(rows[0]);
}

Model ModelRepository::promote(std::string_view version) {
  const std::string v(version);
  const auto rows = in_transaction(pool_, [&](pqxx::work& tx) {
    tx.exec_prepared(sql::kModelRegistryLock.name, kModelRegistryLockKey);
    // An unknown version must not retire the production model on its way to failing.
    auto target = tx.exec_prepared(sql::kModelByVersion.name, v);
    if (target.empty()) return target;
    // Retire first: the single-production index is checked row by row, not at commit.
    tx.exec_prepared(sql::kModelRetireProduction.name, v);
    return tx.exec_prepared(sql::kModelSetProduction.name, v);
  });
  if (rows.empty()) throw NotFoundError("models.version", "no model version " + shown(version));
  return model_of(rows[0]);
}

Model ModelRepository::retire(std::string_view version) {
  const std::string v(version);
  const auto rows = in_transaction(pool_, [&](pqxx::work& tx) {
    tx.exec_prepared(sql::kModelRegistryLock.name, kModelRegistryLockKey);
    return tx.exec_prepared(sql::kModelRetire.name, v);
  });
  if (rows.empty()) throw NotFoundError("models.version", "no model version " + shown(version));
  return model_of(rows[0]);
}

// ---- training_runs --------------------------------------------------------------------

TrainingRun TrainingRunRepository::start(const NewTrainingRun& run) {
  require_text(run.id, "id", 200);
  require_text(run.agent, "agent", 64);
  require_text(run.env, "env", 64);
  require_text(run.git_revision, "git_revision", 64, true);
  require_object(run.config, "config");
  const std::string config = json_text(run.config, "config");
  try {
    return in_transaction(pool_, [&](pqxx::work& tx) {
      return run_of(tx.exec_prepared1(sql::kRunInsert.name, run.id, run.agent, run.env, config,
                                      run.git_revision));
    });
  } catch (const ConflictError&) {
    throw ConflictError("training_runs.id",
                        "training run " + shown(run.id) + " is already recorded");
  }
}

TrainingRun TrainingRunRepository::finish(std::string_view id, RunStatus status,
                                          const nlohmann::json& metrics,
                                          std::optional<std::string> checkpoint_path,
                                          std::optional<std::string> model_version) {
  if (status == RunStatus::running)
    throw std::invalid_argument("status: a finished run cannot be \"running\"");
  require_object(metrics, "metrics");
  if (checkpoint_path) require_text(*checkpoint_path, "checkpoint_path", 4096);
  if (model_version) validate_version(*model_version);
  const std::string text = json_text(metrics, "metrics");
  pqxx::result rows;
  try {
    rows = in_transaction(pool_, [&](pqxx::work& tx) {
      return tx.exec_prepared(sql::kRunFinish.name, std::string(id),
                              std::string(run_status_name(status)), text, checkpoint_path,
                              model_version);
    });
  } catch (const NotFoundError&) {
    throw NotFoundError("models.version", "no model version " + shown(model_version.value_or("")));
  }
  if (rows.empty()) throw NotFoundError("training_runs.id", "no training run " + shown(id));
  return run_of(rows[0]);
}

std::optional<TrainingRun> TrainingRunRepository::find(std::string_view id) {
  const auto rows = query(pool_, sql::kRunById, std::string(id));
  if (rows.empty()) return std::nullopt;
  return run_of(rows[0]);
}

std::vector<TrainingRun> TrainingRunRepository::list(int limit) {
  if (limit < 1) throw std::invalid_argument("limit: " + std::to_string(limit) + " is below 1");
  std::vector<TrainingRun> out;
  for (const auto& r : query(pool_, sql::kRunsRecent, limit)) out.push_back(run_of(r));
  return out;
}

// ---- eval_reports ---------------------------------------------------------------------

EvalReport EvalReportRepository::add(const NewEvalReport& report) {
  require_text(report.model_version, "model_version", 200);
  require_text(report.method, "method", 64);
  require_object(report.report, "report");
  const std::string text = json_text(report.report, "report");
  return in_transaction(pool_, [&](pqxx::work& tx) {
    return report_of(
        tx.exec_prepared1(sql::kReportInsert.name, report.model_version, report.method, text));
  });
}

std::optional<EvalReport> EvalReportRepository::find(std::int64_t id) {
  const auto rows = query(pool_, sql::kReportById, id);
  if (rows.empty()) return std::nullopt;
  return report_of(rows[0]);
}

std::vector<EvalReport> EvalReportRepository::list_for_model(std::string_view model_version) {
  std::vector<EvalReport> out;
  for (const auto& r : query(pool_, sql::kReportsForModel, std::string(model_version)))
    out.push_back(report_of(r));
  return out;
}

}  // namespace forkcast::db
