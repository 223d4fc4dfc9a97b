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

namespace forkcast::db {

std::string_view cycle_outcome_name(CycleOutcome outcome) noexcept {
  switch (outcome) {
    case CycleOutcome::promoted: return "promoted";
    case CycleOutcome::rejected: return "rejected";
    case CycleOutcome::no_model: break;
  }
  return "no_model";
}

namespace {

CycleOutcome cycle_outcome_of(std::string_view name) {
  if (name == "promoted") return CycleOutcome::promoted;
  if (name == "rejected") return CycleOutcome::rejected;
  if (name == "no_model") return CycleOutcome::no_model;
  throw DatabaseError("learner_cycles.outcome: unexpected '" + std::string(name) + "'");
}

CycleRecord cycle_of(const pqxx::row& r) {
  CycleRecord c;
  c.id = r[0].as<std::int64_t>();
  c.learner = r[1].as<std::string>();
  if (!r[2].is_null()) c.from = from_us(r[2].as<std::int64_t>());
  c.to = from_us(r[3].as<std::int64_t>());
  c.outcome = cycle_outcome_of(r[4].as<std::string>());
  c.model_version = optional_text(r[5]);
  c.reason = r[6].as<std::string>();
  c.stats = json_of(r[7]);
  c.finished_at = from_us(r[8].as<std::int64_t>());
  return c;
}

}  // namespace

std::optional<CycleRecord> LearningLog::commit_cycle(const CycleCommit& commit) {
  require_learner(commit.learner);
  if (commit.expected && commit.to < *commit.expected) {
    throw std::invalid_argument("watermark: the new mark is before the old one");
  }
  const bool needs_model = commit.outcome != CycleOutcome::no_model;
  if (needs_model != commit.model.has_value()) {
    throw std::invalid_argument(std::string("model: a cycle that ends ") + std::string(cycle_outcome_name(commit.outcome)) +
                                (needs_model ? " must register a model" : " registers none"));
  }
  require_text(commit.reason, "reason", 8192);
  require_object(commit.stats, "stats");
  const std::string stats = json_text(commit.stats, "stats");
  std::vector<std::string> reports;
  for (const NewEvalReport& report : commit.reports) {
    require_text(report.method, "reports.method", 64);
    require_object(report.report, "reports.report");
    reports.push_back(json_text(report.report, "reports.report"));
  }
  std::string metrics;
  if (commit.model) {
    validate_version(commit.model->version);
    require_text(commit.model->kind, "kind", 64);
    require_hex64(commit.model->sha256, "sha256");
    require_text(commit.model->path, "path", 4096);
    require_object(commit.model->metrics, "metrics");
    metrics = json_text(commit.model->metrics, "metrics");
  }
  try {
    return in_transaction(pool_, [&](pqxx::work& tx) -> std::optional<CycleRecord> {
      // The watermark first: a cycle that lost the race commits nothing else either.
      const bool moved = commit.expected
                             ? !tx.exec_prepared(sql::kWatermarkAdvance.name, commit.learner, to_us(*commit.expected),
                                                 to_us(commit.to))
                                    .empty()
                             : !tx.exec_prepared(sql::kWatermarkInsert.name, commit.learner, to_us(commit.to)).empty();
      if (!moved) return std::nullopt;  // nothing was written: committing the empty transaction is harmless
      std::optional<std::string> version;
      if (commit.model) {
        const NewModel& m = *commit.model;
        version = m.version;
        tx.exec_prepared(sql::kModelRegistryLock.name, kModelRegistryLockKey);
        tx.exec_prepared(sql::kModelInsert.name, m.version, m.kind, m.sha256, m.path, metrics);
        for (std::size_t i = 0; i < reports.size(); ++i) {
          tx.exec_prepared(sql::kReportInsert.name, m.version, commit.reports[i].method, reports[i]);
        }
        if (commit.outcome == CycleOutcome::promoted) {
          tx.exec_prepared(sql::kModelRetireProduction.name, m.version);  // first: the index is checked per row
          tx.exec_prepared(sql::kModelSetProduction.name, m.version);
        } else {
          tx.exec_prepared(sql::kModelReject.name, m.version);
        }
      }
      const auto id = tx.exec_prepared1(sql::kCycleInsert.name, commit.learner, to_us(commit.expected), to_us(commit.to),
                                        std::string(cycle_outcome_name(commit.outcome)), version, commit.reason, stats)[0]
                          .as<std::int64_t>();
      CycleRecord record;
      record.id = id;
      record.learner = commit.learner;
      record.from = commit.expected;
      record.to = commit.to;
      record.outcome = commit.outcome;
      record.model_version = version;
      record.reason = commit.reason;
      record.stats = commit.stats;
      record.finished_at = now_timestamp();
      return record;
    });
  } catch (const ConflictError&) {
    throw ConflictError("models.version", "model version " + shown(commit.model ? commit.model->version : "") +
                                              " is already registered");
  }
}

std::optional<Timestamp> LearningLog::newest_decision() {
  const pqxx::result r = query(pool_, sql::kNewestDecision);
  if (r.empty() || r[0][0].is_null()) return std::nullopt;
  return from_us(r[0][0].as<std::int64_t>());
}

std::vector<CycleRecord> LearningLog::cycles(std::string_view learner) {
  require_learner(learner);
  return all_rows(query(pool_, sql::kCyclesOfLearner, std::string(learner)), cycle_of);
}

}  // namespace forkcast::db
