// `forkcast advise`, run as a program: the profile file, errors that name the field, and
// the template answer when the configured model is refused.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include "run_command.hpp"

namespace {

using Run = forkcast::testing::CommandOutput;

Run run(const std::string& args, const std::string& env = "") {
  return forkcast::testing::run_command(env + " " FORKCAST_EXE " " + args);
}

const std::string kProfile = FORKCAST_SOURCE_DIR "/tests/advice/data/profile.yaml";

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("forkcast_advise_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name) << text;
  return (dir / name).string();
}

TEST(AdviseCli, PrintsGroundedAdviceForTheMeal) {
  const auto r =
      run("advise --meal grilled_cheese_tomato_soup --user-profile " + kProfile + " --show-source");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Grilled cheese with tomato soup"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("source: "), std::string::npos) << r.output;
}

TEST(AdviseCli, UnknownMealAndForbiddenMealAreUsageErrors) {
  auto r = run("advise --meal no_such_meal --user-profile " + kProfile);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--meal: 'no_such_meal' is not in the catalog"), std::string::npos)
      << r.output;
  r = run("advise --meal chicken_caesar_salad --user-profile " +
          kProfile);  // the profile is vegetarian
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("not allowed for this profile"), std::string::npos) << r.output;
}

TEST(AdviseCli, ProfileErrorsNameTheFileLineAndField) {
  const auto bad_goal = write_temp("bad_goal.yaml", "age: 40\ngoal: bulk\n");
  auto r = run("advise --meal grilled_cheese_tomato_soup --user-profile " + bad_goal);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bad_goal.yaml:2: goal: 'bulk' is not one of lose, maintain, gain"),
            std::string::npos)
      << r.output;
  const auto unknown = write_temp("unknown.yaml", "age: 40\nweigth_kg: 70\n");
  r = run("advise --meal grilled_cheese_tomato_soup --user-profile " + unknown);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("weigth_kg: unknown field"), std::string::npos) << r.output;
}

// Review, 2026-12-01: `excluded: milk` (one name, not a list) read as no allergy at all.
TEST(AdviseCli, OneExcludedAllergenWithoutAListStillExcludes) {
  const auto one = write_temp("one_allergen.yaml", "age: 40\nexcluded: milk\n");
  auto r = run("advise --meal grilled_cheese_tomato_soup --user-profile " + one);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("not allowed for this profile"), std::string::npos) << r.output;
  const auto mapping = write_temp("mapping_allergen.yaml", "age: 40\nexcluded: {milk: true}\n");
  r = run("advise --meal grilled_cheese_tomato_soup --user-profile " + mapping);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("excluded: expected an allergen name or a list of them"), std::string::npos) << r.output;
}

TEST(AdviseCli, ARefusedModelStillPrintsTemplateAdvice) {
  const auto garbage = write_temp("garbage.gguf", "not a model\n");
  const auto r =
      run("advise --meal grilled_cheese_tomato_soup --user-profile " + kProfile + " --show-source",
          "FORKCAST_ADVICE__MODEL_PATH=" + garbage);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // No manifest beside it and unknown models not allowed: refused before llama.cpp sees it.
  EXPECT_NE(r.output.find("garbage.gguf': manifest"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("using template advice"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("source: template, reason: no_model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Grilled cheese with tomato soup for lunch"), std::string::npos)
      << r.output;
}

}  // namespace
