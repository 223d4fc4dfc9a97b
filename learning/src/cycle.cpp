#include "forkcast/learning/cycle.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <system_error>
#include <utility>

#include "forkcast/agent/nn.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "forkcast/learning/cycle_report.hpp"
#include "forkcast/learning/gate.hpp"
#include "forkcast/learning/logged_dataset.hpp"
#include "forkcast/learning/offline_dqn.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/policy/model_files.hpp"
#include "forkcast/policy/snapshot.hpp"
#include "forkcast/training/model_file.hpp"

namespace forkcast::learning {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A UTC time with strftime's `format`: "%Y%m%dT%H%M%SZ" in model versions, ISO 8601 in reports.
std::string utc(db::Timestamp t, const char* format) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, format, &tm);
  return text;
}
std::string utc_compact(db::Timestamp t) { return utc(t, "%Y%m%dT%H%M%SZ"); }
std::string utc_iso(db::Timestamp t) { return utc(t, "%Y-%m-%dT%H:%M:%SZ"); }

// The users the gate evaluates on: a fixed hash of the user, so the same users are held out
// in every cycle and the update never sees them.
bool held_out(std::uint64_t user_key, double share) {
  std::uint64_t z = user_key + 0x9e3779b97f4a7c15ULL;  // SplitMix64's finaliser: spreads FNV's low bits
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 < share;
}

json ope_json(const evaluation::OpeResult& r) {
  const auto interval = [](const evaluation::OpeInterval& i) { return json{{"value", i.value}, {"lo", i.lo}, {"hi", i.hi}}; };
  return {{"target", r.target},       {"decisions", r.decisions},   {"users", r.users},
          {"logged", interval(r.logged)}, {"ips", interval(r.ips)}, {"snips", interval(r.snips)},
          {"dm", interval(r.dm)},     {"dr", interval(r.dr)},       {"ess", r.ess},
          {"max_weight", r.max_weight}, {"mean_weight", r.mean_weight}, {"min_propensity", r.min_propensity},
          {"warnings", r.warnings}};
}

json dataset_json(const DatasetStats& s) {
  return {{"decisions_read", s.decisions},
          {"rows", s.rows},
          {"transitions", s.transitions},
          {"with_next", s.with_next},
          {"with_feedback", s.with_feedback},
          {"accepted", s.accepted},
          {"client_rewards", s.client_rewards},
          {"next_unusable", s.next_unusable},
          {"after_until", s.after_until},
          {"mean_reward", s.transitions > 0 ? s.reward_sum / static_cast<double>(s.transitions) : 0.0},
          {"skipped",
           {{"other_catalog", s.skipped_other_catalog},
            {"no_recency", s.skipped_no_recency},
            {"bad_observation", s.skipped_bad_observation},
            {"unknown_meal", s.skipped_unknown_meal},
            {"bad_probabilities", s.skipped_bad_probabilities}}}};
}

json update_json(const OfflineUpdateStats& s) {
  return {{"td_loss", s.td_loss}, {"cql_loss", s.cql_loss}, {"q_chosen", s.q_chosen}, {"grad_norm", s.grad_norm}};
}

}  // namespace

CycleSummary run_cycle(db::Database& database, const env::Catalog& catalog, const CycleOptions& options) {
  const auto started = Clock::now();
  const config::LearningConfig& lc = options.config.learning;
  const auto report = [&](std::string_view stage, double fraction, const json& detail) {
    if (options.progress) options.progress(stage, fraction, detail);
  };
  if (!options.gate_override.empty() && options.gate_override != "promote" && options.gate_override != "reject") {
    throw std::invalid_argument("gate override: '" + options.gate_override + "' (allowed: promote, reject)");
  }

  // 1. lock
  auto lock = db::LearnerLock::try_acquire(options.database_url, lc.learner);
  if (!lock) throw LearnerBusy("another learner named '" + lc.learner + "' is running a cycle (its lock is held)");

  // The model to start from.
  const std::optional<db::Model> production = database.models().production();
  if (!production) {
    throw CycleError("no production model: promote one first (forkcast db promote <version>); the learner starts from it");
  }
  std::filesystem::path production_path = production->registered.path;
  const policy::DqnModel start = policy::load_dqn_model(production_path);
  if (start.env != "mealsim" || policy::dqn_belief_particles(start, production_path) > 0) {
    throw CycleError("production model " + production->registered.version +
                     " is not a MealSim candidate model without a belief; the learner cannot train it");
  }

  // 2. range
  db::LearningLog log(database.pool());
  const std::optional<db::Timestamp> watermark = log.watermark(lc.learner);
  const db::Timestamp from = watermark.value_or(db::Timestamp{});
  db::Timestamp now = db::now_timestamp();
  if (lc.clock == "log") {
    const auto newest = log.newest_decision();
    if (!newest) now = from;
    else now = *newest + std::chrono::microseconds(1);
  }
  const auto reward_wait = std::chrono::microseconds(std::chrono::seconds(lc.reward_wait_s));
  const auto next_wait = std::chrono::microseconds(std::chrono::seconds(lc.next_wait_s));
  const db::Timestamp to = now - std::max(reward_wait, next_wait);
  CycleSummary summary;
  summary.stats["range"] = {{"from", watermark ? json(utc_iso(from)) : json(nullptr)}, {"to", utc_iso(to)}};
  if (to <= from) {
    summary.reason = "nothing new: every decision before " + utc_iso(to) + " was learned from already";
    summary.wall_s = seconds_since(started);
    return summary;
  }

  // 3. join: the window before `to` (it may reach behind the watermark: earlier cycles' data
  // are learned from again, so that evidence accumulates), and never less than the new range.
  const auto window = std::chrono::microseconds(std::chrono::seconds(lc.window_s));
  const db::Timestamp window_start = to - db::Timestamp{} > window ? to - window : db::Timestamp{};
  const db::Timestamp scan_from = lc.window_s > 0 ? std::min(from, window_start) : from;
  DatasetBuilder builder(catalog, options.config.mealsim,
                         {.gamma = lc.gamma, .until = to, .reward_source = reward_source_from_name(lc.reward_source)});
  db::ScanRange range{scan_from, to + next_wait, reward_wait, next_wait, lc.scan_batch_size};
  const auto scan_started = Clock::now();
  const db::ScanStats scanned = log.scan(range, [&](std::span<const db::JoinedDecision> batch) {
    builder.add(batch);
    report("scan", 0.0, {{"decisions", builder.stats().decisions}});
  });
  const double scan_s = seconds_since(scan_started);
  const DatasetStats data_stats = builder.stats();
  LoggedDataset data = std::move(builder).finish();
  std::int64_t new_transitions = 0;
  for (const Transition& t : data.transitions) new_transitions += data.decided_at[static_cast<std::size_t>(t.row)] >= from;
  summary.stats["data"] = dataset_json(data_stats);
  summary.stats["data"]["new_transitions"] = new_transitions;
  summary.stats["data"]["scan_batches"] = scanned.batches;
  summary.stats["range"]["window_from"] = utc_iso(scan_from);
  summary.stats["timings"]["scan_s"] = scan_s;
  if (new_transitions < lc.min_transitions) {
    summary.reason = "waiting for data: " + std::to_string(new_transitions) + " new transitions before " + utc_iso(to) +
                     ", min_transitions is " + std::to_string(lc.min_transitions);
    summary.wall_s = seconds_since(started);
    return summary;
  }

  // 4. split
  std::vector<std::int32_t> train, gate;
  for (std::size_t t = 0; t < data.transitions.size(); ++t) {
    const auto key = data.user_key[static_cast<std::size_t>(data.transitions[t].row)];
    (held_out(key, lc.holdout_share) ? gate : train).push_back(static_cast<std::int32_t>(t));
  }
  summary.stats["split"] = {{"train", train.size()}, {"gate", gate.size()}, {"holdout_share", lc.holdout_share}};
  if (train.empty() || gate.empty()) {
    summary.reason = "too few users to split: " + std::to_string(train.size()) + " training and " +
                     std::to_string(gate.size()) + " held-out transitions";
    summary.wall_s = seconds_since(started);
    return summary;
  }

  // 5. learn
  const std::vector<db::CycleRecord> history = log.cycles(lc.learner);
  const auto cycle_number = static_cast<std::int64_t>(history.size()) + 1;
  agent::nn::set_blas_threads(1);
  OfflineDqnConfig dc;
  dc.updates = lc.updates;
  dc.batch_size = lc.batch_size;
  dc.learning_rate = lc.learning_rate;
  dc.cql_alpha = lc.cql_alpha;
  dc.target_update_every = lc.target_update_every;
  dc.seed = static_cast<std::uint64_t>(lc.seed) + static_cast<std::uint64_t>(cycle_number);
  OfflineDqn learner(catalog, *start.network, dc);
  const OfflineTrainStats trained = learner.train(data, train, [&](int done, int total, const OfflineUpdateStats& s) {
    report("train", static_cast<double>(done) / total, update_json(s));
  });
  summary.stats["training"] = {{"updates", trained.updates},
                               {"first", update_json(trained.first)},
                               {"last", update_json(trained.last)},
                               {"config", {{"batch_size", dc.batch_size}, {"learning_rate", dc.learning_rate},
                                           {"cql_alpha", dc.cql_alpha}, {"target_update_every", dc.target_update_every},
                                           {"gamma", lc.gamma}, {"seed", dc.seed}}}};
  summary.stats["timings"]["train_s"] = trained.wall_s;

  // 7a. the model file (needed by the gate, which evaluates the file as it will be served)
  const std::string version = "learn-" + lc.learner + "-" + std::to_string(cycle_number) + "-" + utc_compact(to);
  const std::filesystem::path model_dir = std::filesystem::absolute(std::filesystem::path(lc.models_dir) / version);
  std::filesystem::create_directories(model_dir);
  const std::filesystem::path model_path = model_dir / "model.safetensors";
  std::map<std::string, std::string> metadata = start.metadata;
  metadata["parent"] = production->registered.version;
  metadata["learned_by"] = "forkcast learn";
  metadata["learner"] = lc.learner;
  metadata["cycle"] = std::to_string(cycle_number);
  metadata["git_revision"] = options.git_revision;
  training::save_model_file(model_path, learner.network(), metadata);

  // 6. gate
  const auto gate_started = Clock::now();
  report("gate", 0.0, {{"decisions", gate.size()}});
  const evaluation::DecisionLog held = held_out_log(data, gate);
  evaluation::OpeOptions dm_options;
  const evaluation::DirectMethodModel dm = evaluation::fit_direct_method(held, catalog, dm_options);
  GateConfig gc;
  gc.estimator = gate_estimator_from_name(lc.gate_estimator);
  gc.margin = lc.gate_margin;
  gc.min_ess = lc.gate_min_ess;
  gc.confidence = lc.gate_confidence;
  gc.bootstrap_resamples = lc.gate_bootstrap_resamples;
  const auto candidate_snapshot = policy::PolicySnapshot::load(model_path, catalog, version);
  SnapshotTarget candidate(version, candidate_snapshot);
  GateResult verdict = apply_gate(held, dm, candidate, gc);
  SnapshotTarget incumbent(production->registered.version,
                           policy::PolicySnapshot::load(production_path, catalog, production->registered.version));
  const GateResult baseline = apply_gate(held, dm, incumbent, gc);
  report("gate", 1.0, {{"promote", verdict.promote}});
  summary.stats["timings"]["gate_s"] = seconds_since(gate_started);
  summary.stats["gate"] = {{"estimator", lc.gate_estimator},
                           {"margin", gc.margin},
                           {"min_ess", gc.min_ess},
                           {"confidence", gc.confidence},
                           {"promote", verdict.promote},
                           {"reason", verdict.reason},
                           {"logged", verdict.logged},
                           {"lower", verdict.lower},
                           {"dm_r2", dm.train_r2},
                           {"candidate", ope_json(verdict.estimate)},
                           {"production", ope_json(baseline.estimate)}};
  bool promote = verdict.promote;
  std::string reason = verdict.reason;
  if (options.gate_override == "promote" && !promote) {
    promote = true;
    reason = "promoted by override (gate said: " + verdict.reason + ")";
  } else if (options.gate_override == "reject" && promote) {
    promote = false;
    reason = "rejected by override (gate said: " + verdict.reason + ")";
  }
  summary.stats["gate"]["override"] = options.gate_override;

  // 7b. the report
  json report_json = cycle_report_json({.learner = lc.learner,
                                        .cycle = cycle_number,
                                        .version = version,
                                        .parent = production->registered.version,
                                        .generated_at = utc_iso(db::now_timestamp()),
                                        .command = options.command,
                                        .git_revision = options.git_revision,
                                        .promoted = promote,
                                        .reason = reason,
                                        .stats = summary.stats,
                                        .history = history});
  const std::filesystem::path report_dir = std::filesystem::absolute(std::filesystem::path(lc.reports_dir) / version);
  write_cycle_report(report_dir, report_json);

  // 8. commit
  db::CycleCommit commit;
  commit.learner = lc.learner;
  commit.expected = watermark;
  commit.to = to;
  commit.outcome = promote ? db::CycleOutcome::promoted : db::CycleOutcome::rejected;
  commit.model = db::NewModel{.version = version,
                              .kind = "dqn",
                              .sha256 = candidate_snapshot->sha256(),
                              .path = model_path.string(),
                              .metrics = {{"learned", summary.stats["gate"]},
                                          {"parent", production->registered.version},
                                          {"cycle", cycle_number},
                                          {"report", report_dir.string()}}};
  commit.reports.push_back({.model_version = version, .method = lc.gate_estimator, .report = report_json});
  commit.reason = reason;
  commit.stats = summary.stats;
  if (!lock->held()) {
    throw db::DatabaseUnavailable(
        "the database connection that holds the learner's lock broke during the cycle (the database restarted or "
        "went away); nothing committed, the next cycle starts over");
  }
  const std::optional<db::CycleRecord> committed = log.commit_cycle(commit);
  summary.wall_s = seconds_since(started);
  summary.model_version = version;
  summary.model_path = model_path;
  summary.report_dir = report_dir;
  if (!committed) {
    std::error_code ignored;  // the files of a model nobody registered
    std::filesystem::remove_all(model_dir, ignored);
    std::filesystem::remove_all(report_dir, ignored);
    summary.model_version.reset();
    summary.reason = "another learner moved the watermark during this cycle; its model was not registered";
    return summary;
  }
  summary.committed = true;
  summary.outcome = commit.outcome;
  summary.reason = reason;
  return summary;
}

}  // namespace forkcast::learning
