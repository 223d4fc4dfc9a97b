#include "forkcast/db/repositories.hpp"

#include "repositories/support.hpp"

namespace forkcast::db {

namespace {

EvalReport report_of(const pqxx::row& r) {
  EvalReport e;
  e.id = r[0].as<std::int64_t>();
  e.saved.model_version = r[1].as<std::string>();
  e.saved.method = r[2].as<std::string>();
  e.saved.report = json_of(r[3]);
  e.created_at = from_us(r[4].as<std::int64_t>());
  return e;
}

}  // namespace

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
  return first_row(query(pool_, sql::kReportById, id), report_of);
}

std::vector<EvalReport> EvalReportRepository::list_for_model(std::string_view model_version) {
  return all_rows(query(pool_, sql::kReportsForModel, std::string(model_version)), report_of);
}

}  // namespace forkcast::db
