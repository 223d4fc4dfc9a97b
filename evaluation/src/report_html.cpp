// report.html: one self-contained page (inline CSS, inline SVG, no script, no external
// asset) rendered from the report JSON. Charts are drawn by hand: a few rectangles, lines
// and text per chart do not justify a plotting dependency, and the page must open offline.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "forkcast/evaluation/report.hpp"
#include "report_format.hpp"

namespace forkcast::evaluation {

using nlohmann::json;
using report_format::html_escape;

namespace {

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
constexpr std::array<const char*, 8> kPalette = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                                 "#D55E00", "#56B4E9", "#7F7F7F", "#000000"};
const char* color_of(std::size_t i) { return kPalette[i % kPalette.size()]; }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string label_num(double v) {
  char buf[32];
  if (std::abs(v) >= 1000 && std::abs(v) < 1e7) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%g", v);
  }
  return buf;
}

double get(const json& v, double fallback = std::numeric_limits<double>::quiet_NaN()) {
  return v.is_number() ? v.get<double>() : fallback;
}

struct Scale {
  double d0, d1, r0, r1;
  double operator()(double v) const { return d1 == d0 ? r0 : r0 + (v - d0) / (d1 - d0) * (r1 - r0); }
};

// Heckbert's nice numbers: 1, 2, 5 times a power of ten.
double nice_step(double range, int count) {
  if (!(range > 0)) return 1.0;
  const double raw = range / std::max(1, count);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

std::vector<double> ticks(double lo, double hi, int count) {
  std::vector<double> out;
  const double step = nice_step(hi - lo, count);
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return out;
}

// Expands [lo, hi] to tick boundaries so bars and axes end on round numbers.
std::pair<double, double> nice_domain(double lo, double hi, int count) {
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  const double step = nice_step(hi - lo, count);
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step};
}

class Svg {
 public:
  Svg(int width, int height, const std::string& label) : width_(width), height_(height) {
    out_ << "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"" << html_escape(label) << "\" viewBox=\"0 0 "
         << width << " " << height << "\" width=\"" << width << "\" height=\"" << height << "\">";
  }
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& tip = "",
            const std::string& extra = "") {
    out_ << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(std::max(0.0, w)) << "\" height=\""
         << num(std::max(0.0, h)) << "\" fill=\"" << fill << "\"" << extra << ">" << tip_of(tip) << "</rect>";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& extra = "") {
    out_ << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2) << "\" y2=\"" << num(y2)
         << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width) << "\"" << extra << "/>";
  }
  void text(double x, double y, const std::string& s, const std::string& anchor = "start", const std::string& cls = "") {
    out_ << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" text-anchor=\"" << anchor << "\""
         << (cls.empty() ? "" : " class=\"" + cls + "\"") << ">" << html_escape(s) << "</text>";
  }
  void circle(double cx, double cy, double r, const std::string& fill, const std::string& tip = "") {
    out_ << "<circle cx=\"" << num(cx) << "\" cy=\"" << num(cy) << "\" r=\"" << num(r) << "\" fill=\"" << fill
         << "\" stroke=\"#fff\" stroke-width=\"1\">" << tip_of(tip) << "</circle>";
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, const std::string& stroke, double width,
                const std::string& extra = "") {
    out_ << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width) << "\"" << extra
         << " points=\"";
    for (const auto& [x, y] : pts) out_ << num(x) << "," << num(y) << " ";
    out_ << "\"/>";
  }
  // A horizontal legend of coloured squares at (x, y).
  void legend(double x, double y, const std::vector<std::pair<std::string, std::string>>& items) {
    for (const auto& [name, color] : items) {
      rect(x, y - 9, 10, 10, color);
      text(x + 14, y, name, "start", "legend");
      x += 24 + 6.6 * static_cast<double>(name.size());
    }
  }
  void x_axis(const Scale& sx, double y, double top, const std::vector<double>& ts, const std::string& title,
              const std::string& suffix = "") {
    for (const double t : ts) {
      line(sx(t), top, sx(t), y, "#e4e4e4");
      text(sx(t), y + 14, label_num(t) + suffix, "middle", "tick");
    }
    line(sx.r0, y, sx.r1, y, "#888");
    if (!title.empty()) text((sx.r0 + sx.r1) / 2, y + 32, title, "middle", "axis");
  }
  void y_axis(const Scale& sy, double x, double right, const std::vector<double>& ts, const std::string& title,
              const std::string& suffix = "") {
    for (const double t : ts) {
      line(x, sy(t), right, sy(t), "#e4e4e4");
      text(x - 6, sy(t) + 4, label_num(t) + suffix, "end", "tick");
    }
    line(x, sy.r0, x, sy.r1, "#888");
    if (!title.empty()) {
      out_ << "<text transform=\"translate(" << num(x - 42) << "," << num((sy.r0 + sy.r1) / 2)
           << ") rotate(-90)\" text-anchor=\"middle\" class=\"axis\">" << html_escape(title) << "</text>";
    }
  }
  std::string str() const { return out_.str() + "</svg>"; }
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  static std::string tip_of(const std::string& tip) { return tip.empty() ? "" : "<title>" + html_escape(tip) + "</title>"; }
  int width_, height_;
  std::ostringstream out_;
};

std::string figure(const std::string& id, const std::string& title, const Svg& svg, const std::string& caption) {
  return "<figure class=\"chart\" id=\"" + id + "\" data-chart=\"" + id + "\"><h3>" + html_escape(title) + "</h3>" +
         svg.str() + "<figcaption>" + caption + "</figcaption></figure>\n";
}

std::string fmt2(double v, int decimals = 2) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::vector<std::pair<std::string, std::string>> legend_items(const json& policies) {
  std::vector<std::pair<std::string, std::string>> items;
  for (std::size_t i = 0; i < policies.size(); ++i) items.emplace_back(policies[i].at("label").get<std::string>(), color_of(i));
  return items;
}

// ---- charts ------------------------------------------------------------------------------

std::string chart_return_distribution(const json& r) {
  const auto& ps = r.at("policies");
  const auto& edges = r.at("return_histogram_edges");
  const double row = 62, left = 190, right = 40, top = 20, bottom = 50;
  const int w = 960;
  const int h = static_cast<int>(top + row * static_cast<double>(ps.size()) + bottom);
  Svg svg(w, h, "Distribution of weekly returns per policy");
  const auto [lo, hi] = nice_domain(edges.front().get<double>(), edges.back().get<double>(), 10);
  const Scale sx{lo, hi, left, w - right};
  const double axis_y = top + row * static_cast<double>(ps.size());
  svg.x_axis(sx, axis_y, top, ticks(lo, hi, 10), "weekly return (sum of rewards over the week)");
  std::int64_t max_count = 1;
  for (const auto& p : ps) {
    for (const auto& c : p.at("return_distribution").at("histogram")) max_count = std::max(max_count, c.get<std::int64_t>());
  }
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const auto& p = ps[i];
    const auto& d = p.at("return_distribution");
    const std::string color = color_of(i);
    const double base = top + row * static_cast<double>(i) + 30;  // histogram baseline
    const auto& hist = d.at("histogram");
    for (std::size_t b = 0; b < hist.size(); ++b) {
      const double x0 = sx(edges[b].get<double>()), x1 = sx(edges[b + 1].get<double>());
      const double bh = 26.0 * static_cast<double>(hist[b].get<std::int64_t>()) / static_cast<double>(max_count);
      svg.rect(x0, base - bh, x1 - x0 - 0.5, bh, color,
               label_num(edges[b].get<double>()) + " to " + label_num(edges[b + 1].get<double>()) + ": " +
                   std::to_string(hist[b].get<std::int64_t>()) + " weeks",
               " fill-opacity=\"0.35\"");
    }
    const double by = base + 12;
    svg.line(sx(get(d.at("p5"))), by, sx(get(d.at("p95"))), by, color, 1.5);
    svg.rect(sx(get(d.at("p25"))), by - 6, sx(get(d.at("p75"))) - sx(get(d.at("p25"))), 12, color,
             "p25 " + fmt2(get(d.at("p25"))) + ", median " + fmt2(get(d.at("p50"))) + ", p75 " + fmt2(get(d.at("p75"))),
             " fill-opacity=\"0.8\"");
    svg.line(sx(get(d.at("p50"))), by - 7, sx(get(d.at("p50"))), by + 7, "#fff", 2);
    const auto& m = p.at("metrics").at("weekly_return");
    svg.circle(sx(get(m.at("value"))), by, 4.5, "#111",
               "mean " + fmt2(get(m.at("value"))) + " [" + fmt2(get(m.at("ci")[0])) + ", " + fmt2(get(m.at("ci")[1])) + "]");
    svg.rect(left - 180, base - 4, 10, 10, color);
    svg.text(left - 165, base + 5, p.at("label").get<std::string>(), "start", "label");
    svg.text(left - 165, base + 19, "mean " + fmt2(get(m.at("value"))), "start", "small");
  }
  return figure("chart-return-distribution", "Weekly return per policy", svg,
                "Histogram of the weekly return of every simulated week (faint bars); box: 25th to 75th percentile, white "
                "tick: median, whiskers: 5th to 95th percentile, black dot: mean.");
}

std::string chart_return_difference(const json& r) {
  const auto& ps = r.at("policies");
  const std::string ref = r.at("reference_policy").get<std::string>();
  const double row = 34, left = 190, right = 190, top = 20, bottom = 50;
  const int w = 960;
  const int h = static_cast<int>(top + row * static_cast<double>(ps.size() - 1) + bottom);
  Svg svg(w, h, "Paired difference in weekly return versus " + ref);
  double lo = 0, hi = 0;
  for (std::size_t i = 1; i < ps.size(); ++i) {
    const auto& m = ps[i].at("metrics").at("weekly_return");
    lo = std::min({lo, get(m.at("diff_ci")[0], 0.0), get(m.at("diff"), 0.0)});
    hi = std::max({hi, get(m.at("diff_ci")[1], 0.0), get(m.at("diff"), 0.0)});
  }
  const auto [d0, d1] = nice_domain(lo, hi, 8);
  const Scale sx{d0, d1, left, w - right};
  const double axis_y = top + row * static_cast<double>(ps.size() - 1);
  svg.x_axis(sx, axis_y, top, ticks(d0, d1, 8), "difference in mean weekly return vs " + ref + " (paired by user)");
  svg.line(sx(0), top - 8, sx(0), axis_y, "#444", 1.2, " stroke-dasharray=\"4 3\"");
  for (std::size_t i = 1; i < ps.size(); ++i) {
    const auto& m = ps[i].at("metrics").at("weekly_return");
    const double y = top + row * static_cast<double>(i - 1) + row / 2;
    const std::string color = color_of(i);
    const double d = get(m.at("diff")), a = get(m.at("diff_ci")[0]), b = get(m.at("diff_ci")[1]);
    const std::string text = report_format::signed_fixed(d, 2) + " [" + report_format::signed_fixed(a, 2) + ", " +
                             report_format::signed_fixed(b, 2) + "]";
    svg.line(sx(a), y, sx(b), y, color, 3);
    svg.line(sx(a), y - 6, sx(a), y + 6, color, 1.5);
    svg.line(sx(b), y - 6, sx(b), y + 6, color, 1.5);
    svg.circle(sx(d), y, 5.5, color, text);
    svg.text(left - 10, y + 4, ps[i].at("label").get<std::string>(), "end", "label");
    svg.text(w - right + 10, y + 4, text, "start", "small");
  }
  return figure("chart-return-difference", "Difference to " + ref + " (paired)", svg,
                "Mean difference in weekly return to the reference policy on the same users and seeds, with its " +
                    report_format::confidence_pct(r) +
                    " % bootstrap interval (users resampled, the same users for both policies). An interval that "
                    "excludes 0 is a difference the sample resolves.");
}

std::string chart_archetypes(const json& r) {
  const auto& ps = r.at("policies");
  const auto& arch = ps.front().at("archetypes");
  const double bar = 11, gap = 14, left = 230, right = 40, top = 34, bottom = 50;
  const double group = bar * static_cast<double>(ps.size()) + gap;
  const int w = 960;
  const int h = static_cast<int>(top + group * static_cast<double>(arch.size()) + bottom);
  Svg svg(w, h, "Mean weekly return per archetype and policy");
  double lo = 0, hi = 0;
  for (const auto& p : ps) {
    for (const auto& a : p.at("archetypes")) {
      const auto& m = a.at("metrics").at("weekly_return");
      lo = std::min(lo, get(m.at("ci")[0], get(m.at("value"), 0.0)));
      hi = std::max(hi, get(m.at("ci")[1], get(m.at("value"), 0.0)));
    }
  }
  const auto [d0, d1] = nice_domain(lo, hi, 10);
  const Scale sx{d0, d1, left, w - right};
  const double axis_y = top + group * static_cast<double>(arch.size()) - gap / 2;
  svg.x_axis(sx, axis_y, top - 6, ticks(d0, d1, 10), "mean weekly return");
  svg.legend(left, 14, legend_items(ps));
  for (std::size_t a = 0; a < arch.size(); ++a) {
    const double gy = top + group * static_cast<double>(a);
    svg.text(left - 10, gy + bar * static_cast<double>(ps.size()) / 2 + 4,
             arch[a].at("name").get<std::string>() + " (" + std::to_string(arch[a].at("users").get<int>()) + ")", "end",
             "label");
    for (std::size_t i = 0; i < ps.size(); ++i) {
      const auto& m = ps[i].at("archetypes")[a].at("metrics").at("weekly_return");
      const double v = get(m.at("value"), 0.0);
      const double y = gy + bar * static_cast<double>(i);
      const double x0 = sx(std::min(0.0, v)), x1 = sx(std::max(0.0, v));
      svg.rect(x0, y + 1, x1 - x0, bar - 2, color_of(i),
               ps[i].at("label").get<std::string>() + ": " + fmt2(v) + " [" + fmt2(get(m.at("ci")[0])) + ", " +
                   fmt2(get(m.at("ci")[1])) + "]");
      if (m.at("ci")[0].is_number()) svg.line(sx(get(m.at("ci")[0])), y + bar / 2, sx(get(m.at("ci")[1])), y + bar / 2, "#222", 1);
    }
  }
  return figure("chart-archetypes", "Weekly return by user archetype", svg,
                "Bars: mean weekly return of each policy for the users of each archetype (user count in brackets); "
                "black lines: " + report_format::confidence_pct(r) + " % bootstrap interval within the archetype.");
}

std::string chart_acceptance_by_slot(const json& r) {
  const auto& ps = r.at("policies");
  const auto& slots = env::kSlotNames;
  const double left = 70, right = 20, top = 34, bottom = 50;
  const int w = 960, h = 340;
  Svg svg(w, h, "Acceptance rate by slot and policy");
  const Scale sy{0, 100, h - bottom, top};
  svg.y_axis(sy, left, w - right, ticks(0, 100, 5), "acceptance", " %");
  svg.legend(left, 14, legend_items(ps));
  const double group = (w - left - right) / 4.0;
  const double bar = std::min(36.0, (group - 30) / static_cast<double>(ps.size()));
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const std::string slot(slots[s]);
    const double gx = left + group * static_cast<double>(s) + (group - bar * static_cast<double>(ps.size())) / 2;
    svg.text(left + group * (static_cast<double>(s) + 0.5), h - bottom + 18, slot, "middle", "label");
    for (std::size_t i = 0; i < ps.size(); ++i) {
      const auto& e = ps[i].at("acceptance_by_slot").at(slot);
      const double v = 100.0 * get(e.at("value"), 0.0);
      const double x = gx + bar * static_cast<double>(i);
      svg.rect(x + 1, sy(v), bar - 2, sy(0) - sy(v), color_of(i),
               ps[i].at("label").get<std::string>() + " at " + slot + ": " + fmt2(v, 1) + " %");
      if (e.at("ci")[0].is_number()) {
        svg.line(x + bar / 2, sy(100 * get(e.at("ci")[0])), x + bar / 2, sy(100 * get(e.at("ci")[1])), "#222", 1.2);
      }
    }
  }
  return figure("chart-acceptance-by-slot", "Acceptance by slot", svg,
                "Share of suggestions the simulated users accepted, per slot; black lines: " +
                    report_format::confidence_pct(r) + " % bootstrap interval.");
}

std::string chart_by_day(const json& r, const std::string& id, const std::string& title, const std::string& key,
                         double scale, const std::string& axis, const std::string& suffix, double fixed_hi,
                         const std::string& caption) {
  const auto& ps = r.at("policies");
  const double left = 70, right = 20, top = 34, bottom = 50;
  const int w = 960, h = 320;
  Svg svg(w, h, title);
  double hi = fixed_hi;
  if (!(hi > 0)) {
    hi = 0;
    for (const auto& p : ps) {
      for (const auto& e : p.at(key)) hi = std::max(hi, scale * get(e.at("ci")[1], get(e.at("value"), 0.0)));
    }
    hi = nice_domain(0, hi, 5).second;
  }
  const Scale sy{0, hi, h - bottom, top};
  const Scale sx{1, 7, left + 30, w - right - 30};
  svg.y_axis(sy, left, w - right, ticks(0, hi, 5), axis, suffix);
  for (int d = 1; d <= 7; ++d) svg.text(sx(d), h - bottom + 18, "day " + std::to_string(d), "middle", "label");
  svg.line(left, h - bottom, w - right, h - bottom, "#888");
  svg.legend(left, 14, legend_items(ps));
  for (std::size_t i = 0; i < ps.size(); ++i) {
    std::vector<std::pair<double, double>> pts;
    const auto& days = ps[i].at(key);
    for (std::size_t d = 0; d < days.size(); ++d) {
      if (!days[d].at("value").is_number()) continue;
      pts.emplace_back(sx(static_cast<double>(d + 1)), sy(scale * get(days[d].at("value"))));
    }
    svg.polyline(pts, color_of(i), 2.2);
    for (std::size_t d = 0; d < days.size(); ++d) {
      const auto& e = days[d];
      if (!e.at("value").is_number()) continue;
      const double x = sx(static_cast<double>(d + 1)) + (static_cast<double>(i) - static_cast<double>(ps.size() - 1) / 2) * 3;
      if (e.at("ci")[0].is_number()) svg.line(x, sy(scale * get(e.at("ci")[0])), x, sy(scale * get(e.at("ci")[1])), color_of(i), 1);
      svg.circle(x, sy(scale * get(e.at("value"))), 3.5, color_of(i),
                 ps[i].at("label").get<std::string>() + ", day " + std::to_string(d + 1) + ": " +
                     fmt2(scale * get(e.at("value")), scale == 1 ? 3 : 1) + suffix);
    }
  }
  return figure(id, title, svg, caption);
}

std::string chart_learning_curve(const json& r) {
  const auto& ps = r.at("policies");
  const double left = 70, right = 200, top = 34, bottom = 50;
  const int w = 960, h = 360;
  Svg svg(w, h, "Learning curve of the checkpoints' training runs");
  double max_ep = 1, lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& p : ps) {
    if (p.at("checkpoint").is_null()) continue;
    for (const auto& pt : p.at("checkpoint").at("learning_curve")) {
      max_ep = std::max(max_ep, pt[0].get<double>());
      lo = std::min(lo, pt[1].get<double>());
      hi = std::max(hi, pt[1].get<double>());
    }
  }
  for (const auto& p : ps) {
    const double v = get(p.at("metrics").at("weekly_return").at("value"), 0.0);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const auto [d0, d1] = nice_domain(lo, hi, 6);
  const Scale sx{0, max_ep, left, w - right};
  const Scale sy{d0, d1, h - bottom, top};
  const Scale seps{0, 1, h - bottom, top};
  svg.y_axis(sy, left, w - right, ticks(d0, d1, 6), "weekly return");
  svg.x_axis(sx, h - bottom, top, ticks(0, max_ep, 8), "training episode (week)");
  svg.text(w - right + 8, top - 10, "epsilon (grey, 0..1)", "start", "small");
  std::vector<std::pair<std::string, std::string>> legend;
  // Labels of the reference lines, pushed apart where returns are close.
  std::vector<std::pair<double, std::string>> labels;
  for (const auto& p : ps) {
    const double v = get(p.at("metrics").at("weekly_return").at("value"), 0.0);
    labels.emplace_back(sy(v) + 4, p.at("label").get<std::string>() + " " + fmt2(v));
  }
  std::sort(labels.begin(), labels.end());
  for (std::size_t i = 1; i < labels.size(); ++i) labels[i].first = std::max(labels[i].first, labels[i - 1].first + 12);
  for (const auto& [y, text] : labels) svg.text(w - right + 6, y, text, "start", "small");
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const auto& p = ps[i];
    const double v = get(p.at("metrics").at("weekly_return").at("value"), 0.0);
    svg.line(left, sy(v), w - right, sy(v), color_of(i), 1.2, " stroke-dasharray=\"6 4\" stroke-opacity=\"0.8\"");
    if (p.at("checkpoint").is_null() || p.at("checkpoint").at("learning_curve").empty()) continue;
    std::vector<std::pair<double, double>> ret, eps;
    for (const auto& pt : p.at("checkpoint").at("learning_curve")) {
      ret.emplace_back(sx(pt[0].get<double>()), sy(pt[1].get<double>()));
      eps.emplace_back(sx(pt[0].get<double>()), seps(pt[2].get<double>()));
    }
    svg.polyline(eps, "#999", 1.2, " stroke-dasharray=\"2 3\"");
    svg.polyline(ret, color_of(i), 2);
    legend.emplace_back(p.at("label").get<std::string>() + " (training, mean of last 100 weeks)", color_of(i));
  }
  svg.legend(left, 14, legend);
  return figure("chart-learning-curve", "Learning curve", svg,
                "Solid: mean return of the last 100 training weeks from the run folder's metrics.jsonl (training users, "
                "with exploration, so below the greedy policy's value); grey dotted: epsilon; dashed: each policy's mean "
                "weekly return in this evaluation.");
}

std::string chart_ope(const json& r) {
  const auto& ope = r.at("off_policy");
  const auto& results = ope.at("results");
  const std::array<const char*, 4> est = {"ips", "snips", "dm", "dr"};
  const std::array<const char*, 4> names = {"IPS", "SNIPS", "DM", "DR"};
  const double row = 20, gap = 16, left = 230, right = 200, top = 34, bottom = 50;
  const double group = row * 4 + gap;
  const int w = 960;
  const int h = static_cast<int>(top + group * static_cast<double>(results.size()) + bottom);
  Svg svg(w, h, "Off-policy estimates with intervals");
  // The domain follows SNIPS, DM, DR and the logged value; an IPS interval far outside it is
  // clipped (marked) rather than squeezing everything else into a few pixels.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  auto widen = [&](const json& iv) {
    for (const auto& v : {iv.at("value"), iv.at("ci")[0], iv.at("ci")[1]}) {
      if (v.is_number()) {
        lo = std::min(lo, v.get<double>());
        hi = std::max(hi, v.get<double>());
      }
    }
  };
  for (const auto& res : results) {
    widen(res.at("logged"));
    for (const char* k : {"snips", "dm", "dr"}) widen(res.at(k));
  }
  if (!std::isfinite(lo)) {
    lo = 0;
    hi = 1;
  }
  const double span = hi - lo;
  for (const auto& res : results) {
    const auto& ips = res.at("ips");
    if (ips.at("ci")[0].is_number() && get(ips.at("ci")[1]) - get(ips.at("ci")[0]) < 2 * span) widen(ips);
  }
  const auto [d0, d1] = nice_domain(lo, hi, 8);
  const Scale sx{d0, d1, left, w - right};
  const double axis_y = top + group * static_cast<double>(results.size()) - gap / 2;
  svg.x_axis(sx, axis_y, top - 6, ticks(d0, d1, 8), "expected reward per decision");
  const double logged = get(results.front().at("logged").at("value"));
  if (std::isfinite(logged)) {
    svg.line(sx(logged), top - 6, sx(logged), axis_y, "#444", 1.2, " stroke-dasharray=\"4 3\"");
    svg.text(sx(logged), top - 10, "logging policy " + fmt2(logged, 3), "middle", "small");
  }
  const auto& ps = r.at("policies");
  for (std::size_t g = 0; g < results.size(); ++g) {
    const auto& res = results[g];
    const std::string label = res.at("policy").get<std::string>();
    std::size_t color_index = 0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      if (ps[i].at("label").get<std::string>() == label) color_index = i;
    }
    const double gy = top + group * static_cast<double>(g);
    svg.text(left - 90, gy + 2 * row + 4, label, "end", "label");
    for (std::size_t k = 0; k < est.size(); ++k) {
      const auto& iv = res.at(est[k]);
      const double y = gy + row * static_cast<double>(k) + row / 2;
      svg.text(left - 10, y + 4, names[k], "end", "small");
      const double v = get(iv.at("value")), a = get(iv.at("ci")[0]), b = get(iv.at("ci")[1]);
      if (!std::isfinite(v)) continue;
      const double ca = std::clamp(a, d0, d1), cb = std::clamp(b, d0, d1);
      svg.line(sx(ca), y, sx(cb), y, color_of(color_index), 2.5);
      if (a < d0) svg.text(sx(d0) + 2, y - 3, "\u25c2", "start", "small");
      if (b > d1) svg.text(sx(d1) - 2, y - 3, "\u25b8", "end", "small");
      if (v >= d0 && v <= d1) {
        svg.circle(sx(v), y, 4.5, color_of(color_index),
                   std::string(names[k]) + " " + fmt2(v, 3) + " [" + fmt2(a, 3) + ", " + fmt2(b, 3) + "]");
      }
      svg.text(w - right + 10, y + 4, fmt2(v, 3) + " [" + fmt2(a, 3) + ", " + fmt2(b, 3) + "]", "start", "small");
    }
  }
  return figure("chart-ope", "Off-policy estimates", svg,
                "Per-decision value of each target policy estimated from the logged decisions, with " +
                    report_format::confidence_pct(r) +
                    " % bootstrap intervals over users; dashed: the logging policy's own mean reward. Intervals "
                    "cut at the edge are marked with an arrow.");
}

// ---- tables ------------------------------------------------------------------------------

// A difference cell coloured when its interval excludes 0: green if better, red if worse.
std::string diff_cell(const json& r, std::string_view key, const json& e) {
  const auto& def = report_format::metric_def(r, key);
  const std::string text = report_format::diff_ci(r, key, e);
  std::string cls = "neutral";
  if (e.at("diff_ci").is_array() && e.at("diff_ci")[0].is_number()) {
    const double lo = e.at("diff_ci")[0].get<double>(), hi = e.at("diff_ci")[1].get<double>();
    const std::string better = def.at("better").get<std::string>();
    if (better != "none") {
      const bool higher = better == "higher";
      if (lo > 0) cls = higher ? "good" : "bad";
      if (hi < 0) cls = higher ? "bad" : "good";
    }
  }
  return "<td class=\"" + cls + "\">" + html_escape(text) + "</td>";
}

std::string summary_table(const json& r) {
  const auto& ps = r.at("policies");
  std::ostringstream t;
  t << "<div class=\"scroll\"><table id=\"summary-table\"><thead><tr><th>Metric</th>";
  for (const auto& p : ps) t << "<th>" << html_escape(p.at("label").get<std::string>()) << "</th>";
  t << "</tr></thead><tbody>";
  for (const auto& def : r.at("metric_definitions")) {
    const std::string key = def.at("key").get<std::string>();
    t << "<tr><th>" << html_escape(def.at("label").get<std::string>());
    if (!def.at("unit").get<std::string>().empty()) t << " <span class=\"unit\">" << html_escape(def.at("unit").get<std::string>()) << "</span>";
    t << "</th>";
    for (const auto& p : ps) t << "<td>" << html_escape(report_format::value_ci(r, key, p.at("metrics").at(key))) << "</td>";
    t << "</tr><tr class=\"diff\"><th>&#916; vs " << html_escape(r.at("reference_policy").get<std::string>()) << "</th>";
    for (const auto& p : ps) t << diff_cell(r, key, p.at("metrics").at(key));
    t << "</tr>";
  }
  t << "<tr><th>Constraint violations <span class=\"unit\">must be 0</span></th>";
  for (const auto& p : ps) {
    const auto total = p.at("constraint_violations").at("total").get<std::int64_t>();
    t << "<td class=\"" << (total == 0 ? "good" : "bad") << "\">" << total << "</td>";
  }
  t << "</tr></tbody></table></div>\n";
  return t.str();
}

std::string verdict(const json& r) {
  const auto& ps = r.at("policies");
  const std::string ref = r.at("reference_policy").get<std::string>();
  std::ostringstream v;
  v << "<ul class=\"verdict\">";
  std::int64_t violations = 0;
  for (const auto& p : ps) violations += p.at("constraint_violations").at("total").get<std::int64_t>();
  v << "<li class=\"" << (violations == 0 ? "good" : "bad") << "\">" << violations
    << " constraint violations (suggestions outside the safety and slot mask) across all policies.</li>";
  const json* best = nullptr;
  for (const auto& p : ps) {
    if (p.at("reads_hidden_state").get<bool>()) continue;
    if (best == nullptr || get(p.at("metrics").at("weekly_return").at("value"), -1e300) >
                               get(best->at("metrics").at("weekly_return").at("value"), -1e300)) {
      best = &p;
    }
  }
  if (best != nullptr) {
    v << "<li>Highest weekly return among deployable policies (no hidden state): <b>" << html_escape(best->at("label").get<std::string>())
      << "</b>, " << html_escape(report_format::value_ci(r, "weekly_return", best->at("metrics").at("weekly_return"))) << ".</li>";
  }
  for (std::size_t i = 1; i < ps.size(); ++i) {
    const auto& m = ps[i].at("metrics").at("weekly_return");
    const double lo = get(m.at("diff_ci")[0]), hi = get(m.at("diff_ci")[1]);
    const std::string word = lo > 0 ? "higher than" : hi < 0 ? "lower than" : "not distinguishable from";
    v << "<li>" << html_escape(ps[i].at("label").get<std::string>()) << (ps[i].at("reads_hidden_state").get<bool>() ? " (oracle)" : "")
      << ": weekly return " << word << " " << html_escape(ref) << ", "
      << html_escape(report_format::diff_ci(r, "weekly_return", m)) << ".</li>";
  }
  v << "</ul>\n";
  return v.str();
}

std::string archetype_table(const json& r) {
  const auto& ps = r.at("policies");
  const auto& arch = ps.front().at("archetypes");
  std::ostringstream t;
  t << "<div class=\"scroll\"><table><thead><tr><th>Archetype</th><th>Users</th>";
  for (const auto& p : ps) t << "<th>" << html_escape(p.at("label").get<std::string>()) << "<br><span class=\"unit\">return · acceptance · churn</span></th>";
  t << "</tr></thead><tbody>";
  for (std::size_t a = 0; a < arch.size(); ++a) {
    t << "<tr><th>" << html_escape(arch[a].at("name").get<std::string>()) << "</th><td>" << arch[a].at("users").get<int>() << "</td>";
    for (const auto& p : ps) {
      const auto& m = p.at("archetypes")[a].at("metrics");
      t << "<td>" << html_escape(report_format::value_ci(r, "weekly_return", m.at("weekly_return"))) << "<br>"
        << html_escape(report_format::value(r, "acceptance_rate", m.at("acceptance_rate"))) << " · "
        << html_escape(report_format::value(r, "churn_rate", m.at("churn_rate"))) << "</td>";
    }
    t << "</tr>";
  }
  t << "</tbody></table></div>\n";
  return t.str();
}

std::string ope_section(const json& r) {
  const auto& ope = r.at("off_policy");
  std::ostringstream s;
  s << "<section id=\"off-policy\"><h2>Off-policy evaluation</h2>";
  s << "<p>Log <code>" << html_escape(ope.at("log_file").get<std::string>()) << "</code> (sha256 <code>"
    << html_escape(report_format::short_hash(ope.at("log_sha256").get<std::string>())) << "</code>): "
    << ope.at("decisions").get<std::int64_t>() << " decisions with feedback from " << ope.at("users").get<std::int64_t>()
    << " users";
  if (ope.at("decisions_without_feedback").get<std::int64_t>() > 0) {
    s << " (" << ope.at("decisions_without_feedback").get<std::int64_t>() << " decisions without feedback excluded)";
  }
  s << ". <b>Estimand:</b> " << html_escape(ope.at("estimand").get<std::string>()) << ". Direct-method model: "
    << html_escape(ope.at("direct_method").at("model").get<std::string>()) << ", "
    << ope.at("direct_method").at("features").get<int>() << " features, out-of-fold R&#178; "
    << html_escape(report_format::fixed(ope.at("direct_method").at("out_of_fold_r2"), 3)) << ".</p>";
  s << "<div class=\"scroll\"><table class=\"compact\"><thead><tr><th>Policy</th><th>Logged</th><th>IPS</th><th>SNIPS</th><th>DM</th><th>DR</th>"
       "<th>ESS</th><th>Max weight</th><th>Min propensity</th></tr></thead><tbody>";
  for (const auto& res : ope.at("results")) {
    s << "<tr><th>" << html_escape(res.at("policy").get<std::string>()) << "</th>";
    for (const char* k : {"logged", "ips", "snips", "dm", "dr"}) {
      s << "<td>" << html_escape(report_format::interval_text(res.at(k), 3)) << "</td>";
    }
    s << "<td>" << html_escape(report_format::fixed(res.at("ess"), 0)) << " ("
      << html_escape(report_format::fixed(json(100.0 * res.at("ess_fraction").get<double>()), 1)) << " %)</td><td>"
      << html_escape(report_format::fixed(res.at("max_weight"), 1)) << "</td><td>"
      << html_escape(report_format::fixed(res.at("min_propensity"), 5)) << "</td></tr>";
  }
  s << "</tbody></table></div>";
  for (const auto& res : ope.at("results")) {
    for (const auto& w : res.at("warnings")) {
      s << "<p class=\"warning\"><b>" << html_escape(res.at("policy").get<std::string>()) << ":</b> "
        << html_escape(w.get<std::string>()) << "</p>";
    }
  }
  for (const auto& note : ope.at("direct_method").at("notes")) s << "<p class=\"warning\">" << html_escape(note.get<std::string>()) << "</p>";
  for (const auto& na : ope.at("not_evaluable")) {
    s << "<p class=\"note\"><code>" << html_escape(na.at("policy").get<std::string>()) << "</code> is not evaluable from logs: "
      << html_escape(na.at("reason").get<std::string>()) << ".</p>";
  }
  if (!ope.at("results").empty()) s << chart_ope(r);
  s << "</section>\n";
  return s.str();
}

bool has_learning_curve(const json& r) {
  for (const auto& p : r.at("policies")) {
    if (!p.at("checkpoint").is_null() && !p.at("checkpoint").at("learning_curve").empty()) return true;
  }
  return false;
}

constexpr const char* kStyle = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1b1b1b;
       margin: 0 auto; max-width: 1000px; padding: 24px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.meta { color: #555; margin: 0 0 12px; } code { font-size: 12.5px; background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; } th, td { padding: 4px 8px; border-bottom: 1px solid #eee; text-align: right; vertical-align: top; }
thead th { border-bottom: 2px solid #ccc; } tbody th { text-align: left; font-weight: 600; }
tr.diff th, tr.diff td { color: #555; font-size: 12px; border-bottom: 1px solid #ddd; }
td { white-space: nowrap; } table.compact td { white-space: normal; font-size: 12px; } td.wrap { white-space: normal; text-align: left; } table.left th, table.left td { text-align: left; }
td.good, li.good, tr.diff td.good { color: #0a6b2e; } td.bad, li.bad, tr.diff td.bad { color: #b00020; font-weight: 600; }
pre { white-space: pre-wrap; word-break: break-all; background: #f3f3f3; padding: 8px; border-radius: 4px; } pre code { background: none; }
.unit { font-weight: 400; color: #777; font-size: 11.5px; } .scroll { overflow-x: auto; }
figure.chart { margin: 18px 0; } figure.chart svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 12.5px; margin-top: 4px; }
svg text { font-family: inherit; font-size: 12px; fill: #222; } svg text.tick { font-size: 11px; fill: #555; }
svg text.axis { font-size: 12px; fill: #333; } svg text.small { font-size: 11px; fill: #444; } svg text.label { font-size: 12px; }
svg text.legend { font-size: 12px; }
.warning { background: #fff4e5; border-left: 4px solid #e69f00; padding: 6px 10px; }
.alert { background: #fdecee; border-left: 4px solid #b00020; padding: 6px 10px; }
.note { color: #555; } ul.verdict li { margin: 3px 0; }
footer { margin-top: 40px; color: #777; font-size: 12px; }
)css";

}  // namespace

std::vector<std::string> report_chart_ids(const json& r) {
  std::vector<std::string> ids = {"chart-return-distribution"};
  if (r.at("policies").size() > 1) ids.push_back("chart-return-difference");
  ids.insert(ids.end(), {"chart-archetypes", "chart-acceptance-by-slot", "chart-adherence-by-day", "chart-kcal-error-by-day"});
  if (has_learning_curve(r)) ids.push_back("chart-learning-curve");
  if (!r.at("off_policy").is_null() && !r.at("off_policy").at("results").empty()) ids.push_back("chart-ope");
  return ids;
}

std::string render_report_html(const json& r) {
  const auto& ps = r.at("policies");
  const auto& s = r.at("settings");
  const auto& env = r.at("environment");
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
       "<meta name=\"generator\" content=\"forkcast "
    << html_escape(r.at("forkcast_version").get<std::string>()) << "\"><title>forkcast evaluation: ";
  for (std::size_t i = 0; i < ps.size(); ++i) h << (i ? ", " : "") << html_escape(ps[i].at("label").get<std::string>());
  h << "</title><style>" << kStyle << "</style></head><body>\n";
  h << "<header><h1>Policy evaluation report</h1><p class=\"meta\">Generated " << html_escape(r.at("generated_at").get<std::string>())
    << " by forkcast " << html_escape(r.at("forkcast_version").get<std::string>()) << " &middot; MealSim, catalog <code>"
    << html_escape(report_format::short_hash(env.at("catalog_sha256").get<std::string>())) << "</code> ("
    << env.at("catalog_meals").get<int>() << " meals) &middot; " << s.at("users").get<int>() << " users &times; "
    << s.at("seeds").get<int>() << " seed(s), the same for every policy &middot; report schema "
    << html_escape(r.at("schema").get<std::string>()) << " v" << r.at("schema_version").get<int>() << "</p></header>\n";
  for (const auto& w : r.at("warnings")) h << "<p class=\"alert\"><b>Warning:</b> " << html_escape(w.get<std::string>()) << "</p>\n";

  h << "<section id=\"findings\"><h2>Key findings</h2>" << verdict(r) << "</section>\n";
  h << "<section id=\"summary\"><h2>Summary</h2><p>Each cell: value and its " << report_format::confidence_pct(r)
    << " % bootstrap interval over users; the row below: the paired difference to <b>"
    << html_escape(r.at("reference_policy").get<std::string>())
    << "</b> (green: better, red: worse, where the interval excludes 0 and the metric has a better direction; pp = percentage points).</p>"
    << summary_table(r) << "</section>\n";
  h << "<section id=\"returns\"><h2>Weekly return</h2>" << chart_return_distribution(r);
  if (ps.size() > 1) h << chart_return_difference(r);
  h << "</section>\n";
  h << "<section id=\"archetypes\"><h2>Per archetype</h2>" << chart_archetypes(r) << archetype_table(r) << "</section>\n";
  h << "<section id=\"acceptance\"><h2>Acceptance</h2>" << chart_acceptance_by_slot(r) << "</section>\n";
  h << "<section id=\"nutrition\"><h2>Nutrition adherence over the week</h2>"
    << chart_by_day(r, "chart-adherence-by-day", "Daily nutrition adherence", "adherence_by_day", 1.0, "adherence (0..1)", "", 1.0,
                    "Mean end-of-day adherence (1 = on the kcal target, enough protein, sodium under the limit) by day "
                    "of the week, over the weeks that reached the day (churned users drop out); vertical lines: " +
                        report_format::confidence_pct(r) + " % intervals.")
    << chart_by_day(r, "chart-kcal-error-by-day", "Daily calorie error", "kcal_error_by_day", 100.0, "|kcal - target|", " %", 0.0,
                    "Mean absolute difference between the day's kcal and the user's target, in % of the target, by day.")
    << "</section>\n";
  if (has_learning_curve(r)) h << "<section id=\"learning\"><h2>Learning curve</h2>" << chart_learning_curve(r) << "</section>\n";
  if (!r.at("off_policy").is_null()) h << ope_section(r);

  h << "<section id=\"policies\"><h2>Policies</h2><div class=\"scroll\"><table class=\"left\"><thead><tr><th>Policy</th><th>Kind</th><th>Description</th>"
       "<th>Checkpoint</th></tr></thead><tbody>";
  for (const auto& p : ps) {
    h << "<tr><th>" << html_escape(p.at("label").get<std::string>()) << "</th><td>" << html_escape(p.at("kind").get<std::string>())
      << "</td><td class=\"wrap\">" << html_escape(p.at("description").get<std::string>()) << "</td><td class=\"wrap\">";
    if (!p.at("checkpoint").is_null()) {
      const auto& c = p.at("checkpoint");
      h << "<code>" << html_escape(c.at("path").get<std::string>()) << "</code><br>sha256 <code>"
        << html_escape(report_format::short_hash(c.at("sha256").get<std::string>())) << "</code>, "
        << html_escape(c.at("format").get<std::string>());
    } else {
      h << "&mdash;";
    }
    h << "</td></tr>";
  }
  h << "</tbody></table></div></section>\n";
  h << "<section id=\"method\"><h2>Method</h2><p>Every policy ran on the same " << s.at("users").get<int>()
    << " simulated users (user <i>u</i> has seed " << s.at("base_seed").get<std::uint64_t>() << " + <i>u</i>) and "
    << s.at("seeds").get<int>()
    << " seed(s) per user; MealSim draws the same coins at every step whatever the policy does, so the comparison "
       "is paired (common random numbers). Metrics are ratios of sums over users; intervals are percentile bootstraps "
       "that resample users ("
    << s.at("bootstrap_resamples").get<int>() << " resamples, seed " << s.at("bootstrap_seed").get<std::uint64_t>()
    << "), with the same resampled users for every policy. Every suggestion was checked against the user's mask before "
       "it was applied. Definitions: docs/evaluation.md.</p><p>Reproduce:</p><pre><code>"
    << html_escape(r.at("command").get<std::string>()) << "</code></pre></section>\n";
  h << "<footer>forkcast " << html_escape(r.at("forkcast_version").get<std::string>()) << " &middot; population sha256 <code>"
    << html_escape(report_format::short_hash(env.at("population_sha256").get<std::string>())) << "</code> &middot; evaluated in "
    << html_escape(report_format::fixed(s.at("wall_s"), 1)) << " s</footer>\n</body></html>\n";
  return h.str();
}

}  // namespace forkcast::evaluation
