// The learning cycle's report (learning/cycle_report.hpp): the JSON carries the cycle's
// numbers under its schema, Markdown and HTML are rendered from it alone (the HTML with its
// two charts), and the three files are written together.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "forkcast/learning/cycle_report.hpp"

namespace fl = forkcast::learning;
namespace fdb = forkcast::db;
using nlohmann::json;

namespace {

json interval(double v, double lo, double hi) { return {{"value", v}, {"lo", lo}, {"hi", hi}}; }

fl::CycleReportInput input() {
  fl::CycleReportInput in;
  in.learner = "default";
  in.cycle = 2;
  in.version = "learn-default-2-20260101T000000Z";
  in.parent = "bundled";
  in.generated_at = "2026-12-07T00:00:00Z";
  in.command = "forkcast learn --once";
  in.git_revision = "abc";
  in.promoted = true;
  in.reason = "better: lower bound 0.7000 > logged 0.6000 + margin 0.0000";
  in.stats = {{"data", {{"decisions_read", 100}, {"transitions", 90}, {"with_next", 80}, {"accepted", 50},
                        {"mean_reward", 0.6}, {"skipped", {{"no_recency", 3}}}}},
              {"gate", {{"estimator", "dr"}, {"margin", 0.0}, {"min_ess", 200}, {"logged", 0.6}, {"lower", 0.7},
                        {"candidate", {{"logged", interval(0.6, 0.55, 0.65)}, {"snips", interval(0.74, 0.69, 0.8)},
                                       {"dr", interval(0.75, 0.7, 0.8)}, {"ess", 321.5}, {"decisions", 90},
                                       {"users", 9}}},
                        {"production", {{"dr", interval(0.61, 0.57, 0.66)}}}}},
              {"training", {{"updates", 10}, {"first", {{"td_loss", 0.5}, {"cql_loss", 1.0}}},
                            {"last", {{"td_loss", 0.2}, {"cql_loss", 0.8}}}}}};
  fdb::CycleRecord earlier;
  earlier.id = 1;
  earlier.outcome = fdb::CycleOutcome::rejected;
  earlier.model_version = "learn-default-1-x";
  earlier.reason = "not better";
  earlier.stats = {{"gate", {{"estimator", "dr"}, {"logged", 0.5}, {"lower", 0.45},
                             {"candidate", {{"dr", interval(0.52, 0.45, 0.6)}}}}}};
  in.history = {earlier};
  return in;
}

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST(CycleReport, TheJsonHoldsTheCycleAndTheRenderingsShowItsNumbers) {
  const json r = fl::cycle_report_json(input());
  EXPECT_EQ(r["schema"], "forkcast.learning_cycle");
  EXPECT_EQ(r["schema_version"], 1);
  EXPECT_EQ(r["cycle"], 2);
  EXPECT_EQ(r["promoted"], true);
  EXPECT_EQ(r["gate"]["candidate"]["dr"]["lo"], 0.7);
  ASSERT_EQ(r["history"].size(), 1U);
  EXPECT_EQ(r["history"][0]["outcome"], "rejected");
  EXPECT_EQ(r["history"][0]["estimate"]["value"], 0.52);

  const std::string md = fl::render_cycle_markdown(r);
  EXPECT_NE(md.find("**promoted**"), std::string::npos) << md;
  EXPECT_NE(md.find("| candidate dr | 0.7500 | 0.7000 | 0.8000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("ESS 321.5 of 90 decisions"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | rejected | learn-default-1-x | 0.5000 | 0.4500 |"), std::string::npos) << md;
  const std::string html = fl::render_cycle_html(r);
  EXPECT_NE(html.find("id=\"chart-ope\""), std::string::npos);
  EXPECT_NE(html.find("id=\"chart-cycles\""), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&gt; logged"), std::string::npos);  // the reason, escaped
}

TEST(CycleReport, WritesTheThreeFilesAndReplacesAnEarlierReport) {
  const auto dir = std::filesystem::temp_directory_path() / ("forkcast-cycle-report-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  json r = fl::cycle_report_json(input());
  fl::write_cycle_report(dir, r);
  r["cycle"] = 3;
  fl::write_cycle_report(dir, r);
  EXPECT_EQ(json::parse(read(dir / "report.json"))["cycle"], 3);
  EXPECT_NE(read(dir / "report.md").find("# Learning cycle 3"), std::string::npos);
  EXPECT_NE(read(dir / "report.html").find("Learning cycle 3"), std::string::npos);
  std::filesystem::remove_all(dir);
}
