// Validation of off-policy evaluation on synthetic MealSim logs whose target value is known
// by simulation (issue: DR and SNIPS 95 % intervals cover the truth in >= 90 % of 50
// repetitions). Label `learning`: it simulates a few hundred thousand steps.
//
// Logging policy mu: softmax(myopic expected reward / 0.5) mixed with 10 % uniform.
// Targets: the same scores with a sharper softmax (temperature 0.2, no exploration) and
// greedy on them. Truth: simulate_target_value over 6000 logging weeks of their own seeds,
// i.e. E_{x ~ d_mu} sum_a pi(a|x) E[r|x,a] with a Monte Carlo error printed beside it.
// Repetition r logs 500 users from seed 1 000 000 + 1000 r (a fixed seed set).
#include <gtest/gtest.h>

#include <cstdio>

#include "forkcast/evaluation/ope.hpp"

namespace fe = forkcast::env;
namespace fev = forkcast::evaluation;

namespace {

constexpr int kRepetitions = 50;
constexpr int kUsersPerLog = 500;
constexpr int kTruthUsers = 6000;

struct Coverage {
  int dr = 0, snips = 0, ips = 0, dm = 0;
  double dr_width = 0, snips_width = 0, ess = 0;
};

}  // namespace

TEST(OffPolicyValidation, DoublyRobustAndSnipsIntervalsCoverTheSimulatedTruth) {
  const auto catalog = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  const auto population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
  fev::SyntheticLogOptions logging;
  logging.score = "myopic";
  logging.temperature = 0.5;
  logging.epsilon = 0.1;
  logging.users = kUsersPerLog;

  fev::LoggedScoreTarget sharper("softmax-0.2", 0.2, 0.0);
  fev::LoggedScoreTarget greedy("greedy", 0.0, 0.0);
  std::array<fev::OpeTarget*, 2> targets = {&sharper, &greedy};
  std::array<fev::TrueValue, 2> truth;
  for (std::size_t t = 0; t < targets.size(); ++t) {
    truth[t] = fev::simulate_target_value(catalog, population, {}, logging, *targets[t], kTruthUsers, 90'000'000);
    std::printf("truth %-12s %.4f (Monte Carlo s.e. %.4f, %lld decisions)\n", std::string(targets[t]->name()).c_str(),
                truth[t].value, truth[t].standard_error, static_cast<long long>(truth[t].decisions));
  }

  fev::OpeOptions options;
  options.bootstrap_resamples = 1000;
  std::array<Coverage, 2> cov;
  double logged_mean = 0;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    logging.seed = 1'000'000 + 1000 * static_cast<std::uint64_t>(rep);
    fev::DecisionLog log;
    log.source = "synthetic";
    log.decisions = fev::generate_synthetic_log(catalog, population, {}, logging);
    const auto model = fev::fit_direct_method(log, catalog, options);
    options.bootstrap_seed = 7'000 + static_cast<std::uint64_t>(rep);
    for (std::size_t t = 0; t < targets.size(); ++t) {
      const auto r = fev::evaluate_off_policy(log, model, *targets[t], options);
      const double v = truth[t].value;
      auto inside = [v](const fev::OpeInterval& i) { return i.lo <= v && v <= i.hi ? 1 : 0; };
      cov[t].dr += inside(r.dr);
      cov[t].snips += inside(r.snips);
      cov[t].ips += inside(r.ips);
      cov[t].dm += inside(r.dm);
      cov[t].dr_width += (r.dr.hi - r.dr.lo) / kRepetitions;
      cov[t].snips_width += (r.snips.hi - r.snips.lo) / kRepetitions;
      cov[t].ess += r.ess / static_cast<double>(r.decisions) / kRepetitions;
      if (t == 0) logged_mean += r.logged.value / kRepetitions;
    }
  }
  std::printf("logging policy mean reward %.4f\n", logged_mean);
  for (std::size_t t = 0; t < targets.size(); ++t) {
    std::printf("coverage of %-12s over %d logs: DR %d/%d, SNIPS %d/%d, IPS %d/%d, DM %d/%d; mean width DR %.4f, SNIPS %.4f; "
                "mean ESS %.1f %% of decisions\n",
                std::string(targets[t]->name()).c_str(), kRepetitions, cov[t].dr, kRepetitions, cov[t].snips, kRepetitions,
                cov[t].ips, kRepetitions, cov[t].dm, kRepetitions, cov[t].dr_width, cov[t].snips_width, 100.0 * cov[t].ess);
    EXPECT_GE(cov[t].dr, 45) << targets[t]->name();
    EXPECT_GE(cov[t].snips, 45) << targets[t]->name();
    // The truth's own Monte Carlo error must be small against the intervals it is checked with.
    EXPECT_LT(truth[t].standard_error, 0.1 * cov[t].dr_width) << targets[t]->name();
  }
}
