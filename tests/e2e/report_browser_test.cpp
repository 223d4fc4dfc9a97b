// The evaluation report in a real browser (issue acceptance): a report from the real CLI
// (tabular checkpoint with its run folder, four baselines, a synthetic decision log) renders
// in headless Chromium with every chart drawn, no console error, no uncaught exception, no
// request beyond the file itself; the screenshot is kept in the build tree. Skipped only when
// Chromium is missing (scripts/setup.sh installs Debian's `chromium`).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "forkcast/evaluation/report.hpp"
#include "headless_chromium.hpp"
#include "run_command.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using CliRun = forkcast::testing::CommandOutput;

CliRun run(const std::string& args) {
  return forkcast::testing::run_command(FORKCAST_EXE " " + args);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Per chart: is it there, its drawn size and how many marks it holds.
std::string check_expression(const std::vector<std::string>& ids) {
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "" : ",") + json(id).dump();
  return "(() => { const ids = [" + list +
         "]; const charts = {};"
         " for (const id of ids) { const fig = document.getElementById(id); const svg = fig && fig.querySelector('svg');"
         "   if (!svg) { charts[id] = null; continue; } const r = svg.getBoundingClientRect();"
         "   charts[id] = {width: r.width, height: r.height,"
         "                 marks: svg.querySelectorAll('rect,line,circle,polyline,path').length}; }"
         " return {charts, svgs: document.querySelectorAll('svg').length, title: document.title,"
         "         scripts: document.scripts.length}; })()";
}

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

}  // namespace

class ReportInBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = forkcast::e2e::find_chromium();
    if (!chromium_) GTEST_SKIP() << "chromium not found (/usr/bin/chromium or $FORKCAST_CHROMIUM); scripts/setup.sh installs it";
  }
  std::optional<std::string> chromium_;
};

TEST_F(ReportInBrowser, RendersEveryChartWithoutConsoleErrors) {
  const fs::path dir = fs::temp_directory_path() / "forkcast_report_browser_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto r = run("train --agent tabular --env mealsim --episodes 3000 --max-steps 0 --seed 3 --eval-episodes 0 "
               "--checkpoint-every 3000 --no-progress --data-dir " FORKCAST_SOURCE_DIR "/data --runs-dir " +
               dir.string() + " --run-id tab");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run("evaluate synth-logs --users 60 --seed 5 --data-dir " FORKCAST_SOURCE_DIR "/data --out " + (dir / "logs.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto checkpoint = (dir / "tab" / "final.safetensors").string();
  r = run("evaluate --policy random --policy popularity --policy myopic-oracle --policy planning-oracle --policy " + checkpoint +
          " --users 80 --bootstrap 300 --no-progress --data-dir " FORKCAST_SOURCE_DIR "/data --logs " +
          (dir / "logs.jsonl").string() + " --model-card " + checkpoint + " --out " + (dir / "report").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const auto report = json::parse(read_file(dir / "report" / "report.json"));
  const auto ids = forkcast::evaluation::report_chart_ids(report);
  // This report has a checkpoint with metrics.jsonl and logs: every kind of chart.
  ASSERT_EQ(ids.size(), 8U);

  forkcast::e2e::HeadlessChromium browser(*chromium_);
  const auto page = forkcast::e2e::load_page(browser, "file://" + (dir / "report" / "report.html").string(),
                                             check_expression(ids), 1280);
  for (const auto& e : page.console_errors) ADD_FAILURE() << "console error: " << e;
  for (const auto& e : page.exceptions) ADD_FAILURE() << "uncaught exception: " << e;
  for (const auto& url : page.requests) {
    EXPECT_EQ(url, "file://" + (dir / "report" / "report.html").string()) << "the report fetched something else";
  }
  const auto& charts = page.evaluation.at("charts");
  for (const auto& id : ids) {
    ASSERT_TRUE(charts.contains(id)) << id;
    ASSERT_FALSE(charts.at(id).is_null()) << id << " is missing";
    EXPECT_GT(charts.at(id).at("width").get<double>(), 300) << id;
    EXPECT_GT(charts.at(id).at("height").get<double>(), 100) << id;
    EXPECT_GT(charts.at(id).at("marks").get<int>(), 10) << id;
  }
  EXPECT_EQ(page.evaluation.at("svgs").get<std::size_t>(), ids.size());
  EXPECT_EQ(page.evaluation.at("scripts").get<int>(), 0);

  // The screenshot: a PNG as wide as the viewport and as tall as the page.
  ASSERT_GT(page.png.size(), 50'000U);
  ASSERT_EQ(page.png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(be32(page.png, 16), 1280U);
  EXPECT_GT(be32(page.png, 20), 3000U);
  const fs::path shot = FORKCAST_BINARY_DIR "/tests/e2e/report_screenshot.png";
  std::ofstream(shot, std::ios::binary) << page.png;
  std::printf("screenshot %s (%zu bytes, %u x %u)\n", shot.c_str(), page.png.size(), be32(page.png, 16), be32(page.png, 20));
}

TEST_F(ReportInBrowser, TheChecksSeeABrokenPage) {
  // The harness must catch what it claims to catch: an error logged, an uncaught exception and
  // an external request on a deliberately broken page.
  const fs::path page_path = fs::temp_directory_path() / "forkcast_broken_page.html";
  std::ofstream(page_path) << "<!DOCTYPE html><html><body><p>broken</p>"
                              "<img src=\"http://forkcast.invalid/x.png\">"
                              "<script>console.error('deliberate'); throw new Error('deliberate failure');</script>"
                              "</body></html>";
  forkcast::e2e::HeadlessChromium browser(*chromium_);
  const auto page = forkcast::e2e::load_page(browser, "file://" + page_path.string(), "document.title", 400);
  EXPECT_FALSE(page.console_errors.empty());
  ASSERT_FALSE(page.exceptions.empty());
  EXPECT_NE(page.exceptions.front().find("deliberate failure"), std::string::npos) << page.exceptions.front();
  bool external = false;
  for (const auto& url : page.requests) external = external || url.find("forkcast.invalid") != std::string::npos;
  EXPECT_TRUE(external);
}
