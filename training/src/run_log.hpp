// What both training loops (tabular_training.cpp, dqn_training.cpp) write while they run:
// the metrics log of the run folder and the window of recent episode returns that progress
// lines, metrics records and checkpoints carry. Private to training/src.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forkcast::training {

// <run_dir>/metrics.jsonl, one JSON object a line, flushed after every record so that
// `tail -f` reads it while the run goes on.
class MetricsLog {
 public:
  // A new run starts the file empty. A resumed run (resumed_at set) keeps only the records
  // whose `key` ("episode", "step") is <= *resumed_at — what the checkpoint had seen —
  // and drops a torn last line from a crash, so the log reads as one run.
  MetricsLog(const std::filesystem::path& path, std::string_view key, std::optional<std::int64_t> resumed_at) {
    std::vector<std::string> kept;
    if (resumed_at) {
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        try {
          if (nlohmann::json::parse(line).at(key).get<std::int64_t>() <= *resumed_at) kept.push_back(line);
        } catch (const nlohmann::json::exception&) {
          // A torn line: drop it.
        }
      }
    }
    {
      std::ofstream out(path, std::ios::trunc);
      for (const auto& l : kept) out << l << "\n";
    }
    out_.open(path, std::ios::app);
  }

  void write(const nlohmann::json& record) {
    out_ << record.dump() << "\n";
    out_.flush();
  }
  void flush() { out_.flush(); }

 private:
  std::ofstream out_;
};

// The returns of the last kSize episodes, a ring (the "mean_return_100" of the metrics).
class RecentReturns {
 public:
  static constexpr std::size_t kSize = 100;

  void add(double episode_return) { values_[static_cast<std::size_t>(count_++ % static_cast<std::int64_t>(kSize))] = episode_return; }
  // Mean over the episodes seen, at most the last kSize; 0 before the first.
  double mean() const {
    const auto n = std::min<std::int64_t>(count_, static_cast<std::int64_t>(kSize));
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += values_[static_cast<std::size_t>(i)];
    return n > 0 ? sum / static_cast<double>(n) : 0.0;
  }

  // As checkpoints store it: {"count": episodes seen, "values": the ring}.
  nlohmann::json to_json() const { return {{"count", count_}, {"values", values_}}; }
  // Throws nlohmann::json::exception for a malformed window.
  void restore(const nlohmann::json& window) {
    count_ = window.at("count").get<std::int64_t>();
    values_ = window.at("values").get<std::vector<double>>();
    values_.resize(kSize, 0.0);
  }

 private:
  std::vector<double> values_ = std::vector<double>(kSize, 0.0);
  std::int64_t count_ = 0;
};

}  // namespace forkcast::training
