// Number formatting shared by the report renderers (private to policy/src). Every function
// reads the report JSON; a null or missing number prints as an em dash.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace forkcast::evaluation::report_format {

// The metric_definitions entry of `key`; throws std::out_of_range for an unknown key.
const nlohmann::json& metric_def(const nlohmann::json& report, std::string_view key);

// "12.3" with `decimals` decimals, or "—" when v is not a number.
std::string fixed(const nlohmann::json& v, int decimals);
// "+1.2" / "−0.4" (explicit sign).
std::string signed_fixed(double v, int decimals);

// An estimate's value in the metric's display unit ("41.2 %" for percentages).
std::string value(const nlohmann::json& report, std::string_view key, const nlohmann::json& estimate);
// "25.68 [25.12, 26.21]".
std::string value_ci(const nlohmann::json& report, std::string_view key, const nlohmann::json& estimate);
// "+3.71 [+3.40, +4.02]" (percentage points for percent metrics), "—" for the reference.
std::string diff_ci(const nlohmann::json& report, std::string_view key, const nlohmann::json& estimate);
// An OPE interval {"value", "ci"}: "1.234 [1.100, 1.301]".
std::string interval_text(const nlohmann::json& interval, int decimals);

// The first 12 hex digits of a hash.
std::string short_hash(const std::string& hash);
// "95" for confidence 0.95.
std::string confidence_pct(const nlohmann::json& report);

std::string html_escape(std::string_view text);

}  // namespace forkcast::evaluation::report_format
