// The report of one learning cycle (docs/learning-loop.md "Reports"): report.json (the
// data: schema forkcast.learning_cycle, version 1), report.md and report.html rendered
// from the JSON alone (self-contained HTML: inline CSS and SVG, no script). Two charts: the
// gate's off-policy estimates with their intervals (logged value, production model,
// candidate; id "chart-ope"), and the estimate and the logged value of every cycle so far
// (id "chart-cycles").
// Errors: write_cycle_report throws std::runtime_error naming the path on an I/O failure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "forkcast/db/learning_log.hpp"

namespace forkcast::learning {

inline constexpr std::string_view kCycleReportSchema = "forkcast.learning_cycle";
inline constexpr int kCycleReportSchemaVersion = 1;

struct CycleReportInput {
  std::string learner;
  std::int64_t cycle = 0;
  std::string version, parent;
  std::string generated_at, command, git_revision;
  bool promoted = false;
  std::string reason;
  nlohmann::json stats = nlohmann::json::object();  // run_cycle's summary stats (data, split, training, gate)
  std::vector<db::CycleRecord> history;             // the learner's earlier cycles, oldest first
};

nlohmann::json cycle_report_json(const CycleReportInput& input);
std::string render_cycle_markdown(const nlohmann::json& report);
std::string render_cycle_html(const nlohmann::json& report);
// report.json, report.md and report.html into `dir`, atomically (evaluation::write_report_files),
// replacing an earlier report there.
void write_cycle_report(const std::filesystem::path& dir, const nlohmann::json& report);

}  // namespace forkcast::learning
