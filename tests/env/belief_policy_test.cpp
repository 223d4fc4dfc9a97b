// The observation-limited belief baselines (env/belief_policy.hpp) and what they rest on:
// MealSim::replay follows a known history exactly, and profile_likelihood gives the
// archetype that drew a profile a positive weight.
#include "forkcast/env/belief_policy.hpp"
#include "shipped_world.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

namespace fe = forkcast::env;

namespace {

const fe::Catalog& catalog() { return forkcast::test::shipped_catalog(); }
const fe::Population& population() { return forkcast::test::shipped_population(); }

}  // namespace

TEST(MealSimReplay, ReplayingAWeeksOutcomesReproducesItsStates) {
  fe::MealSim real(catalog(), population()), copy(catalog(), population());
  fe::RandomPolicy policy;
  std::mt19937_64 rng(7);
  int declines = 0;
  for (std::uint64_t seed = 11; seed < 16; ++seed) {
    real.reset(seed);
    copy.reset(seed);  // the same user and start; replay draws none of its coins
    while (!real.done()) {
      const auto meal = policy.act(real, rng);
      const auto stepped = real.step(meal);
      const auto replayed = copy.replay(meal, stepped.accepted, stepped.eaten);
      declines += stepped.accepted ? 0 : 1;
      ASSERT_EQ(replayed.eaten, stepped.eaten);
      ASSERT_EQ(replayed.day_ended, stepped.day_ended);
      if (stepped.churned) break;  // replay never churns; the real week ends here
      ASSERT_DOUBLE_EQ(replayed.reward, stepped.reward);
      ASSERT_DOUBLE_EQ(copy.satisfaction(), real.satisfaction());
      if (!stepped.terminated) {
        const auto a = real.observation(), b = copy.observation();
        ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
      }
    }
  }
  EXPECT_GT(declines, 10) << "the weeks must exercise declines (default meals) too";
}

TEST(MealSimReplay, AnAcceptedMealMustBeTheSuggestion) {
  fe::MealSim sim(catalog(), population());
  sim.reset(3);
  const auto mask = sim.action_mask();
  std::vector<fe::Action> allowed;
  for (std::size_t m = 0; m < mask.size(); ++m) {
    if (mask[m]) allowed.push_back(static_cast<fe::Action>(m));
  }
  ASSERT_GE(allowed.size(), 2U);
  try {
    sim.replay(allowed[0], true, allowed[1]);
    FAIL() << "an accepted suggestion eaten as another meal was replayed";
  } catch (const fe::EnvUsageError& e) {
    EXPECT_NE(std::string(e.what()).find("is not the accepted suggestion"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sim.replay(allowed[0], false, -1), fe::EnvUsageError);
  EXPECT_EQ(sim.step_index(), 0) << "a refused replay must not move the week";
}

TEST(ProfileLikelihood, TheDrawingArchetypeIsNeverRuledOutAndOthersOftenAre) {
  std::mt19937_64 rng(5);
  const auto& archetypes = population().archetypes();
  double posterior_of_truth = 0;
  const int users = 500;
  for (int u = 0; u < users; ++u) {
    const fe::User user = population().sample(catalog(), rng);
    double total = 0, truth = 0;
    for (std::size_t a = 0; a < archetypes.size(); ++a) {
      const double w = archetypes[a].share * fe::profile_likelihood(archetypes[a], user.profile);
      ASSERT_TRUE(std::isfinite(w) && w >= 0);
      total += w;
      if (static_cast<int>(a) == user.archetype) truth = w;
    }
    ASSERT_GT(truth, 0.0) << "user " << u << " of archetype " << archetypes[static_cast<std::size_t>(user.archetype)].name;
    posterior_of_truth += truth / total;
  }
  // Diet, goal, sodium limit and protein per kg separate most archetypes outright; the
  // profile is far more informative than the shares (the largest is 0.16).
  EXPECT_GT(posterior_of_truth / users, 0.6);
  // A one-value range is a point mass: a profile on it belongs to that archetype.
  fe::Archetype wide = archetypes.front(), point = archetypes.front();
  wide.budget_usd = {2.0, 10.0};
  point.budget_usd = {5.0, 5.0};
  fe::UserProfile on_point = population().sample(catalog(), rng).profile;
  on_point.goal = point.goal;
  on_point.diet = point.diet;
  on_point.excluded = 0;
  on_point.sex = fe::Sex::female;
  on_point.age = static_cast<int>(std::lround(point.age.lo));
  on_point.height_cm = point.height_cm.lo - 6.0;
  on_point.weight_kg = point.weight_kg.lo;
  on_point.cook_time_min = point.cook_time_min.lo;
  on_point.activity = point.activities.front();
  on_point.sodium_limit_mg = point.sodium_limit_mg;
  on_point.protein_g_per_kg = point.protein_g_per_kg;
  on_point.budget_usd = 5.0;
  const double w_point = fe::profile_likelihood(point, on_point), w_wide = fe::profile_likelihood(wide, on_point);
  ASSERT_GT(w_wide, 0.0);
  EXPECT_GT(w_point / (w_point + w_wide), 0.999);

  fe::UserProfile impossible;
  impossible.diet = fe::DietPreference::vegan;
  impossible.goal = fe::Goal::gain;
  for (const auto& a : archetypes) EXPECT_EQ(fe::profile_likelihood(a, impossible), 0.0) << a.name;
}

TEST(BeliefPolicy, RejectsBadOptionsByName) {
  fe::BeliefOptions none;
  none.particles = 0;
  try {
    fe::BeliefPolicy p(population(), none);
    FAIL() << "0 particles accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("BeliefOptions.particles: 0"), std::string::npos) << e.what();
  }
  fe::BeliefOptions floor;
  floor.default_evidence_floor = 0;
  EXPECT_THROW(fe::BeliefPolicy(population(), floor), std::invalid_argument);

  // A belief must see every answer of the week: it cannot start in the middle of one.
  fe::MealSim sim(catalog(), population());
  sim.reset(4);
  std::mt19937_64 rng(1);
  fe::RandomPolicy random;
  sim.step(random.act(sim, rng));
  fe::MealBelief belief(population(), {});
  try {
    belief.start(sim, rng);
    FAIL() << "a belief started at step 1";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the week is at step 1"), std::string::npos) << e.what();
  }
}

// Planning on the belief pays, and inference pays: paired on the same users,
// belief-planner > belief-myopic > random, every suggestion allowed; deterministic.
TEST(BeliefPolicy, PlanningOnTheBeliefBeatsActingMyopicallyOnIt) {
  fe::MealSim sim(catalog(), population());
  fe::BeliefOptions small;
  small.particles = 64;
  fe::BeliefPolicy planner(population(), small);
  small.plan = false;
  fe::BeliefPolicy myopic(population(), small);
  fe::RandomPolicy random;
  const int users = 120;
  double planner_sum = 0, myopic_sum = 0, random_sum = 0;
  for (int u = 0; u < users; ++u) {
    const auto seed = 2'000'000ULL + static_cast<std::uint64_t>(u);
    std::mt19937_64 r1(seed), r2(seed), r3(seed);
    planner_sum += fe::run_episode(sim, planner, seed, r1).total_reward;
    myopic_sum += fe::run_episode(sim, myopic, seed, r2).total_reward;
    random_sum += fe::run_episode(sim, random, seed, r3).total_reward;
  }
  std::printf("belief-planner %.2f, belief-myopic %.2f, random %.2f (%d users, 64 particles)\n", planner_sum / users,
              myopic_sum / users, random_sum / users, users);
  EXPECT_GT(planner_sum / users, myopic_sum / users + 1.5);
  EXPECT_GT(myopic_sum / users, random_sum / users + 5.0);

  // Deterministic given its generator: the same week twice gives the same suggestions.
  std::vector<fe::Action> first, second;
  for (auto* out : {&first, &second}) {
    std::mt19937_64 rng(99);
    sim.reset(77);
    while (!sim.done()) {
      const auto a = planner.act(sim, rng);
      out->push_back(a);
      ASSERT_TRUE(sim.action_mask()[static_cast<std::size_t>(a)]);
      sim.step(a);
    }
  }
  EXPECT_EQ(first, second);
}
