// The decision journal: what makes an answered recommendation survive a crash.
//
// The decision log (decision_log.hpp) stores decisions in PostgreSQL a few milliseconds after
// their responses. Before the response is written, the decision is also appended to a local
// journal file (one write(2) of a few kB into the page cache, no fsync); a process killed
// with SIGKILL, aborted or out of memory leaves its journal behind, and the next process on
// the same directory stores what it finds there before it serves (ON CONFLICT DO NOTHING:
// decisions stored before the crash are skipped). Once the log has stored every decision of
// a segment the segment is deleted, so the journal holds about the last segment's worth.
//
// What it does not cover: a machine that loses power loses what the kernel had not yet
// written back (at most ~30 s of decisions by Linux's default dirty-page expiry), since the
// journal is not fsynced per response; docs/security.md says so.
//
// Files: `<dir>/lock` (flock: one process per directory, a second gets JournalError) and
// `<dir>/decisions-<counter>.fcj` segments, journal_record.hpp's frames.
// Thread-safe; append() is called from request threads, release_through() from the log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "forkcast/db/repositories.hpp"

namespace forkcast::service {

class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a journal left by an earlier process held, and what replaying it did.
struct JournalReplay {
  std::size_t segments = 0;     // segment files found
  std::size_t decisions = 0;    // well-formed decision frames in them
  std::size_t stored = 0;       // of those, newly stored (the rest were stored before the crash)
  std::size_t dropped = 0;      // refused by the database for their content (logged)
  std::size_t torn_bytes = 0;   // bytes after the last good frame (a write cut off by the crash)
  std::size_t undecodable = 0;  // frames with a good checksum that do not decode (never expected)
};

class DecisionJournal {
 public:
  // Segments roll over at this size; a finished one is deleted once all its decisions are stored.
  static constexpr std::size_t kDefaultSegmentBytes = 8u << 20;

  // Opens (creating) `dir` and takes its lock (JournalError naming the directory when another
  // process holds it, or when it cannot be created or written), reads what an earlier
  // process left there (see replay), and starts this process's first segment, whose meal
  // table is `meal_ids` (the catalog's ids in index order).
  DecisionJournal(std::filesystem::path dir, std::vector<std::string> meal_ids,
                  std::size_t segment_bytes = kDefaultSegmentBytes);
  ~DecisionJournal();
  DecisionJournal(const DecisionJournal&) = delete;
  DecisionJournal& operator=(const DecisionJournal&) = delete;

  const std::filesystem::path& directory() const { return dir_; }

  // Stores the decisions an earlier process left (batches through `repository`, ON CONFLICT
  // DO NOTHING) and deletes their segments. Call once, before serving. Throws what the
  // repository throws when the database is unavailable (the segments then stay for the
  // next start).
  JournalReplay replay(db::DecisionRepository& repository);

  // Appends one encoded decision frame (journal::append_decision_frame) as decision
  // `sequence` of the log. True once the whole frame is in the file; false when it could not
  // be written (disk full, I/O error: logged, the file is cut back to its last whole frame).
  bool append(std::uint64_t sequence, std::string_view frame);
  // Every decision with a sequence <= `sequence` is stored or given up: finished segments
  // holding only those are deleted.
  void release_through(std::uint64_t sequence);
  // Everything appended is stored: every segment, the current one too, is deleted (a clean
  // shutdown leaves an empty journal).
  void release_all();

  std::uint64_t failed_appends() const;
  // Segment files of this process now on disk (for tests and /metrics).
  std::size_t live_segments() const;

 private:
  struct Segment {
    std::filesystem::path path;
    std::uint64_t max_sequence = 0;
  };
  bool open_segment();  // with mutex_ held; false (logged) when the file cannot be started
  void close_segment();  // with mutex_ held: the current segment joins finished_

  std::filesystem::path dir_;
  std::vector<std::string> meal_ids_;
  std::size_t segment_bytes_;
  int lock_fd_ = -1;
  std::vector<std::filesystem::path> leftover_;  // an earlier process's segments, oldest first
  mutable std::mutex mutex_;
  int fd_ = -1;                  // the current segment (-1: none; the next append opens one)
  Segment current_;
  std::size_t current_bytes_ = 0;
  std::deque<Segment> finished_;  // closed segments, oldest first
  std::uint64_t next_counter_ = 0;
  std::uint64_t failed_ = 0;
  bool warned_ = false;  // one error line per run of failures, not one per request
};

}  // namespace forkcast::service
