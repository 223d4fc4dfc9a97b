// One cycle of the learning loop (docs/learning-loop.md), the body of `forkcast learn`:
//
//   1. lock     the learner's advisory lock (another learner holding it: LearnerBusy);
//   2. range    [watermark, now - max(reward_wait, next_wait)): only decisions whose reward
//               window and next-state window have both closed, so a cycle's data never
//               change after it ran (now: the machine's clock, or the newest decision's
//               time with clock "log", for simulated traffic with its own clock);
//   3. join     LearningLog::scan over the window before `to` (window_s; it reaches behind
//               the watermark, so that evidence accumulates over cycles, and never covers
//               less than the new range) plus next_wait (next states), into a LoggedDataset
//               (logged_dataset.hpp); fewer than min_transitions new ones (since the
//               watermark): nothing is committed and the watermark waits for more;
//   4. split    users by a fixed hash: holdout_share of them for the gate, the rest to train;
//   5. learn    OfflineDqn (offline_dqn.hpp) from the production model's weights;
//   6. gate     apply_gate (gate.hpp) on the held-out users, the production model evaluated
//               beside it for the report;
//   7. write    <models_dir>/<version>/model.safetensors (atomic) and the cycle's report
//               <reports_dir>/<version>/report.{json,md,html} (cycle_report.hpp);
//   8. commit   LearningLog::commit_cycle: watermark, model (production or rejected),
//               reports and the cycle's row in one transaction. Every `forkcast serve` on the
//               database follows a promotion within its model check interval (LISTEN/NOTIFY).
//
// Crash safety: nothing reaches the database before step 8, and step 8 is one transaction,
// so a learner killed anywhere before it leaves no model and no moved watermark (at worst a
// model file nobody registered); the next run redoes the same range. The lock dies with the
// learner's session. A database that goes away mid-cycle fails the cycle with
// db::DatabaseUnavailable, and the next one starts over.
//
// Errors: LearnerBusy, CycleError (no production model to start from, a model the learner
// cannot train), db::DatabaseUnavailable / DatabaseError, std::invalid_argument for bad
// configuration (naming the key).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "forkcast/config/config.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/db/learning_log.hpp"
#include "forkcast/env/catalog.hpp"

namespace forkcast::learning {

// Another learner of the same name holds the lock.
class LearnerBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The cycle cannot run (what() says why and what to do).
class CycleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CycleOptions {
  config::Config config;             // learning, mealsim, exploration, database sections
  std::string database_url;          // for the lock's own connection
  std::string git_revision = "unknown";
  std::string command;               // the command line, for the report
  // Overrides the gate (an operator's explicit decision, recorded in the registry):
  // "promote" promotes whatever the gate says, "reject" never promotes; empty: the gate decides.
  std::string gate_override;
  // Progress of the long steps: stage ("scan", "train", "gate") and a fraction in [0, 1].
  std::function<void(std::string_view stage, double fraction, const nlohmann::json& detail)> progress;
};

struct CycleSummary {
  bool committed = false;            // false: nothing new to learn from, or lost the race
  db::CycleOutcome outcome = db::CycleOutcome::no_model;
  std::string reason;
  std::optional<std::string> model_version;
  std::filesystem::path model_path, report_dir;
  nlohmann::json stats = nlohmann::json::object();  // data, training, gate, timings
  double wall_s = 0;
};

CycleSummary run_cycle(db::Database& database, const env::Catalog& catalog, const CycleOptions& options);

}  // namespace forkcast::learning
