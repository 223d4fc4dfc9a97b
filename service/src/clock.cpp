// Times on the wire: RFC 3339 date-times in, UTC date-times and dates out.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>

#include "api.hpp"
#include "clock.hpp"

namespace forkcast::service {

using nlohmann::json;

db::Timestamp parse_time(const std::string& text, const std::string& field) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, consumed = 0;
  const auto bad = [&] {
    return bad_request("invalid_value", field + ": \"" + text.substr(0, 40) +
                                            "\" is not an RFC 3339 date-time like 2026-12-01T12:30:00Z", field);
  };
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6 || consumed != 19) {
    throw bad();
  }
  std::string_view rest = std::string_view(text).substr(19);
  std::int64_t micros = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 6) micros = micros * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    if (digits == 0) throw bad();
    for (int i = digits; i < 6; ++i) micros *= 10;
  }
  int offset_min = 0;
  if (rest == "Z" || rest == "z") {
    offset_min = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh = 0, om = 0;
    if (std::from_chars(rest.data() + 1, rest.data() + 3, oh).ec != std::errc() ||
        std::from_chars(rest.data() + 4, rest.data() + 6, om).ec != std::errc() || oh > 23 || om > 59) {
      throw bad();
    }
    offset_min = (rest[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    throw bad();
  }
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60 || y < 1970 || y > 9999) throw bad();
  const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{std::min(s, 59)} - minutes{offset_min};
  return db::Timestamp{duration_cast<microseconds>(t.time_since_epoch()) + microseconds{micros}};
}

db::Timestamp parse_recent_time(const std::string& text, const std::string& field) {
  const db::Timestamp t = parse_time(text, field);
  const db::Timestamp now = db::now_timestamp();
  if (t < now - std::chrono::days{14} || t > now + std::chrono::days{14}) {
    throw bad_request("out_of_range", field + ": \"" + text.substr(0, 40) + "\" is more than 14 days from now", field);
  }
  return t;
}

db::Timestamp parse_request_time(const std::string& text, const std::string& field, bool simulation_clock) {
  return simulation_clock ? parse_time(text, field) : parse_recent_time(text, field);
}

std::string format_time(db::Timestamp t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto time = t - day;
  const auto h = duration_cast<hours>(time);
  const auto m = duration_cast<minutes>(time - h);
  const auto sec = duration_cast<seconds>(time - h - m);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), static_cast<int>(h.count()),
                static_cast<int>(m.count()), static_cast<int>(sec.count()));
  return buf;
}

std::string format_date(std::int64_t day_number) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{days{day_number}}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

}  // namespace forkcast::service
