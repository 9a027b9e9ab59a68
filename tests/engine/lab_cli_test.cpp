// The Modes Lab's CLI commands (app/cli/cmd_lab_*.cpp) on an HF fixture: each runs, prints JSON
// with the numbers its view shows, and refuses bad options with a usage error.
#include "cli_testing.hpp"

using namespace cli_testing;

namespace {

class LabCli : public CliTest {};

nlohmann::json run_json(const std::vector<std::string>& args) {
  const cli_testing::Run r = run_cli(args);
  EXPECT_EQ(r.rc, 0) << r.err;
  return r.rc == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
}

const std::string kModel = kFixtures + "tied_fp32";
const std::vector<std::string> kIds = {"--ids", "5,6,7,8,9,10,11,12,13,14,15,16"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

TEST_F(LabCli, SweepPrintsSeriesWithSlopesAndTheS4Table) {
  const fs::path csv = tmp / "sweep.csv";
  const auto j = run_json({"sweep", "--model", kModel, "--lengths", "8,16,32", "--json", "--csv", csv.string()});
  ASSERT_EQ(j["series"].size(), 4u);
  for (const auto& s : j["series"]) {
    EXPECT_EQ(s["points"].size(), 3u) << s["stopped"];
    EXPECT_TRUE(s["slope"].is_number());
  }
  EXPECT_EQ(j["s4_table"].size(), 4u);
  EXPECT_EQ(slurp(csv).rfind("method,L,seconds", 0), 0u);
}

TEST_F(LabCli, KernelReportsStationarityAndItsOwnCheck) {
  const auto j = run_json(with({"kernel", "--model", kModel, "--layer", "1", "--json"}, kIds));
  EXPECT_EQ(j["tokens"], 12);
  EXPECT_LE(j["reconstruction_rel"].get<double>(), 1e-4);
  EXPECT_LE(j["lti_reconstruction_rel"].get<double>(), 1e-4);
  EXPECT_LT(j["nonstationarity_lti"].get<double>(), j["nonstationarity"].get<double>());
  EXPECT_EQ(j["lti_kernel"].size(), 12u);
  const cli_testing::Run bad = run_cli(with({"kernel", "--model", kModel, "--view", "diagonal"}, kIds));
  EXPECT_EQ(bad.rc, 2) << bad.err;
}

TEST_F(LabCli, InterveneWithoutChangesIsIdenticalAndWithOneIsNot) {
  auto j = run_json(with({"intervene", "--model", kModel, "--continue", "3", "--json"}, kIds));
  EXPECT_TRUE(j["identical"].get<bool>());
  EXPECT_EQ(j["continuation_original"], j["continuation_intervened"]);
  j = run_json(with({"intervene", "--model", kModel, "--set", "all:4=ignore", "--set", "0:6=reset", "--json"}, kIds));
  EXPECT_FALSE(j["identical"].get<bool>());
  EXPECT_EQ(j["logits_change"][3].get<double>(), 0.0);
  EXPECT_GT(j["logits_change"][4].get<double>(), 0.0);
  const cli_testing::Run bad = run_cli(with({"intervene", "--model", kModel, "--set", "7:1=ignore"}, kIds));
  EXPECT_EQ(bad.rc, 2) << bad.err;
}

TEST_F(LabCli, LensListsEveryLayersPredictions) {
  const auto j = run_json(with({"lens", "--model", kModel, "--top", "2", "--json"}, kIds));
  ASSERT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["layers"][0]["positions"].size(), 12u);
  EXPECT_EQ(j["layers"][0]["positions"][0].size(), 2u);
}

TEST_F(LabCli, FreezeScoresSelectiveAndFrozenVariants) {
  const auto j = run_json(with({"freeze", "--model", kModel, "--prompt-tokens", "8", "--json"}, kIds));
  ASSERT_EQ(j["variants"].size(), 2u);
  EXPECT_EQ(j["variants"][0]["name"], "selective");
  EXPECT_EQ(j["variants"][0]["scored"], 4);
  EXPECT_EQ(j["variants"][0]["continuation"].size(), 4u);
  EXPECT_NE(j["variants"][0]["perplexity"], j["variants"][1]["perplexity"]);
  const cli_testing::Run bad = run_cli(with({"freeze", "--model", kModel, "--freeze", "token:99", "--prompt-tokens", "8"}, kIds));
  EXPECT_EQ(bad.rc, 2) << bad.err;
}

}  // namespace
