// Rows of the forkcast schema (db/migrations/0001_initial.sql, docs/database.md "Schema") as
// plain values. A New* struct is what a caller supplies; the plain struct is what the
// database returns (with generated ids and timestamps). Copy them freely.
//
// Units and formats:
// - Timestamp: microseconds since the Unix epoch, UTC (PostgreSQL's timestamptz resolution).
// - ids: users and decisions use UUIDs in their canonical lowercase text form; feedback,
//   meal_log and eval_reports use 64-bit integers; models and training runs use the
//   caller's names ("tabular-20240501", a run id).
// - meal ids are catalog ids (env/catalog.hpp), e.g. "pad_thai_shrimp".
// - JSON documents are nlohmann::json; objects where the schema says so.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forkcast::db {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

// Now, at the database's resolution.
Timestamp now_timestamp();

enum class Slot : std::uint8_t { breakfast, lunch, dinner, snack };
std::string_view slot_name(Slot slot) noexcept;
// Throws std::invalid_argument naming `field` and the value.
Slot slot_from_name(std::string_view name, std::string_view field = "slot");

// ---- users and their state ------------------------------------------------------------

struct NewUser {
  nlohmann::json profile = nlohmann::json::object();  // the observable profile (DESIGN §2)
  std::string token_sha256;  // token_sha256(token) of the user's bearer token, never the token
};

struct User {
  std::string id;
  nlohmann::json profile;
  std::string token_sha256;
  Timestamp created_at{};
  Timestamp updated_at{};
};

// Lowercase hex sha256 of a bearer token. Tokens are random (>= 128 bits), so an unsalted
// hash is enough to make a stolen table useless while keeping lookup by token one index probe.
std::string token_sha256(std::string_view token);

// One user's simulator-visible state for one calendar day: intake so far vs targets,
// hunger, long-term satisfaction, recent meals and cuisines with their decay, acceptance
// history. The document's layout belongs to the service; db stores it as one object.
struct UserState {
  std::string user_id;
  std::chrono::year_month_day day{};
  nlohmann::json state;
  std::int64_t version = 0;  // 1 on first write, +1 per write: optimistic concurrency
  Timestamp updated_at{};
};

// ---- decisions and feedback -----------------------------------------------------------

// Everything off-policy evaluation needs about one recommendation (policy/ope.hpp
// LoggedDecision): the candidates the policy chose among, its score and probability for
// each, the meal it chose, epsilon, the model version and the state it saw.
// Scores and features are stored as float32 (what the policy computes in); a value read
// back is the float32 nearest to the one written. Probabilities are stored exactly.
struct NewDecision {
  std::string user_id;
  std::optional<Timestamp> decided_at;  // empty: the database's now()
  Slot slot = Slot::breakfast;
  std::string model_version;
  std::string policy;                      // how probabilities arose, e.g. "epsilon_greedy"
  double epsilon = 0.0;                    // in [0, 1]
  std::vector<std::string> candidates;     // meal ids, non-empty, distinct, no control characters
  std::vector<double> scores;              // one per candidate (model scores, e.g. Q-values)
  std::vector<double> probabilities;       // one per candidate, each in [0, 1], sum 1 (+-1e-6)
  std::string chosen;                      // the meal acted on; one of candidates, probability > 0
  std::vector<std::string> ranked;         // meals returned in rank order (empty: {chosen})
  std::vector<double> state_features;      // the observation the policy saw
  std::vector<double> candidate_features;  // optional: candidates x candidate_feature_dim
  int candidate_feature_dim = 0;
  nlohmann::json context = nlohmann::json::object();  // anything else worth keeping
};

struct Decision {
  std::string event_id;
  NewDecision logged;  // decided_at always set
};

enum class Outcome : std::uint8_t { accepted, rejected, eaten, skipped };
std::string_view outcome_name(Outcome outcome) noexcept;
Outcome outcome_from_name(std::string_view name, std::string_view field = "outcome");

struct NewFeedback {
  std::string event_id;  // a decision's event id
  std::string meal_id;
  Outcome outcome = Outcome::accepted;
  std::optional<int> rating;             // 1..5
  std::optional<double> reward;          // finite
  std::string idempotency_key;           // 1..255 bytes, unique over all feedback
  std::optional<Timestamp> received_at;  // empty: the database's now()
};

struct Feedback {
  std::int64_t id = 0;
  NewFeedback recorded;  // received_at always set
};

// The answer to a feedback write: given only after the COMMIT that made it durable.
struct FeedbackResult {
  std::int64_t feedback_id = 0;
  bool duplicate = false;  // the key was already recorded (same content): nothing written
};

// ---- meals eaten ----------------------------------------------------------------------

struct NewMealLogEntry {
  std::string user_id;
  std::string meal_id;
  Slot slot = Slot::breakfast;
  Timestamp eaten_at{};
  double servings = 1.0;                       // > 0
  std::optional<std::string> event_id;         // the decision that suggested it, if any
  std::optional<std::string> idempotency_key;  // 1..255 bytes when given
};

struct MealLogEntry {
  std::int64_t id = 0;
  NewMealLogEntry logged;
  Timestamp logged_at{};
};

struct MealLogResult {
  MealLogEntry entry;
  bool duplicate = false;  // the idempotency key was already used: `entry` is the stored one
};

// ---- models, training runs, evaluation reports ---------------------------------------

// rejected: registered by the learner, refused by its gate (docs/learning-loop.md); never served
// unless promoted explicitly.
enum class ModelStatus : std::uint8_t { candidate, production, retired, rejected };
std::string_view model_status_name(ModelStatus status) noexcept;
ModelStatus model_status_from_name(std::string_view name, std::string_view field = "status");

struct NewModel {
  std::string version;  // [A-Za-z0-9][A-Za-z0-9._-]{0,127}
  std::string kind;     // "tabular", "dqn", ...
  std::string sha256;   // of the checkpoint file, lowercase hex
  std::string path;     // where the checkpoint lives
  nlohmann::json metrics = nlohmann::json::object();
};

struct Model {
  NewModel registered;
  ModelStatus status = ModelStatus::candidate;
  Timestamp created_at{};
  std::optional<Timestamp> promoted_at;  // last time it became production
  std::optional<Timestamp> retired_at;
};

enum class RunStatus : std::uint8_t { running, finished, failed, interrupted };
std::string_view run_status_name(RunStatus status) noexcept;
RunStatus run_status_from_name(std::string_view name, std::string_view field = "status");

struct NewTrainingRun {
  std::string id;     // the run id (runs/<id>/)
  std::string agent;  // "tabular", "dqn"
  std::string env;    // "mealsim", "taxi", ...
  nlohmann::json config = nlohmann::json::object();
  std::string git_revision;
};

struct TrainingRun {
  NewTrainingRun started;
  RunStatus status = RunStatus::running;
  nlohmann::json metrics = nlohmann::json::object();
  std::optional<std::string> checkpoint_path;
  std::optional<std::string> model_version;  // registered from this run, if any
  Timestamp started_at{};
  std::optional<Timestamp> finished_at;
};

struct NewEvalReport {
  std::string model_version;  // the evaluated policy: a model version or a baseline name
  std::string method;         // "simulator", "ips", "snips", "dm", "dr", ...
  nlohmann::json report = nlohmann::json::object();  // estimates, intervals, settings
};

struct EvalReport {
  std::int64_t id = 0;
  NewEvalReport saved;
  Timestamp created_at{};
};

}  // namespace forkcast::db
