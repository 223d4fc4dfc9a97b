#include "repositories/support.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "forkcast/db/repositories.hpp"

namespace forkcast::db {
namespace {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      extra = 3;
    } else {
      return false;
    }
    if (i + extra >= s.size() && extra > 0) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    // The second byte's range excludes overlong forms (E0, F0), UTF-16 surrogates (ED) and
    // code points above U+10FFFF (F4): what PostgreSQL and nlohmann::json both refuse.
    const auto second = extra > 0 ? static_cast<unsigned char>(s[i + 1]) : 0;
    if ((c == 0xE0 && second < 0xA0) || (c == 0xED && second > 0x9F) || (c == 0xF0 && second < 0x90) ||
        (c == 0xF4 && second > 0x8F)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

std::string shown(std::string_view value) {
  constexpr std::size_t kMax = 80;
  std::string out = "\"";
  for (char c : value.substr(0, kMax))
    out += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?';
  return out + (value.size() > kMax ? "...\"" : "\"");
}

void require_text(std::string_view value, std::string_view field, std::size_t max_bytes,
                  bool allow_empty) {
  if (value.empty() && !allow_empty)
    throw std::invalid_argument(std::string(field) + ": must not be empty");
  if (value.size() > max_bytes) {
    throw std::invalid_argument(std::string(field) + ": " + shown(value) + " is longer than " +
                                std::to_string(max_bytes) + " bytes");
  }
  if (value.find('\0') != std::string_view::npos || !valid_utf8(value)) {
    throw std::invalid_argument(std::string(field) + ": " + shown(value) +
                                " is not valid UTF-8 text");
  }
}

void require_uuid(std::string_view value, std::string_view field) {
  if (!is_uuid(value))
    throw std::invalid_argument(std::string(field) + ": " + shown(value) + " is not a UUID");
}

void require_hex64(std::string_view value, std::string_view field) {
  const bool ok = value.size() == 64 && std::all_of(value.begin(), value.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (!ok)
    throw std::invalid_argument(std::string(field) + ": " + shown(value) +
                                " is not 64 lowercase hex digits");
}

void require_object(const nlohmann::json& value, std::string_view field) {
  if (!value.is_object()) {
    throw std::invalid_argument(std::string(field) + ": must be a JSON object, not " +
                                value.type_name());
  }
}

void validate_version(std::string_view version) {
  const bool ok =
      !version.empty() && version.size() <= 128 &&
      std::isalnum(static_cast<unsigned char>(version[0])) &&
      std::all_of(version.begin(), version.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
      });
  if (!ok) {
    throw std::invalid_argument(
        "version: " + shown(version) +
        " must be 1..128 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
}

std::string json_text(const nlohmann::json& value, std::string_view field) {
  try {
    return value.dump();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string(field) + ": " + e.what());
  }
}

std::optional<Timestamp> optional_time(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return from_us(f.as<std::int64_t>());
}

std::optional<std::string> optional_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

nlohmann::json json_of(const pqxx::field& f) {
  return f.is_null() ? nlohmann::json() : nlohmann::json::parse(f.c_str());
}

std::vector<PreparedStatement> repository_statements() {
  std::vector<PreparedStatement> out;
  out.reserve(static_cast<std::size_t>(sql::kAllCount));
  for (int i = 0; i < sql::kAllCount; ++i) out.push_back({sql::kAll[i]->name, sql::kAll[i]->text});
  return out;
}

bool is_uuid(std::string_view text) noexcept {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
      return false;
    }
  }
  return true;
}

}  // namespace forkcast::db
