// PostgreSQL's binary wire format for one-dimensional arrays (array_recv), so that large
// lists of numbers reach the server without being printed here and parsed there. A value
// built here is sent as a binary parameter (pqxx::binarystring) to a statement that casts
// that parameter to the matching array type, e.g. $3::real[]. Internal to db/.
//
// Layout (all integers big-endian): ndim, has-nulls flag, element type OID, then per
// dimension its length and lower bound (1), then per element its byte length and bytes.
// An empty array is ndim 0 with no dimension words.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace forkcast::db::pg_binary {

// Element type OIDs (pg_type.oid; fixed for built-in types).
inline constexpr std::uint32_t kInt4 = 23, kInt8 = 20, kText = 25, kFloat4 = 700, kFloat8 = 701, kUuid = 2950;

class ArrayWriter {
 public:
  explicit ArrayWriter(std::uint32_t element_oid) : oid_(element_oid) {
    bytes_.reserve(64);
    put32(1);  // ndim, patched to 0 by finish() when empty
    put32(0);  // no nulls
    put32(oid_);
    put32(0);  // length, patched by finish()
    put32(1);  // lower bound
  }

  void add_int4(std::int32_t v) { put32(4); put32(static_cast<std::uint32_t>(v)); ++count_; }
  void add_int8(std::int64_t v) { put32(8); put64(static_cast<std::uint64_t>(v)); ++count_; }
  void add_float4(float v) { put32(4); put32(std::bit_cast<std::uint32_t>(v)); ++count_; }
  void add_float8(double v) { put32(8); put64(std::bit_cast<std::uint64_t>(v)); ++count_; }
  void add_text(std::string_view s) {
    put32(static_cast<std::uint32_t>(s.size()));
    bytes_.append(s);
    ++count_;
  }
  // `canonical` is a validated 8-4-4-4-12 hex UUID.
  void add_uuid(std::string_view canonical) {
    put32(16);
    int high = -1;
    for (const char c : canonical) {
      if (c == '-') continue;
      const int nibble = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
      if (high < 0) {
        high = nibble;
      } else {
        bytes_.push_back(static_cast<char>((high << 4) | nibble));
        high = -1;
      }
    }
    ++count_;
  }

  std::size_t size() const noexcept { return count_; }

  // The finished value; the writer is left empty.
  std::string finish() {
    if (count_ == 0) {
      std::string empty;
      const std::uint32_t words[3] = {0, 0, oid_};
      for (const std::uint32_t w : words) append_be32(empty, w);
      bytes_.clear();
      return empty;
    }
    patch32(12, static_cast<std::uint32_t>(count_));
    count_ = 0;
    return std::move(bytes_);
  }

 private:
  static void append_be32(std::string& out, std::uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
    out.append(b, 4);
  }
  void put32(std::uint32_t v) { append_be32(bytes_, v); }
  void put64(std::uint64_t v) {
    put32(static_cast<std::uint32_t>(v >> 32));
    put32(static_cast<std::uint32_t>(v));
  }
  void patch32(std::size_t at, std::uint32_t v) {
    bytes_[at] = static_cast<char>(v >> 24);
    bytes_[at + 1] = static_cast<char>(v >> 16);
    bytes_[at + 2] = static_cast<char>(v >> 8);
    bytes_[at + 3] = static_cast<char>(v);
  }

  std::uint32_t oid_;
  std::string bytes_;
  std::size_t count_ = 0;
};

}  // namespace forkcast::db::pg_binary
