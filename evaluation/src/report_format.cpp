#include "report_format.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace forkcast::evaluation::report_format {

using nlohmann::json;

namespace {

bool is_num(const json& v) { return v.is_number(); }

double scale_of(const json& def) { return def.at("percent").get<bool>() ? 100.0 : 1.0; }

std::string suffix_of(const json& def) { return def.at("percent").get<bool>() ? " %" : ""; }

}  // namespace

const json& metric_def(const json& report, std::string_view key) {
  for (const auto& d : report.at("metric_definitions")) {
    if (d.at("key").get<std::string>() == key) return d;
  }
  throw std::out_of_range("report has no metric \"" + std::string(key) + "\"");
}

std::string fixed(const json& v, int decimals) {
  if (!is_num(v)) return "—";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v.get<double>());
  return buf;
}

std::string signed_fixed(double v, int decimals) {
  char buf[64];
  // A value that rounds to zero prints without a misleading sign.
  if (std::abs(v) < 0.5 * std::pow(10.0, -decimals)) v = 0.0;
  std::snprintf(buf, sizeof buf, "%+.*f", decimals, v);
  std::string s = buf;
  if (s[0] == '-') s = "\u2212" + s.substr(1);
  return s;
}

std::string value(const json& report, std::string_view key, const json& estimate) {
  const auto& def = metric_def(report, key);
  const json& v = estimate.at("value");
  if (!is_num(v)) return "—";
  return fixed(json(v.get<double>() * scale_of(def)), def.at("decimals").get<int>()) + suffix_of(def);
}

std::string value_ci(const json& report, std::string_view key, const json& estimate) {
  const auto& def = metric_def(report, key);
  const json& v = estimate.at("value");
  if (!is_num(v)) return "—";
  const double s = scale_of(def);
  const int dec = def.at("decimals").get<int>();
  const auto& ci = estimate.at("ci");
  std::string out = fixed(json(v.get<double>() * s), dec);
  if (ci.is_array() && is_num(ci[0]) && is_num(ci[1])) {
    out += " [" + fixed(json(ci[0].get<double>() * s), dec) + ", " + fixed(json(ci[1].get<double>() * s), dec) + "]";
  }
  return out + suffix_of(def);
}

std::string diff_ci(const json& report, std::string_view key, const json& estimate) {
  const auto& def = metric_def(report, key);
  const json& d = estimate.at("diff");
  if (!is_num(d)) return "—";
  const double s = scale_of(def);
  const int dec = def.at("decimals").get<int>();
  std::string out = signed_fixed(d.get<double>() * s, dec);
  const auto& ci = estimate.at("diff_ci");
  if (ci.is_array() && is_num(ci[0]) && is_num(ci[1])) {
    out += " [" + signed_fixed(ci[0].get<double>() * s, dec) + ", " + signed_fixed(ci[1].get<double>() * s, dec) + "]";
  }
  return out + (def.at("percent").get<bool>() ? " pp" : "");
}

std::string interval_text(const json& interval, int decimals) {
  const json& v = interval.at("value");
  if (!is_num(v)) return "—";
  std::string out = fixed(v, decimals);
  const auto& ci = interval.at("ci");
  if (ci.is_array() && is_num(ci[0]) && is_num(ci[1])) out += " [" + fixed(ci[0], decimals) + ", " + fixed(ci[1], decimals) + "]";
  return out;
}

std::string short_hash(const std::string& hash) { return hash.substr(0, 12); }

std::string confidence_pct(const json& report) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%g", 100.0 * report.at("settings").at("confidence").get<double>());
  return buf;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

}  // namespace forkcast::evaluation::report_format
