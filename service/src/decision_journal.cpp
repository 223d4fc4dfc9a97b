#include "decision_journal.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "forkcast/db/errors.hpp"
#include "journal_record.hpp"
#include "pending_decision.hpp"

namespace forkcast::service {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kReplayBatch = 512;
constexpr std::string_view kSegmentPrefix = "decisions-";
constexpr std::string_view kSegmentSuffix = ".fcj";

std::string errno_text() { return std::strerror(errno); }

bool is_segment(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.starts_with(kSegmentPrefix) && name.ends_with(kSegmentSuffix);
}

// Writes all of `bytes` at the end of `fd`; false (errno set) on any failure.
bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = EIO;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw JournalError("decision journal: cannot read " + path.string() + ": " + errno_text());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return std::move(bytes).str();
}

// Stores `rows` (ON CONFLICT DO NOTHING); a batch the database refuses for its content is
// stored one decision at a time, so only the bad ones are dropped. DatabaseUnavailable
// propagates.
void store_rows(db::DecisionRepository& repository, const std::vector<db::Decision>& rows, JournalReplay& result) {
  try {
    result.stored += repository.record_batch(rows);
    return;
  } catch (const db::DatabaseUnavailable&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::warn("decision journal: a replayed batch of {} was refused ({}); storing one at a time", rows.size(), e.what());
  }
  for (const auto& row : rows) {
    try {
      result.stored += repository.record_batch(std::span<const db::Decision>(&row, 1));
    } catch (const db::DatabaseUnavailable&) {
      throw;
    } catch (const std::exception& e) {
      spdlog::error("decision journal: replayed decision {} dropped: {}", row.event_id, e.what());
      ++result.dropped;
    }
  }
}

}  // namespace

DecisionJournal::DecisionJournal(fs::path dir, std::vector<std::string> meal_ids, std::size_t segment_bytes)
    : dir_(std::move(dir)), meal_ids_(std::move(meal_ids)), segment_bytes_(segment_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw JournalError("decision journal: cannot create " + dir_.string() + ": " + ec.message());
  const fs::path lock_path = dir_ / "lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) throw JournalError("decision journal: cannot open " + lock_path.string() + ": " + errno_text());
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const std::string why = errno == EWOULDBLOCK ? "it is in use by another process" : errno_text();
    ::close(lock_fd_);
    throw JournalError("decision journal: cannot lock " + dir_.string() + ": " + why +
                       " (server.decision_journal_dir: every serve process needs its own directory)");
  }
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.is_regular_file() && is_segment(entry.path())) leftover_.push_back(entry.path());
  }
  std::sort(leftover_.begin(), leftover_.end());  // zero-padded counters: name order is age order
  // Counters continue after the newest leftover and after the clock, so names keep sorting by age.
  next_counter_ = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (!leftover_.empty()) {
    const std::string name = leftover_.back().filename().string();
    const std::string digits =
        name.substr(kSegmentPrefix.size(), name.size() - kSegmentPrefix.size() - kSegmentSuffix.size());
    try {
      next_counter_ = std::max<std::uint64_t>(next_counter_, std::stoull(digits) + 1);
    } catch (const std::exception&) {
      // A hand-named file: ordering among this process's own segments still holds.
    }
  }
  std::lock_guard lock(mutex_);
  if (!open_segment()) {
    ::close(lock_fd_);
    throw JournalError("decision journal: cannot write a segment in " + dir_.string() + ": " + errno_text());
  }
}

DecisionJournal::~DecisionJournal() {
  if (fd_ >= 0) ::close(fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

bool DecisionJournal::open_segment() {
  char name[64];
  std::snprintf(name, sizeof name, "%.*s%020llu%.*s", static_cast<int>(kSegmentPrefix.size()), kSegmentPrefix.data(),
                static_cast<unsigned long long>(next_counter_++), static_cast<int>(kSegmentSuffix.size()),
                kSegmentSuffix.data());
  const fs::path path = dir_ / name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    spdlog::error("decision journal: cannot create {}: {}", path.string(), errno_text());
    return false;
  }
  std::string header;
  journal::append_catalog_frame(meal_ids_, header);
  if (!write_all(fd, header)) {
    spdlog::error("decision journal: cannot write {}: {}", path.string(), errno_text());
    ::close(fd);
    ::unlink(path.c_str());
    return false;
  }
  fd_ = fd;
  current_ = {path, 0};
  current_bytes_ = header.size();
  return true;
}

void DecisionJournal::close_segment() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  finished_.push_back(current_);
}

bool DecisionJournal::append(std::uint64_t sequence, std::string_view frame) {
  std::lock_guard lock(mutex_);
  if (fd_ < 0 && !open_segment()) {
    ++failed_;
    return false;
  }
  if (!write_all(fd_, frame)) {
    const std::string why = errno_text();
    // Cut the file back to its last whole frame, so later frames stay readable.
    if (::ftruncate(fd_, static_cast<off_t>(current_bytes_)) != 0) close_segment();  // keep what is whole; start anew
    ++failed_;
    if (!warned_) spdlog::error("decision journal: cannot append to {}: {} (decisions are still logged, but not crash-safe until it works again)",
                                current_.path.string(), why);
    warned_ = true;
    return false;
  }
  if (warned_) spdlog::info("decision journal: appending again after {} failed appends", failed_);
  warned_ = false;
  current_bytes_ += frame.size();
  current_.max_sequence = std::max(current_.max_sequence, sequence);
  if (current_bytes_ >= segment_bytes_) close_segment();  // the next append starts a new one
  return true;
}

void DecisionJournal::release_through(std::uint64_t sequence) {
  std::lock_guard lock(mutex_);
  while (!finished_.empty() && finished_.front().max_sequence <= sequence) {
    ::unlink(finished_.front().path.c_str());
    finished_.pop_front();
  }
}

void DecisionJournal::release_all() {
  std::lock_guard lock(mutex_);
  close_segment();
  for (const auto& s : finished_) ::unlink(s.path.c_str());
  finished_.clear();
}

std::uint64_t DecisionJournal::failed_appends() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

std::size_t DecisionJournal::live_segments() const {
  std::lock_guard lock(mutex_);
  return finished_.size() + (fd_ >= 0 ? 1 : 0);
}

JournalReplay DecisionJournal::replay(db::DecisionRepository& repository) {
  JournalReplay result;
  result.segments = leftover_.size();
  PendingDecision pending;
  std::vector<db::Decision> rows;
  for (const auto& path : leftover_) {
    const std::string bytes = read_file(path);
    journal::FrameReader reader(bytes);
    const auto table_frame = reader.next();
    const auto table = table_frame ? journal::decode_catalog(*table_frame) : std::nullopt;
    if (!table) {  // cut off before its meal table was whole: nothing was answered from it
      result.torn_bytes += bytes.size();
      continue;
    }
    while (const auto frame = reader.next()) {
      if (!journal::decode_decision(*frame, table->size(), pending)) {
        ++result.undecodable;
        continue;
      }
      ++result.decisions;
      rows.push_back(to_stored(pending, *table));
      if (rows.size() == kReplayBatch) {
        store_rows(repository, rows, result);
        rows.clear();
      }
    }
    result.torn_bytes += reader.torn_bytes();
  }
  if (!rows.empty()) store_rows(repository, rows, result);
  // Everything is stored: the earlier process's segments are done with.
  for (const auto& path : leftover_) ::unlink(path.c_str());
  leftover_.clear();
  return result;
}

}  // namespace forkcast::service
