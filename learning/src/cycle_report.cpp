#include "forkcast/learning/cycle_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "forkcast/evaluation/report.hpp"

namespace forkcast::learning {

namespace {

using json = nlohmann::json;

std::string fixed(double value, int digits = 4) {
  if (!std::isfinite(value)) return "n/a";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

double number(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

std::int64_t integer(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::int64_t>() : 0;
}

std::string escape_html(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

struct Bar {
  std::string label;
  double value, lo, hi;
};

// Horizontal interval chart: one row per bar, a dot at the value and a line over [lo, hi].
std::string interval_chart(const std::string& id, const std::string& title, const std::vector<Bar>& bars) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Bar& b : bars) {
    for (const double v : {b.value, b.lo, b.hi}) {
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  constexpr int kWidth = 640, kLeft = 220, kRow = 28, kTop = 30;
  const int height = kTop + kRow * static_cast<int>(bars.size()) + 30;
  const auto x = [&](double v) { return kLeft + (v - lo) / (hi - lo) * (kWidth - kLeft - 20); };
  std::ostringstream svg;
  svg << "<svg id=\"" << id << "\" role=\"img\" viewBox=\"0 0 " << kWidth << ' ' << height << "\" width=\"" << kWidth
      << "\" height=\"" << height << "\"><title>" << escape_html(title) << "</title>";
  svg << "<text x=\"8\" y=\"18\" font-weight=\"bold\">" << escape_html(title) << "</text>";
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const int y = kTop + kRow * static_cast<int>(i) + kRow / 2;
    svg << "<text x=\"8\" y=\"" << y + 4 << "\">" << escape_html(b.label) << "</text>";
    if (std::isfinite(b.lo) && std::isfinite(b.hi)) {
      svg << "<line x1=\"" << x(b.lo) << "\" y1=\"" << y << "\" x2=\"" << x(b.hi) << "\" y2=\"" << y
          << "\" stroke=\"#456\" stroke-width=\"3\"/>";
    }
    if (std::isfinite(b.value)) {
      svg << "<circle cx=\"" << x(b.value) << "\" cy=\"" << y << "\" r=\"5\" fill=\"#c33\"/>";
      svg << "<text x=\"" << x(b.value) + 8 << "\" y=\"" << y - 6 << "\" font-size=\"11\">" << fixed(b.value) << "</text>";
    }
  }
  const int axis = height - 20;
  svg << "<line x1=\"" << kLeft << "\" y1=\"" << axis << "\" x2=\"" << kWidth - 20 << "\" y2=\"" << axis
      << "\" stroke=\"#999\"/>";
  svg << "<text x=\"" << kLeft << "\" y=\"" << axis + 14 << "\" font-size=\"11\">" << fixed(lo) << "</text>";
  svg << "<text x=\"" << kWidth - 70 << "\" y=\"" << axis + 14 << "\" font-size=\"11\">" << fixed(hi) << "</text>";
  svg << "</svg>";
  return svg.str();
}

std::vector<Bar> gate_bars(const json& report) {
  std::vector<Bar> bars;
  const json& gate = report["gate"];
  if (!gate.is_object()) return bars;
  const std::string estimator = gate.value("estimator", "dr");
  const json& candidate = gate["candidate"];
  const json& production = gate["production"];
  if (candidate.is_object()) {
    const json& l = candidate["logged"];
    bars.push_back({"logged (what the log earned)", number(l, "value"), number(l, "lo"), number(l, "hi")});
  }
  if (production.is_object()) {
    const json& e = production[estimator];
    bars.push_back({"production " + estimator, number(e, "value"), number(e, "lo"), number(e, "hi")});
  }
  if (candidate.is_object()) {
    for (const std::string name : {"snips", "dr"}) {
      const json& e = candidate[name];
      bars.push_back({"candidate " + name, number(e, "value"), number(e, "lo"), number(e, "hi")});
    }
  }
  return bars;
}

}  // namespace

json cycle_report_json(const CycleReportInput& in) {
  json history = json::array();
  for (const db::CycleRecord& c : in.history) {
    json entry = {{"id", c.id}, {"outcome", db::cycle_outcome_name(c.outcome)}, {"reason", c.reason}};
    entry["model_version"] = c.model_version ? json(*c.model_version) : json(nullptr);
    const json gate = c.stats.is_object() && c.stats.contains("gate") ? c.stats["gate"] : json::object();
    entry["logged"] = gate.value("logged", std::numeric_limits<double>::quiet_NaN());
    entry["lower"] = gate.value("lower", std::numeric_limits<double>::quiet_NaN());
    if (gate.contains("candidate") && gate["candidate"].is_object()) {
      entry["estimate"] = gate["candidate"][gate.value("estimator", "dr")];
    }
    history.push_back(std::move(entry));
  }
  json report = {{"schema", kCycleReportSchema},
                 {"schema_version", kCycleReportSchemaVersion},
                 {"learner", in.learner},
                 {"cycle", in.cycle},
                 {"model_version", in.version},
                 {"parent", in.parent},
                 {"generated_at", in.generated_at},
                 {"command", in.command},
                 {"git_revision", in.git_revision},
                 {"promoted", in.promoted},
                 {"reason", in.reason},
                 {"history", std::move(history)}};
  for (const char* section : {"range", "data", "split", "training", "gate", "timings"}) {
    if (in.stats.contains(section)) report[section] = in.stats[section];
  }
  return report;
}

std::string render_cycle_markdown(const json& r) {
  std::ostringstream md;
  md << "# Learning cycle " << integer(r, "cycle") << " of learner `" << r.value("learner", "") << "`\n\n";
  md << "- model: `" << r.value("model_version", "") << "` (from `" << r.value("parent", "") << "`)\n";
  md << "- outcome: **" << (r.value("promoted", false) ? "promoted" : "rejected") << "** — " << r.value("reason", "")
     << "\n";
  if (r.contains("range")) {
    md << "- decisions: from " << r["range"].value("from", json(nullptr)).dump() << " to " << r["range"].value("to", "")
       << "\n";
  }
  md << "- generated " << r.value("generated_at", "") << ", git " << r.value("git_revision", "") << "\n";
  md << "- command: `" << r.value("command", "") << "`\n\n";
  if (r.contains("data")) {
    const json& d = r["data"];
    md << "## Data\n\n| read | transitions | with next state | accepted | mean reward | skipped |\n|---|---|---|---|---|---|\n";
    std::int64_t skipped = 0;
    if (const auto it = d.find("skipped"); it != d.end() && it->is_object()) {
      for (const auto& item : it->items()) skipped += item.value().is_number() ? item.value().get<std::int64_t>() : 0;
    }
    md << "| " << integer(d, "decisions_read") << " | " << integer(d, "transitions") << " | " << integer(d, "with_next")
       << " | " << integer(d, "accepted") << " | " << fixed(number(d, "mean_reward")) << " | " << skipped << " |\n\n";
  }
  if (r.contains("gate")) {
    md << "## Gate (off-policy, held-out users)\n\n| estimate | value | lower | upper |\n|---|---|---|---|\n";
    for (const Bar& b : gate_bars(r)) {
      md << "| " << b.label << " | " << fixed(b.value) << " | " << fixed(b.lo) << " | " << fixed(b.hi) << " |\n";
    }
    const json& c = r["gate"]["candidate"];
    md << "\nESS " << fixed(number(c, "ess"), 1) << " of " << integer(c, "decisions") << " decisions ("
       << integer(c, "users") << " users); rule: " << r["gate"].value("estimator", "dr") << " lower bound > logged + "
       << fixed(number(r["gate"], "margin")) << ", ESS >= " << fixed(number(r["gate"], "min_ess"), 0) << ".\n\n";
  }
  if (r.contains("training")) {
    const json& t = r["training"];
    md << "## Update\n\n" << integer(t, "updates") << " updates; TD loss " << fixed(number(t["first"], "td_loss"))
       << " -> " << fixed(number(t["last"], "td_loss")) << ", CQL term " << fixed(number(t["first"], "cql_loss")) << " -> "
       << fixed(number(t["last"], "cql_loss")) << ".\n\n";
  }
  if (!r["history"].empty()) {
    md << "## Earlier cycles\n\n| cycle | outcome | model | logged | lower bound |\n|---|---|---|---|---|\n";
    for (const json& h : r["history"]) {
      md << "| " << integer(h, "id") << " | " << h.value("outcome", "") << " | "
         << (h["model_version"].is_string() ? h["model_version"].get<std::string>() : "-") << " | "
         << fixed(number(h, "logged")) << " | " << fixed(number(h, "lower")) << " |\n";
    }
  }
  return md.str();
}

std::string render_cycle_html(const json& r) {
  std::ostringstream html;
  html << "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Learning cycle "
       << integer(r, "cycle") << "</title><style>body{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}"
       << "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>";
  html << "<h1>Learning cycle " << integer(r, "cycle") << " — " << escape_html(r.value("model_version", "")) << "</h1>";
  html << "<p><b>" << (r.value("promoted", false) ? "Promoted" : "Rejected") << "</b>: "
       << escape_html(r.value("reason", "")) << "</p>";
  html << interval_chart("chart-ope", "Gate: value per decision on held-out users", gate_bars(r));
  std::vector<Bar> cycles;
  for (const json& h : r["history"]) {
    const json e = h.value("estimate", json::object());
    cycles.push_back({"cycle " + std::to_string(integer(h, "id")) + " (" + h.value("outcome", "") + ")",
                      number(e, "value"), number(e, "lo"), number(e, "hi")});
  }
  if (r.contains("gate") && r["gate"].contains("candidate")) {
    const json& e = r["gate"]["candidate"][r["gate"].value("estimator", "dr")];
    cycles.push_back({"this cycle", number(e, "value"), number(e, "lo"), number(e, "hi")});
  }
  html << interval_chart("chart-cycles", "Candidate estimate per cycle", cycles);
  // The tables as Markdown would show them, as preformatted text: one source for both.
  html << "<pre>" << escape_html(render_cycle_markdown(r)) << "</pre></body></html>\n";
  return html.str();
}

void write_cycle_report(const std::filesystem::path& dir, const json& report) {
  evaluation::write_report_files(dir,
                                 {{"report.json", report.dump(2) + "\n"},
                                  {"report.md", render_cycle_markdown(report)},
                                  {"report.html", render_cycle_html(report)}},
                                 true);
}

}  // namespace forkcast::learning
