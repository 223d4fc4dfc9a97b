// Progress of long work (training, evaluation). On a terminal: one line redrawn in place,
//   [=========>          ] 12 000/25 000 ep  1.9 M steps/s  ret100 7.41  eps 0.051  ETA 0:03
// Otherwise (a pipe, a CI log): a plain line every `log_interval_s` seconds, so logs stay
// readable. Written by hand: no Debian-packaged library does this small thing well.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace forkcast::policy {

struct ProgressFields {
  std::int64_t done = 0;
  std::int64_t total = 0;
  double steps_per_s = 0;
  double mean_return = 0;  // over the last 100 episodes
  double epsilon = 0;
};

class ProgressReporter {
 public:
  // `out` is usually stderr; `interactive` defaults to isatty(out).
  explicit ProgressReporter(std::FILE* out, std::string unit = "ep", double log_interval_s = 5.0);
  ProgressReporter(std::FILE* out, std::string unit, double log_interval_s, bool interactive);

  // Cheap to call often: draws at most ~10 times a second on a terminal.
  void update(const ProgressFields& fields);
  // Draws the final state and ends the line.
  void finish(const ProgressFields& fields);

  static std::string format_duration(double seconds);  // "1:02:03" or "2:03"

 private:
  void draw(const ProgressFields& fields, bool final);

  std::FILE* out_;
  std::string unit_;
  double log_interval_s_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace forkcast::policy
