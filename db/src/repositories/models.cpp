#include "forkcast/db/repositories.hpp"

#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

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
  return first_row(query(pool_, sql::kModelByVersion, std::string(version)), model_of);
}

std::vector<Model> ModelRepository::list() {
  return all_rows(query(pool_, sql::kModelsAll), model_of);
}

std::optional<Model> ModelRepository::production() {
  return first_row(query(pool_, sql::kModelProduction), model_of);
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

}  // namespace forkcast::db
