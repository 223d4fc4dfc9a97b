// Reports: the JSON schema, self-contained HTML with every chart, Markdown, model card,
// learning curves, and the all-or-nothing output directory.
#include "forkcast/evaluation/report.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "forkcast/agent/mealsim_discretizer.hpp"
#include "shipped_world.hpp"

namespace fp = forkcast::policy;
namespace fev = forkcast::evaluation;
namespace fe = forkcast::env;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }
const fe::Population& population() { return forkcast::test::shipped_population(); }

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / "forkcast_report_test" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A tabular checkpoint in a run folder with a metrics.jsonl, as `forkcast train` leaves it.
fs::path make_run(const fs::path& run_dir, bool torn_last_line) {
  const int states = forkcast::agent::MealSimDiscretizer::kNumStates;
  const int actions = static_cast<int>(catalog().size());
  std::vector<double> q(static_cast<std::size_t>(states) * static_cast<std::size_t>(actions), 0.0);
  fp::Checkpoint c;
  c.tensors.push_back(fp::Tensor::from_span<double>("q_table", {states, actions}, q));
  c.metadata = {{"format", "forkcast.tabular.v1"},
                {"env", "mealsim"},
                {"env_spec", "MealSim catalog " + catalog().content_hash()},
                {"episode", "500"},
                {"seed", "4"},
                {"config", R"({"learning_rate":0.02,"gamma":0.8,"episodes":500})"},
                {"git_revision", "deadbeef"}};
  fp::save_safetensors(run_dir / "final.safetensors", c);
  std::ofstream m(run_dir / "metrics.jsonl");
  for (int e = 100; e <= 500; e += 100) {
    m << json{{"episode", e}, {"epsilon", 1.0 - e / 1000.0}, {"mean_return_100", 10.0 + e / 100.0}}.dump() << "\n";
  }
  if (torn_last_line) m << R"({"episode": 600, "mean_ret)";
  std::ofstream(run_dir / "summary.json") << R"({"episodes_done": 500, "wall_s": 1.5, "greedy_eval": {"episodes": 100, "mean_return": 20.5}})";
  return run_dir / "final.safetensors";
}

struct Fixture {
  std::vector<fev::LoadedPolicy> policies;
  fev::EvaluationResult result;
  fev::ReportContext context;
  std::optional<fev::OpeSection> ope;
  json report;
};

Fixture build(bool with_ope) {
  Fixture f;
  fev::PolicyLoadContext lc;
  lc.catalog = &catalog();
  lc.population = &population();
  lc.popularity_users = 200;
  const auto run = fresh_dir(with_ope ? "run_ope" : "run");
  const auto checkpoint = make_run(run, true);
  for (const std::string spec : {"random", "popularity", "myopic-oracle"}) f.policies.push_back(fev::load_meal_policy(spec, lc));
  f.policies.push_back(fev::load_meal_policy(checkpoint.string(), lc));
  std::vector<fe::MealPolicy*> raw;
  std::vector<std::string> names;
  for (auto& p : f.policies) {
    raw.push_back(p.policy.get());
    names.push_back(p.label);
  }
  fev::EvaluationOptions o;
  o.users = 40;
  o.bootstrap_resamples = 200;
  f.result = fev::evaluate_policies(raw, names, catalog(), population(), {}, o);
  f.context.generated_at = "2025-01-01T00:00:00Z";
  f.context.forkcast_version = "test";
  f.context.command = "forkcast evaluate --policy random <&> 'quoted'";
  f.context.data_dir = FORKCAST_SOURCE_DIR "/data";
  f.context.catalog_sha256 = catalog().content_hash();
  f.context.catalog_meals = catalog().size();
  f.context.population_sha256 = std::string(64, 'b');
  for (const auto& a : population().archetypes()) f.context.archetype_names.push_back(a.name);
  if (with_ope) {
    fev::SyntheticLogOptions lo;
    lo.users = 30;
    fev::DecisionLog log;
    log.source = "synthetic.jsonl";
    log.decisions = fev::generate_synthetic_log(catalog(), population(), {}, lo);
    fev::OpeSection s;
    s.log_file = "synthetic.jsonl";
    s.log_sha256 = std::string(64, 'c');
    s.decisions = static_cast<std::int64_t>(log.decisions.size());
    s.options.bootstrap_resamples = 100;
    s.model = fev::fit_direct_method(log, catalog(), s.options);
    for (auto& p : f.policies) {
      if (!p.ope_target) {
        s.unavailable.emplace_back(p.label, p.ope_unavailable);
        continue;
      }
      auto r = fev::evaluate_off_policy(log, s.model, *p.ope_target, s.options);
      r.target = p.label;
      s.users = r.users;
      s.results.push_back(r);
    }
    s.model.predictions.clear();
    f.ope = std::move(s);
  }
  f.report = fev::build_report_json(f.context, f.policies, f.result, f.ope ? &*f.ope : nullptr);
  return f;
}

const Fixture& plain() {
  static const Fixture f = build(false);
  return f;
}

const Fixture& with_ope() {
  static const Fixture f = build(true);
  return f;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// The cells of the first Markdown table row for `label` after the heading `section`.
std::vector<std::string> markdown_row(const std::string& md, const std::string& section, const std::string& label) {
  const auto start = md.find("\n| " + label + " | ", md.find(section));
  if (start == std::string::npos) return {};
  const std::string line = md.substr(start + 1, md.find('\n', start + 1) - start - 1);
  std::vector<std::string> cells;
  for (std::size_t at = 2; at < line.size();) {
    const auto end = line.find(" | ", at);
    cells.push_back(line.substr(at, (end == std::string::npos ? line.size() - 2 : end) - at));
    if (end == std::string::npos) break;
    at = end + 3;
  }
  return cells;
}

// The <td> texts of the summary table's row starting with `head`.
std::vector<std::string> html_row(const std::string& html, const std::string& head) {
  const auto row = html.find(head, html.find("id=\"summary-table\""));
  if (row == std::string::npos) return {};
  const auto row_end = html.find("</tr>", row);
  std::vector<std::string> cells;
  for (auto td = html.find("<td>", row); td < row_end; td = html.find("<td>", td + 1)) {
    cells.push_back(html.substr(td + 4, html.find("</td>", td) - td - 4));
  }
  return cells;
}

}  // namespace

TEST(ReportJson, HasTheDocumentedSchema) {
  const auto& r = plain().report;
  EXPECT_EQ(r.at("schema"), "forkcast.evaluation_report");
  EXPECT_EQ(r.at("schema_version"), 1);
  for (const char* key : {"generated_at", "forkcast_version", "command", "environment", "settings", "metric_definitions",
                          "reference_policy", "policies", "return_histogram_edges", "users_per_archetype", "off_policy",
                          "warnings"}) {
    EXPECT_TRUE(r.contains(key)) << key;
  }
  EXPECT_EQ(r.at("reference_policy"), "random");
  EXPECT_EQ(r.at("environment").at("catalog_sha256"), catalog().content_hash());
  EXPECT_EQ(r.at("environment").at("mealsim_config").at("reward_nutrition"), 3.0);
  ASSERT_EQ(r.at("policies").size(), 4U);
  for (const auto& p : r.at("policies")) {
    for (const auto& def : r.at("metric_definitions")) {
      const auto& e = p.at("metrics").at(def.at("key").get<std::string>());
      EXPECT_TRUE(e.at("value").is_number());
      EXPECT_EQ(e.at("ci").size(), 2U);
      EXPECT_TRUE(e.contains("diff"));
    }
    EXPECT_EQ(p.at("acceptance_by_slot").size(), 4U);
    EXPECT_EQ(p.at("adherence_by_day").size(), 7U);
    EXPECT_EQ(p.at("constraint_violations").at("total"), 0);
    EXPECT_FALSE(p.at("archetypes").empty());
  }
  EXPECT_TRUE(r.at("policies")[0].at("metrics").at("weekly_return").at("diff").is_null());
  EXPECT_TRUE(r.at("policies")[1].at("metrics").at("weekly_return").at("diff").is_number());
  const auto& cp = r.at("policies")[3].at("checkpoint");
  ASSERT_FALSE(cp.is_null());
  EXPECT_EQ(cp.at("format"), "forkcast.tabular.v1");
  EXPECT_EQ(cp.at("training_config").at("gamma"), 0.8);
  EXPECT_EQ(cp.at("learning_curve").size(), 5U);  // the torn sixth line is skipped
  EXPECT_EQ(cp.at("training_summary").at("episodes_done"), 500);
  EXPECT_TRUE(r.at("off_policy").is_null());
  // Parses back: what the renderers read is what is written.
  EXPECT_EQ(json::parse(r.dump()), r);
}

TEST(ReportJson, NonFiniteNumbersBecomeNull) {
  fev::EvaluationResult result = plain().result;
  result.policies[0].metrics["weekly_return"].lo = std::numeric_limits<double>::quiet_NaN();
  result.policies[0].metrics["acceptance_rate"].value = std::numeric_limits<double>::quiet_NaN();
  result.policies[0].metrics["churn_rate"].value = std::numeric_limits<double>::infinity();
  const auto r = fev::build_report_json(plain().context, plain().policies, result, nullptr);
  const auto& mine = r.at("policies")[0].at("metrics");
  const auto& other = r.at("policies")[1].at("metrics");
  EXPECT_TRUE(mine.at("weekly_return").at("ci")[0].is_null());
  EXPECT_TRUE(mine.at("acceptance_rate").at("value").is_null());
  EXPECT_TRUE(mine.at("churn_rate").at("value").is_null());
  // Their finite neighbours stay numbers.
  EXPECT_TRUE(mine.at("weekly_return").at("value").is_number());
  EXPECT_TRUE(mine.at("weekly_return").at("ci")[1].is_number());
  EXPECT_TRUE(mine.at("acceptance_rate").at("ci")[0].is_number());
  EXPECT_TRUE(other.at("acceptance_rate").at("value").is_number());
  // Null in the text too, so that the file parses back to the same document.
  EXPECT_EQ(json::parse(r.dump()), r);

  // Markdown: the summary row of the policy shows the report's placeholder for a missing
  // number ("—") where the value is missing, and the value without its half-missing interval.
  const std::string label = r.at("policies")[0].at("label");
  const auto md = fev::render_report_markdown(r);
  const auto cells = markdown_row(md, "## Summary", label);
  ASSERT_EQ(cells.size(), 12U) << md.substr(0, 2000);
  EXPECT_EQ(cells[3], "—");   // acceptance
  EXPECT_EQ(cells[10], "—");  // churn
  EXPECT_EQ(cells[1].find('['), std::string::npos) << cells[1];
  EXPECT_NEAR(std::stod(cells[1]), mine.at("weekly_return").at("value").get<double>(), 0.005) << cells[1];
  const auto neighbour = markdown_row(md, "## Summary", r.at("policies")[1].at("label"));
  ASSERT_EQ(neighbour.size(), 12U);
  EXPECT_NEAR(std::stod(neighbour[3]), 100.0 * other.at("acceptance_rate").at("value").get<double>(), 0.05) << neighbour[3];
  EXPECT_NE(neighbour[1].find(" ["), std::string::npos) << neighbour[1];

  // HTML: the summary table's first column is this policy.
  const auto html = fev::render_report_html(r);
  const auto acceptance = html_row(html, "<tr><th>Acceptance ");
  ASSERT_EQ(acceptance.size(), r.at("policies").size());
  EXPECT_EQ(acceptance[0], "—");
  EXPECT_NEAR(std::stod(acceptance[1]), 100.0 * other.at("acceptance_rate").at("value").get<double>(), 0.05) << acceptance[1];
  EXPECT_EQ(html_row(html, "<tr><th>Churn ")[0], "—");
  const auto weekly = html_row(html, "<tr><th>Weekly return");
  ASSERT_EQ(weekly.size(), r.at("policies").size());
  EXPECT_EQ(weekly[0].find('['), std::string::npos) << weekly[0];
  EXPECT_NEAR(std::stod(weekly[0]), mine.at("weekly_return").at("value").get<double>(), 0.005) << weekly[0];
  EXPECT_NE(weekly[1].find(" ["), std::string::npos) << weekly[1];
}

TEST(ReportHtml, IsSelfContainedAndHasEveryChart) {
  const auto& r = with_ope().report;
  const auto html = fev::render_report_html(r);
  const auto ids = fev::report_chart_ids(r);
  for (const char* id : {"chart-return-distribution", "chart-return-difference", "chart-archetypes",
                         "chart-acceptance-by-slot", "chart-adherence-by-day", "chart-kcal-error-by-day",
                         "chart-learning-curve", "chart-ope"}) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
  }
  for (const auto& id : ids) EXPECT_EQ(count(html, "id=\"" + id + "\""), 1) << id;
  EXPECT_EQ(count(html, "<svg"), static_cast<int>(ids.size()));
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  // Nothing to fetch: no script, no stylesheet link, no image or frame source, and the only
  // URL is the SVG namespace name (an identifier, never requested).
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  const std::regex url(R"(https?://[^"'\s<]+)");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator(); ++it) {
    EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg");
  }
  // Text from the report is escaped.
  EXPECT_NE(html.find("&lt;&amp;&gt; &#39;quoted&#39;"), std::string::npos);
  EXPECT_EQ(html.find("<&>"), std::string::npos);
}

TEST(ReportHtml, ChartsFollowTheData) {
  const auto& r = plain().report;
  const auto ids = fev::report_chart_ids(r);
  EXPECT_EQ(std::find(ids.begin(), ids.end(), "chart-ope"), ids.end());  // no logs given
  json no_curve = r;
  for (auto& p : no_curve.at("policies")) {
    if (!p.at("checkpoint").is_null()) p.at("checkpoint").at("learning_curve") = json::array();
  }
  const auto ids2 = fev::report_chart_ids(no_curve);
  EXPECT_EQ(std::find(ids2.begin(), ids2.end(), "chart-learning-curve"), ids2.end());
  EXPECT_EQ(fev::render_report_html(no_curve).find("chart-learning-curve"), std::string::npos);
}

TEST(ReportMarkdown, HasATableRowPerPolicyAndTheOpeTable) {
  const auto& r = with_ope().report;
  const auto md = fev::render_report_markdown(r);
  EXPECT_NE(md.find("| Policy | Weekly return |"), std::string::npos);
  for (const auto& p : r.at("policies")) EXPECT_NE(md.find("| " + p.at("label").get<std::string>() + " | "), std::string::npos);
  EXPECT_NE(md.find("## Off-policy evaluation"), std::string::npos);
  EXPECT_NE(md.find("`myopic-oracle` is not evaluable from logs"), std::string::npos);
  EXPECT_NE(md.find("## Per archetype"), std::string::npos);
}

TEST(ModelCard, DescribesTheCheckpointAndRefusesOtherPolicies) {
  const auto& r = with_ope().report;
  const std::string label = r.at("policies")[3].at("label");
  const auto card = fev::render_model_card(r, label);
  for (const char* s : {"# Model card", "forkcast.tabular.v1", "deadbeef", "learning_rate", "## Known limits",
                        "## Intended use", catalog().content_hash().c_str(), "greedy evaluation at the end of training"}) {
    EXPECT_NE(card.find(s), std::string::npos) << s;
  }
  EXPECT_THROW(fev::render_model_card(r, "random"), std::invalid_argument);
  EXPECT_THROW(fev::render_model_card(r, "nope"), std::invalid_argument);
}

TEST(LearningCurve, LongCurvesAreBucketMeans) {
  const auto dir = fresh_dir("curve");
  std::ofstream m(dir / "metrics.jsonl");
  for (int e = 1; e <= 1000; ++e) m << json{{"episode", e}, {"epsilon", 0.5}, {"mean_return_100", e % 2 == 0 ? 2.0 : 0.0}}.dump() << "\n";
  m.close();
  const auto curve = fev::read_learning_curve(dir, 100);
  ASSERT_EQ(curve.size(), 100U);
  for (const auto& p : curve) EXPECT_DOUBLE_EQ(p.mean_return_100, 1.0);
  EXPECT_EQ(curve.back().episode, 1000);
  EXPECT_TRUE(fev::read_learning_curve(dir / "missing").empty());
}

TEST(ReportFiles, AreWrittenAllOrNothing) {
  const auto root = fresh_dir("out");
  const auto out = root / "report";
  fev::write_report_files(out, {{"a.txt", "one"}, {"b.txt", "two"}}, false);
  EXPECT_TRUE(fs::exists(out / "a.txt"));
  // An existing non-empty directory is refused and left alone.
  EXPECT_THROW(fev::write_report_files(out, {{"a.txt", "new"}}, false), std::invalid_argument);
  std::ifstream a(out / "a.txt");
  std::string text;
  a >> text;
  EXPECT_EQ(text, "one");
  // Overwrite replaces the directory as a whole: b.txt does not survive.
  fev::write_report_files(out, {{"a.txt", "new"}}, true);
  EXPECT_FALSE(fs::exists(out / "b.txt"));
  // A failure half-way (a file that cannot be created) leaves no report and no temp dir.
  const auto failed = root / "failed";
  EXPECT_THROW(fev::write_report_files(failed, {{"ok.txt", "x"}, {"missing-dir/bad.txt", "y"}}, false), std::runtime_error);
  EXPECT_FALSE(fs::exists(failed));
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "report") << e.path();
  }
  EXPECT_EQ(entries, 1);  // no temporary directory left behind
  // A trailing slash names the same directory; "." is refused.
  fev::write_report_files(root / "slash" / "", {{"a.txt", "x"}}, false);
  EXPECT_TRUE(fs::exists(root / "slash" / "a.txt"));
  EXPECT_THROW(fev::write_report_files(root / ".", {{"a.txt", "x"}}, true), std::invalid_argument);
  // An empty directory is fine to write into.
  const auto empty = root / "empty";
  fs::create_directories(empty);
  fev::write_report_files(empty, {{"a.txt", "x"}}, false);
  EXPECT_TRUE(fs::exists(empty / "a.txt"));
}
