// The decision journal's on-disk records (decision_journal.hpp writes and replays them).
//
// A journal segment is a sequence of frames:  u32 payload length | u32 CRC-32C of the
// payload | payload, all little-endian. The first frame of a segment is its meal table (tag
// 'C': the catalog's meal ids in index order, so that a segment written against one catalog
// replays correctly after `catalog import` changed it); every other frame is one decision
// (tag 'D': a PendingDecision, candidates as indices into that table).
//
// A crash can leave the last frame half-written; FrameReader stops at the first frame that
// is short or whose checksum does not match (torn_bytes() says how much it skipped), so a
// torn tail costs exactly the decision whose response was never sent.
//
// Decoding never trusts the bytes: every length is bounded by what is left, every index by
// its table; a malformed payload gives false / nullopt, never undefined behaviour (fuzzed by
// tests/fuzz/fuzz_journal.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pending_decision.hpp"

namespace forkcast::service::journal {

inline constexpr std::size_t kFrameHeaderBytes = 8;
// Decision frames: 1 (the first release); 2 adds the candidates' recency and the catalog
// version after the observation's tail; 3 adds the softmax temperature at the end. All are
// read; 3 is written.
inline constexpr std::uint8_t kDecisionFormat = 3;
// A decision frame is a few kB; anything claiming more than this is corruption.
inline constexpr std::uint32_t kMaxPayloadBytes = 16u << 20;

// CRC-32C (Castagnoli), as iSCSI and ext4 use it; crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(std::span<const std::byte> bytes);

// Append one frame to `out` (which keeps its capacity: the request path reuses one buffer).
void append_catalog_frame(std::span<const std::string> meal_ids, std::string& out);
void append_decision_frame(const PendingDecision& decision, std::string& out);

// Reads the frames of one segment's bytes (which must outlive the reader).
class FrameReader {
 public:
  explicit FrameReader(std::string_view bytes) : bytes_(bytes) {}
  // The next frame's payload, or nullopt at the end or at the first damaged frame.
  std::optional<std::string_view> next();
  // Bytes after the last good frame (a torn or corrupted tail); 0 after a clean end.
  std::size_t torn_bytes() const { return bytes_.size() - offset_; }

 private:
  std::string_view bytes_;
  std::size_t offset_ = 0;
};

// The meal ids of a catalog frame's payload; nullopt when it is not a well-formed one.
std::optional<std::vector<std::string>> decode_catalog(std::string_view payload);
// Fills `out` (every field) from a decision frame's payload; false when it is not a
// well-formed one (candidate indices are checked against `meal_count`).
bool decode_decision(std::string_view payload, std::size_t meal_count, PendingDecision& out);

}  // namespace forkcast::service::journal
