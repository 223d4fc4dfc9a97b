// Evaluation reports: report.json (the data, schema in docs/evaluation.md §3), report.html
// (self-contained: inline CSS and SVG charts, no script, no external asset, opens offline)
// and report.md, plus model-card.md for a checkpoint. HTML, Markdown and the model card are
// rendered from the report JSON alone, so they never disagree with it and an old
// report.json can be re-rendered.
//
// Output is all-or-nothing: write_report_files() writes every file into a fresh sibling
// directory "<out>.tmp-<pid>-<n>", fsyncs, and renames it to <out>; on any failure the
// temporary directory is removed and <out> is left as it was.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "forkcast/evaluation/evaluation.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "forkcast/evaluation/policy_loader.hpp"

namespace forkcast::evaluation {

// report.json "schema"/"schema_version". Bump the version on any change that a reader of
// an older report would misread (a renamed or re-defined field); adding fields keeps it.
inline constexpr std::string_view kReportSchema = "forkcast.evaluation_report";
inline constexpr int kReportSchemaVersion = 1;

// One point of a training run's learning curve (runs/<id>/metrics.jsonl).
struct LearningCurvePoint {
  std::int64_t episode = 0;
  double mean_return_100 = 0;
  double epsilon = 0;
};

// Reads <run_dir>/metrics.jsonl; longer curves are cut into `max_points` consecutive buckets,
// each shown as its mean return at its last episode (the last record is always an endpoint). Lines that are not JSON objects with "episode" and "mean_return_100" (a
// torn last line) are skipped. Empty when the file does not exist.
std::vector<LearningCurvePoint> read_learning_curve(const std::filesystem::path& run_dir, std::size_t max_points = 200);

// Everything a report states besides the numbers.
struct ReportContext {
  std::string generated_at;     // UTC, ISO 8601
  std::string forkcast_version; // e.g. "0.1.0 (git abc123)"
  std::string command;          // the command line, for reproduction
  std::filesystem::path data_dir;
  std::string catalog_sha256;
  std::size_t catalog_meals = 0;
  std::string population_sha256;
  std::vector<std::string> archetype_names;
  config::MealSimConfig mealsim;
  int popularity_users = 2000;
  std::uint64_t popularity_seed = 77;
};

struct OpeSection {
  std::string log_file;
  std::string log_sha256;
  DecisionLog summary;  // counts only: decisions is left empty
  std::int64_t decisions = 0;
  std::int64_t users = 0;
  DirectMethodModel model;  // predictions left empty
  OpeOptions options;
  std::vector<OpeResult> results;
  std::vector<std::pair<std::string, std::string>> unavailable;  // policy label, reason
};

// The report as JSON. `policies` are the loaded policies in evaluation order (labels equal
// result.policies' names); `ope` is null when no logs were given.
nlohmann::json build_report_json(const ReportContext& context, const std::vector<LoadedPolicy>& policies,
                                 const EvaluationResult& result, const OpeSection* ope);

std::string render_report_html(const nlohmann::json& report);
std::string render_report_markdown(const nlohmann::json& report);
// The model card of the report's policy labelled `policy_label` (a checkpoint). Throws
// std::invalid_argument when the report has no such checkpoint policy.
std::string render_model_card(const nlohmann::json& report, const std::string& policy_label);

// Chart ids report.html always contains ("chart-learning-curve" only when a checkpoint's run
// folder has metrics.jsonl, "chart-ope" only with logs): the browser test checks them.
std::vector<std::string> report_chart_ids(const nlohmann::json& report);

// Writes files (name, content) into `out` atomically, as described at the top. `out` must
// not exist or be an empty directory unless `overwrite` (then an existing directory is
// replaced as a whole). Throws std::invalid_argument when `out` exists and overwrite is
// false, std::runtime_error naming the path on an I/O failure.
void write_report_files(const std::filesystem::path& out,
                        const std::vector<std::pair<std::string, std::string>>& files, bool overwrite);

}  // namespace forkcast::evaluation
