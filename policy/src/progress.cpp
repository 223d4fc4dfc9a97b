#include "forkcast/policy/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace forkcast::policy {

ProgressReporter::ProgressReporter(std::FILE* out, std::string unit, double log_interval_s)
    : ProgressReporter(out, std::move(unit), log_interval_s, isatty(fileno(out)) != 0) {}

ProgressReporter::ProgressReporter(std::FILE* out, std::string unit, double log_interval_s, bool interactive)
    : out_(out),
      unit_(std::move(unit)),
      log_interval_s_(log_interval_s),
      interactive_(interactive),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

std::string ProgressReporter::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<long long>(std::llround(seconds));
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", total / 3600, (total / 60) % 60, total % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", total / 60, total % 60);
  }
  return buf;
}

void ProgressReporter::update(const ProgressFields& fields) {
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (interactive_ ? 0.1 : log_interval_s_)) return;
  last_draw_ = now;
  draw(fields, false);
}

void ProgressReporter::finish(const ProgressFields& fields) { draw(fields, true); }

void ProgressReporter::draw(const ProgressFields& f, bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = f.total > 0 ? std::clamp(static_cast<double>(f.done) / static_cast<double>(f.total), 0.0, 1.0) : 0.0;
  const double eta = fraction > 0 ? elapsed * (1.0 - fraction) / fraction : NAN;
  char stats[160];
  std::snprintf(stats, sizeof stats, "%lld/%lld %s  %.2f M steps/s  ret100 %.2f  eps %.3f  %s %s",
                static_cast<long long>(f.done), static_cast<long long>(f.total), unit_.c_str(), f.steps_per_s / 1e6,
                f.mean_return, f.epsilon, final ? "elapsed" : "ETA", format_duration(final ? elapsed : eta).c_str());
  if (interactive_) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(kWidth), ' ');
    for (int i = 0; i < filled; ++i) bar[static_cast<std::size_t>(i)] = '=';
    if (filled < kWidth) bar[static_cast<std::size_t>(filled)] = '>';
    std::fprintf(out_, "\r[%s] %s\033[K%s", bar.c_str(), stats, final ? "\n" : "");
  } else {
    std::fprintf(out_, "progress: %s\n", stats);
  }
  std::fflush(out_);
}

}  // namespace forkcast::policy
