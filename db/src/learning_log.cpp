#include "forkcast/db/learning_log.hpp"

#include <pqxx/pqxx>
#include <regex>
#include <stdexcept>
#include <vector>

#include "connection_pool.hpp"
#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

constexpr const char* kCursorName = "forkcast_learning_scan";

void require_learner(std::string_view learner) {
  static const std::regex valid("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  if (!std::regex_match(learner.begin(), learner.end(), valid)) {
    throw std::invalid_argument("learner: " + shown(learner) +
                                " must be 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
}

void check_range(const ScanRange& range) {
  if (range.to <= range.from) throw std::invalid_argument("scan range: 'to' must be after 'from'");
  if (range.reward_wait.count() < 0) throw std::invalid_argument("reward_wait: must not be negative");
  if (range.next_wait.count() < 0) throw std::invalid_argument("next_wait: must not be negative");
  if (range.batch_size < 1 || range.batch_size > 100'000) {
    throw std::invalid_argument("batch_size: " + std::to_string(range.batch_size) + " is outside 1..100000");
  }
}

JoinedDecision joined_of(const pqxx::row& r) {
  JoinedDecision j;
  j.decision = decision_of(r);
  FeedbackSummary& f = j.feedback;
  f.events = r[16].as<int>();
  f.accepted = r[17].as<bool>();
  f.eaten = r[18].as<bool>();
  f.rejected = r[19].as<bool>();
  f.skipped = r[20].as<bool>();
  if (!r[21].is_null()) f.rating = r[21].as<int>();
  if (!r[22].is_null()) f.reward = r[22].as<double>();
  if (!r[23].is_null()) f.meal_id = r[23].as<std::string>();
  if (!r[24].is_null()) {
    j.next_event_id = r[24].as<std::string>();
    j.next_decided_at = from_us(r[25].as<std::int64_t>());
  }
  if (!r[26].is_null()) {
    j.logged_meal_id = r[26].as<std::string>();
    j.logged_servings = r[27].as<double>();
  }
  return j;
}

}  // namespace

ScanStats LearningLog::scan(const ScanRange& range, const std::function<void(std::span<const JoinedDecision>)>& sink) {
  check_range(range);
  ScanStats stats;
  std::vector<JoinedDecision> batch;
  batch.reserve(static_cast<std::size_t>(range.batch_size));
  pool_.internal().run([&](pqxx::connection& c) {
    // One snapshot for the whole scan; read-only so that it can never block a writer.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    tx.exec_prepared(sql::kLearningScanSettings.name, std::to_string(to_us(range.from)), std::to_string(to_us(range.to)),
                     std::to_string(range.reward_wait.count()), std::to_string(range.next_wait.count()));
    {
      // libpqxx DECLAREs the cursor and FETCHes `batch_size` rows per read; the cursor must
      // go before its transaction ends.
      pqxx::icursorstream cursor(tx, sql::kLearningScanQuery, kCursorName, range.batch_size);
      pqxx::result rows;
      while (cursor >> rows) {
        if (rows.empty()) break;
        batch.clear();
        for (const auto& row : rows) batch.push_back(joined_of(row));
        for (const auto& j : batch) {
          ++stats.decisions;
          if (j.feedback.events > 0) ++stats.with_feedback;
          if (j.next_event_id) ++stats.with_next;
        }
        ++stats.batches;
        sink(batch);
      }
    }
    tx.commit();
    return 0;
  });
  return stats;
}

std::optional<Timestamp> LearningLog::watermark(std::string_view learner) {
  require_learner(learner);
  const auto rows = query(pool_, sql::kWatermarkGet, std::string(learner));
  if (rows.empty()) return std::nullopt;
  return from_us(rows[0][0].as<std::int64_t>());
}

bool LearningLog::advance_watermark(std::string_view learner, std::optional<Timestamp> expected, Timestamp to) {
  require_learner(learner);
  if (expected && to < *expected) throw std::invalid_argument("watermark: the new mark is before the old one");
  const std::string name(learner);
  return in_transaction(pool_, [&](pqxx::work& tx) {
    if (!expected) return !tx.exec_prepared(sql::kWatermarkInsert.name, name, to_us(to)).empty();
    return !tx.exec_prepared(sql::kWatermarkAdvance.name, name, to_us(*expected), to_us(to)).empty();
  });
}

// ---- the learner lock ------------------------------------------------------------------

struct LearnerLock::Session {
  std::unique_ptr<pqxx::connection> connection;
};

LearnerLock::LearnerLock(std::unique_ptr<Session> session) : session_(std::move(session)) {}
LearnerLock::LearnerLock(LearnerLock&&) noexcept = default;
LearnerLock::~LearnerLock() = default;  // closing the connection ends the session and its lock

std::optional<LearnerLock> LearnerLock::try_acquire(const std::string& url, std::string_view learner) {
  require_learner(learner);
  if (url.empty()) throw std::invalid_argument("url: must not be empty");
  auto session = std::make_unique<Session>();
  try {
    session->connection = std::make_unique<pqxx::connection>(detail::connection_string(url, 2'000, "forkcast-learner"));
    session->connection->prepare(sql::kLearnerTryLock.name, sql::kLearnerTryLock.text);
    pqxx::nontransaction tx(*session->connection);
    const bool taken = tx.exec_prepared1(sql::kLearnerTryLock.name, std::string(learner))[0].as<bool>();
    if (!taken) return std::nullopt;
  } catch (const pqxx::broken_connection& e) {
    throw DatabaseUnavailable(std::string("cannot reach the database for the learner lock: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    throw DatabaseError(std::string("learner lock: ") + e.what());
  }
  return LearnerLock(std::move(session));
}

bool LearnerLock::held() const {
  if (!session_ || !session_->connection || !session_->connection->is_open()) return false;
  try {
    pqxx::nontransaction tx(*session_->connection);
    tx.exec("SELECT 1");
    return true;
  } catch (const std::exception&) {
    // Drop the connection: libpqxx would otherwise reconnect on the next use, and a new
    // session does not hold the lock.
    session_->connection.reset();
    return false;
  }
}

}  // namespace forkcast::db
