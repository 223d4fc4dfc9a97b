#include "forkcast/db/repositories.hpp"

#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

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

}  // namespace

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
  return first_row(query(pool_, sql::kRunById, std::string(id)), run_of);
}

std::vector<TrainingRun> TrainingRunRepository::list(int limit) {
  if (limit < 1) throw std::invalid_argument("limit: " + std::to_string(limit) + " is below 1");
  return all_rows(query(pool_, sql::kRunsRecent, limit), run_of);
}

}  // namespace forkcast::db
