// Times on the wire. Errors are 400s naming the request field.
#pragma once

#include <cstdint>
#include <string>

#include "forkcast/db/records.hpp"

namespace forkcast::service {

// Parses RFC 3339 date-times ("2026-12-01T12:30:00Z", "...+02:00"); 400 naming `field`.
db::Timestamp parse_time(const std::string& text, const std::string& field);
// parse_time, limited to 14 days either side of now: a user's state only moves
// forward, so a time far ahead would freeze it there (400 naming `field` otherwise).
db::Timestamp parse_recent_time(const std::string& text, const std::string& field);
// A request's `time`: parse_recent_time, or parse_time with no window when the service runs
// on simulated time (server.simulation_clock).
db::Timestamp parse_request_time(const std::string& text, const std::string& field, bool simulation_clock);
// "YYYY-MM-DDTHH:MM:SSZ" in UTC.
std::string format_time(db::Timestamp t);
// "YYYY-MM-DD" of a day number (days since 1970-01-01).
std::string format_date(std::int64_t day);

}  // namespace forkcast::service
