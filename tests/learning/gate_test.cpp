// The learner's gate (learning/gate.hpp): a model is evaluated with the probabilities it
// would serve (decide()'s own scoring and exploration on the logged state), and promoted
// only when its lower bound beats the logged value by the margin with enough support.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "forkcast/learning/gate.hpp"
#include "forkcast/policy/explore.hpp"
#include "forkcast/policy/snapshot.hpp"

namespace fl = forkcast::learning;
namespace fe = forkcast::env;
namespace fev = forkcast::evaluation;
namespace fp = forkcast::policy;

namespace {

const fe::Catalog& catalog() {
  static const fe::Catalog c = fe::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  return c;
}

const fev::DecisionLog& synthetic_log() {
  static const fev::DecisionLog log = [] {
    const auto population = fe::Population::load(FORKCAST_SOURCE_DIR "/data/population.yaml");
    fev::SyntheticLogOptions o;
    o.users = 120;
    o.seed = 4242;
    o.score = "myopic";
    o.temperature = 2.0;  // a loose logging policy: it explores a lot
    o.epsilon = 0.3;
    o.candidate_features = true;
    fev::DecisionLog l;
    l.source = "synthetic";
    l.decisions = fev::generate_synthetic_log(catalog(), population, {}, o);
    return l;
  }();
  return log;
}

std::shared_ptr<const fp::PolicySnapshot> bundled() {
  return fp::PolicySnapshot::load(FORKCAST_SOURCE_DIR "/models/policies/mealsim-dqn-default.safetensors", catalog(),
                                  "bundled");
}

}  // namespace

TEST(Gate, AModelIsEvaluatedWithTheProbabilitiesItWouldServe) {
  const auto snapshot = bundled();
  fl::SnapshotTarget target("bundled", snapshot);
  fev::LoggedDecision d;
  d.event_id = "e";
  d.state_features.assign(fe::kObservationSize, 0.0F);
  d.state_features[fe::kObsSlot + 2] = 1.0F;
  d.candidates = {0, 7, 11, 40};
  d.candidate_features = {0.0F, 0.5F, 0.0F, 0.9F};
  d.candidate_feature_dim = 1;
  d.epsilon = 0.2;
  std::vector<double> pmf(4);
  target.pmf(d, pmf);
  // decide()'s steps 2 and 3, written out.
  std::vector<float> scores(4);
  fp::ScoringWorkspace ws = snapshot->make_workspace();
  snapshot->score(d.state_features, d.candidates, d.candidate_features, scores, ws);
  std::vector<double> expected(4);
  fp::epsilon_greedy_pmf(std::span<const float>(scores), {}, 0.2, expected);
  EXPECT_EQ(pmf, expected);

  d.candidate_feature_dim = 0;
  EXPECT_THROW(target.pmf(d, pmf), std::invalid_argument);
}

TEST(Gate, PromotesABetterPolicyAndRefusesOneWithoutSupportOrWithoutAMarginWon) {
  const fev::DecisionLog& log = synthetic_log();
  const fev::DirectMethodModel dm = fev::fit_direct_method(log, catalog(), {});
  // Greedy on the logging policy's own (myopic) scores: better than the loose policy that logged.
  fev::LoggedScoreTarget sharper("sharper", 0.0, 0.3);
  fl::GateConfig config;
  config.min_ess = 50;
  const fl::GateResult better = fl::apply_gate(log, dm, sharper, config);
  EXPECT_TRUE(better.promote) << better.reason;
  EXPECT_GT(better.lower, better.logged);
  EXPECT_EQ(better.reason.rfind("better: lower bound", 0), 0U) << better.reason;

  config.margin = 10.0;  // no policy earns 10 more per decision
  const fl::GateResult no_margin = fl::apply_gate(log, dm, sharper, config);
  EXPECT_FALSE(no_margin.promote);
  EXPECT_EQ(no_margin.reason.rfind("not better:", 0), 0U) << no_margin.reason;

  config.margin = 0.0;
  config.min_ess = 1e9;
  const fl::GateResult unsupported = fl::apply_gate(log, dm, sharper, config);
  EXPECT_FALSE(unsupported.promote);
  EXPECT_EQ(unsupported.reason.rfind("too little support: ESS", 0), 0U) << unsupported.reason;

  // The logging policy itself is no better than itself.
  fev::LoggedScoreTarget same("same", 2.0, 0.3);
  config.min_ess = 50;
  const fl::GateResult itself = fl::apply_gate(log, dm, same, config);
  EXPECT_FALSE(itself.promote) << itself.reason;
  EXPECT_NEAR(itself.estimate.snips.value, itself.logged, 1e-9);
}

TEST(Gate, BadSettingsNameTheirKey) {
  fl::GateConfig c;
  c.min_ess = 0;
  try {
    fl::check_gate_config(c);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("learning.gate_min_ess:", 0), 0U) << e.what();
  }
  c = {};
  c.confidence = 1.0;
  EXPECT_THROW(fl::check_gate_config(c), std::invalid_argument);
  EXPECT_EQ(fl::gate_estimator_from_name("snips"), fl::GateEstimator::snips);
  EXPECT_THROW(fl::gate_estimator_from_name("ips"), std::invalid_argument);
}
