#include "journal_record.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <type_traits>

namespace forkcast::service::journal {

namespace {

constexpr char kCatalogTag = 'C';
constexpr char kDecisionTag = 'D';
constexpr std::uint8_t kCatalogFormat = 1;

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? (c >> 1) ^ 0x82F63B78U : c >> 1;  // reflected Castagnoli
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// ---- little-endian writing ---------------------------------------------------------------

template <typename T>
void put(std::string& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  using U = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                               std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                                  std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
  static_assert(sizeof(U) == sizeof(T));
  const U bits = std::bit_cast<U>(value);
  for (std::size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

void put_string(std::string& out, std::string_view s) {
  put<std::uint16_t>(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}

// Reserves the frame header, lets `fill` write the payload, then writes length and CRC.
template <typename Fill>
void append_frame(std::string& out, Fill&& fill) {
  const std::size_t header = out.size();
  out.append(kFrameHeaderBytes, '\0');
  fill(out);
  const std::size_t length = out.size() - header - kFrameHeaderBytes;
  const auto* payload = reinterpret_cast<const std::byte*>(out.data() + header + kFrameHeaderBytes);
  const std::uint32_t crc = crc32c({payload, length});
  const auto length32 = static_cast<std::uint32_t>(length);
  for (std::size_t i = 0; i < 4; ++i) {
    out[header + i] = static_cast<char>((length32 >> (8 * i)) & 0xFF);
    out[header + 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  }
}

// ---- bounded reading ---------------------------------------------------------------------

class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  bool get(T& value) {
    using U = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                                 std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                                    std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    if (bytes_.size() - offset_ < sizeof(U)) return false;
    U bits = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) {
      bits |= static_cast<U>(static_cast<U>(static_cast<unsigned char>(bytes_[offset_ + i])) << (8 * i));
    }
    offset_ += sizeof(U);
    value = std::bit_cast<T>(bits);
    return true;
  }
  bool get_string(std::string& s) {
    std::uint16_t n = 0;
    if (!get(n) || bytes_.size() - offset_ < n) return false;
    s.assign(bytes_.data() + offset_, n);
    offset_ += n;
    return true;
  }
  // A count of `element_bytes`-sized items that must fit in what is left.
  bool get_count(std::uint32_t& n, std::size_t element_bytes) {
    return get(n) && static_cast<std::uint64_t>(n) * element_bytes <= bytes_.size() - offset_;
  }
  bool at_end() const { return offset_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  std::size_t offset_ = 0;
};

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> bytes) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (const std::byte b : bytes) c = kCrcTable[(c ^ static_cast<std::uint32_t>(b)) & 0xFFU] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

void append_catalog_frame(std::span<const std::string> meal_ids, std::string& out) {
  append_frame(out, [&](std::string& o) {
    o.push_back(kCatalogTag);
    put<std::uint8_t>(o, kCatalogFormat);
    put<std::uint32_t>(o, static_cast<std::uint32_t>(meal_ids.size()));
    for (const auto& id : meal_ids) put_string(o, id);
  });
}

void append_decision_frame(const PendingDecision& d, std::string& out) {
  append_frame(out, [&](std::string& o) {
    o.push_back(kDecisionTag);
    put<std::uint8_t>(o, kDecisionFormat);
    put_string(o, d.event_id);
    put_string(o, d.user_id);
    put_string(o, d.model_version);
    put<std::int64_t>(o, d.decided_at.time_since_epoch().count());
    put<std::uint8_t>(o, static_cast<std::uint8_t>(d.slot));
    put<double>(o, d.epsilon);
    const auto n = static_cast<std::uint32_t>(d.candidates.size());
    put<std::uint32_t>(o, n);
    for (const std::int32_t c : d.candidates) put<std::int32_t>(o, c);
    for (std::size_t i = 0; i < n; ++i) put<float>(o, i < d.scores.size() ? d.scores[i] : 0.0F);
    for (std::size_t i = 0; i < n; ++i) put<double>(o, i < d.probabilities.size() ? d.probabilities[i] : 0.0);
    put<std::uint32_t>(o, static_cast<std::uint32_t>(d.chosen));
    put<std::uint32_t>(o, static_cast<std::uint32_t>(d.greedy));
    put<std::uint32_t>(o, static_cast<std::uint32_t>(d.ranked.size()));
    for (const std::size_t r : d.ranked) put<std::uint32_t>(o, static_cast<std::uint32_t>(r));
    put<std::uint32_t>(o, static_cast<std::uint32_t>(d.observation.size()));
    for (const float x : d.observation) put<float>(o, x);
    put<std::uint64_t>(o, d.draw_seed);
    put<std::int64_t>(o, d.step);
    put<std::int32_t>(o, d.n);
    // Format 2: as many recencies as candidates, or none.
    const bool with_recency = d.recency.size() == n;
    put<std::uint32_t>(o, with_recency ? n : 0U);
    if (with_recency) {
      for (const float r : d.recency) put<float>(o, r);
    }
    put_string(o, d.catalog_version);
    put<double>(o, d.temperature);  // format 3
  });
}

std::optional<std::string_view> FrameReader::next() {
  if (bytes_.size() - offset_ < kFrameHeaderBytes) return std::nullopt;
  Cursor head(bytes_.substr(offset_, kFrameHeaderBytes));
  std::uint32_t length = 0, crc = 0;
  head.get(length);
  head.get(crc);
  if (length > kMaxPayloadBytes || bytes_.size() - offset_ - kFrameHeaderBytes < length) return std::nullopt;
  const std::string_view payload = bytes_.substr(offset_ + kFrameHeaderBytes, length);
  if (crc32c({reinterpret_cast<const std::byte*>(payload.data()), payload.size()}) != crc) return std::nullopt;
  offset_ += kFrameHeaderBytes + length;
  return payload;
}

std::optional<std::vector<std::string>> decode_catalog(std::string_view payload) {
  Cursor in(payload);
  char tag = 0;
  std::uint8_t version = 0;
  std::uint32_t n = 0;
  if (!in.get(tag) || tag != kCatalogTag || !in.get(version) || version != kCatalogFormat) return std::nullopt;
  if (!in.get_count(n, 2)) return std::nullopt;  // every id has at least its 2-byte length
  std::vector<std::string> ids(n);
  for (auto& id : ids) {
    if (!in.get_string(id)) return std::nullopt;
  }
  if (!in.at_end()) return std::nullopt;
  return ids;
}

bool decode_decision(std::string_view payload, std::size_t meal_count, PendingDecision& out) {
  Cursor in(payload);
  char tag = 0;
  std::uint8_t version = 0, slot = 0;
  if (!in.get(tag) || tag != kDecisionTag || !in.get(version) || version < 1 || version > kDecisionFormat) return false;
  std::int64_t micros = 0;
  if (!in.get_string(out.event_id) || !in.get_string(out.user_id) || !in.get_string(out.model_version) ||
      !in.get(micros) || !in.get(slot) || slot >= env::kSlotNames.size() || !in.get(out.epsilon)) {
    return false;
  }
  out.decided_at = db::Timestamp(std::chrono::microseconds(micros));
  out.slot = static_cast<env::Slot>(slot);
  std::uint32_t n = 0;
  if (!in.get_count(n, 4 + 4 + 8) || n == 0) return false;
  out.candidates.resize(n);
  out.scores.resize(n);
  out.probabilities.resize(n);
  for (auto& c : out.candidates) {
    if (!in.get(c) || c < 0 || static_cast<std::size_t>(c) >= meal_count) return false;
  }
  for (auto& s : out.scores) in.get(s);  // fit: checked by get_count
  for (auto& p : out.probabilities) in.get(p);
  std::uint32_t chosen = 0, greedy = 0, ranked = 0;
  if (!in.get(chosen) || !in.get(greedy) || chosen >= n || greedy >= n || !in.get_count(ranked, 4)) return false;
  out.chosen = chosen;
  out.greedy = greedy;
  out.ranked.resize(ranked);
  for (auto& r : out.ranked) {
    std::uint32_t i = 0;
    in.get(i);
    if (i >= n) return false;
    r = i;
  }
  std::uint32_t features = 0;
  if (!in.get(features) || features != out.observation.size()) return false;
  for (auto& x : out.observation) {
    if (!in.get(x)) return false;
  }
  if (!in.get(out.draw_seed) || !in.get(out.step) || !in.get(out.n)) return false;
  out.recency.clear();
  out.catalog_version.clear();
  out.temperature = 0;
  if (version >= 2) {
    std::uint32_t recencies = 0;
    if (!in.get_count(recencies, 4) || (recencies != 0 && recencies != n)) return false;
    out.recency.resize(recencies);
    for (auto& r : out.recency) in.get(r);  // fit: checked by get_count
    if (!in.get_string(out.catalog_version)) return false;
  }
  if (version >= 3 && (!in.get(out.temperature) || !(out.temperature >= 0.0) || !std::isfinite(out.temperature))) {
    return false;
  }
  return in.at_end();
}

}  // namespace forkcast::service::journal
