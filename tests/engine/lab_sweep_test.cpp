// The sweep's logic (engine/src/lab/sweep.cpp, sweep_report.cpp) on small L, with no assertion
// on how long anything takes: slopes of exact power laws, budgets that stop a method and say
// why, cancel, the CSV, the S4 table and the attention reference parsed from markdown.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

using namespace mambascope;

namespace {

TEST(LabSweep, LogLogSlopeOfAPowerLawIsItsExponent) {
  std::vector<lab::SweepPoint> lin, quad;
  for (int64_t L : {64, 128, 256, 1024}) {
    lin.push_back({L, 3e-6 * double(L), 1, 0});
    quad.push_back({L, 1e-9 * double(L) * double(L), 1, 0});
  }
  EXPECT_NEAR(lab::loglog_slope(lin), 1.0, 1e-9);
  EXPECT_NEAR(lab::loglog_slope(quad), 2.0, 1e-9);
  EXPECT_TRUE(std::isnan(lab::loglog_slope(std::span(lin).first(1))));
}

TEST(LabSweep, EveryMethodProducesPointsOnSmallLengths) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  for (lab::SweepScope scope : {lab::SweepScope::Layer, lab::SweepScope::Model}) {
    auto be = make_cpu_backend(*ckpt, 2);
    lab::SweepOptions o;
    o.scope = scope;
    o.lengths = {16, 32, 64};
    o.min_seconds = 0;
    o.max_repeats = 1;
    o.point_budget_seconds = 1e9;
    int calls = 0;
    const auto r = lab::sweep(*ckpt, be.get(), o, {}, [&](const lab::SweepSeries&, const lab::SweepPoint&) { ++calls; });
    EXPECT_FALSE(r.cancelled);
    EXPECT_FALSE(r.what.empty());
    ASSERT_EQ(r.series.size(), 4u);
    EXPECT_EQ(calls, 12);
    for (const auto& s : r.series) {
      SCOPED_TRACE(s.label);
      EXPECT_TRUE(s.stopped.empty()) << s.stopped;
      ASSERT_EQ(s.points.size(), 3u);
      EXPECT_TRUE(std::isfinite(s.slope));
      for (const auto& p : s.points) EXPECT_GT(p.seconds, 0);
    }
    // The CSV has a header and one line per point; the S4 table one row per method.
    const std::string csv = lab::sweep_csv(r);
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 13);
    EXPECT_EQ(csv.rfind("method,L,seconds", 0), 0u);
    const auto table = lab::s4_table(r);
    ASSERT_EQ(table.size(), 4u);
    for (const auto& row : table) {
      EXPECT_EQ(row.at_L, 64);
      EXPECT_GT(row.step_seconds, 0);
    }
  }
}

TEST(LabSweep, BudgetsStopAMethodAndSayWhy) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  lab::SweepOptions o;
  o.lengths = {16, 32, 64};
  o.methods = {ScanMode::Convolution};
  o.min_seconds = 0;
  o.max_repeats = 1;
  o.point_budget_seconds = 1e-12;  // any measured point predicts a next one over budget
  auto r = lab::sweep(*ckpt, nullptr, o);
  ASSERT_EQ(r.series[0].points.size(), 1u);
  EXPECT_NE(r.series[0].stopped.find("L = 32"), std::string::npos) << r.series[0].stopped;
  EXPECT_NE(r.series[0].stopped.find("budget"), std::string::npos);

  o.point_budget_seconds = 1e9;
  o.memory_budget_bytes = 1000;  // nothing fits
  r = lab::sweep(*ckpt, nullptr, o);
  EXPECT_TRUE(r.series[0].points.empty());
  EXPECT_NE(r.series[0].stopped.find("memory"), std::string::npos) << r.series[0].stopped;
}

// Reports a GPU's name and free memory without one: only sweep_memory_budget reads it.
class GpuLikeBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  DeviceInfo device() const override {
    DeviceInfo d;
    d.kind = "cuda";
    d.memory_free = size_t(100) << 30;
    return d;
  }
  bool supports(ScanMode, std::string*) const override { return true; }
  std::unique_ptr<BackendState> new_state() const override { return nullptr; }
  void forward(std::span<const int32_t>, BackendState&, const ForwardOptions&, std::vector<float>&) override {}
};

TEST(LabSweep, TheAutomaticMemoryBudgetIs4GiBOnTheCpuAndMostOfTheFreeGpuMemory) {
  const double gib = double(1ull << 30);
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  auto cpu = make_cpu_backend(*ckpt, 1);
  GpuLikeBackend gpu;
  EXPECT_EQ(lab::sweep_memory_budget(nullptr, lab::SweepScope::Layer), 4 * gib);
  EXPECT_EQ(lab::sweep_memory_budget(cpu.get(), lab::SweepScope::Model), 4 * gib);
  EXPECT_EQ(lab::sweep_memory_budget(&gpu, lab::SweepScope::Layer), 4 * gib);  // the layer scope runs CPU ops
  EXPECT_NEAR(lab::sweep_memory_budget(&gpu, lab::SweepScope::Model), 80 * gib, 1e6);

  lab::SweepOptions o;  // budget left automatic
  o.lengths = {16};
  o.methods = {ScanMode::Scan};
  o.max_repeats = 1;
  o.min_seconds = 0;
  EXPECT_EQ(lab::sweep(*ckpt, nullptr, o).memory_budget_bytes, 4 * gib);
  o.memory_budget_bytes = 2 * gib;  // a given budget is kept
  EXPECT_EQ(lab::sweep(*ckpt, nullptr, o).memory_budget_bytes, 2 * gib);
}

TEST(LabSweep, CancelReturnsWhatItHas) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  std::atomic<bool> cancel{true};
  lab::Progress p;
  p.cancel = &cancel;
  lab::SweepOptions o;
  o.lengths = {16, 32};
  const auto r = lab::sweep(*ckpt, nullptr, o, p);
  EXPECT_TRUE(r.cancelled);
  for (const auto& s : r.series) EXPECT_TRUE(s.points.empty());
}

TEST(LabSweep, BadLengthsAreAnError) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  lab::SweepOptions o;
  o.lengths = {64, 32};
  EXPECT_THROW(lab::sweep(*ckpt, nullptr, o), Error);
  o.lengths = {64};
  o.scope = lab::SweepScope::Model;
  EXPECT_THROW(lab::sweep(*ckpt, nullptr, o), Error);  // no backend
}

TEST(LabSweep, AttentionReferenceIsReadFromEitherTableLayout) {
  const char* rows_md =
      "# Benchmarks\n\nsome text\n\n## FlashAttention-2 (PyTorch SDPA, causal, bf16)\n"
      "| L | 512 | 2048 | 128K |\n|---|---|---|---|\n| ms | 0.0291 | 0.1084 | 225.4 |\n\n## Other\n";
  auto a = lab::parse_attention_reference(rows_md);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->points.size(), 3u);
  EXPECT_EQ(a->points[0].first, 512);
  EXPECT_NEAR(a->points[0].second, 0.0291e-3, 1e-12);
  EXPECT_EQ(a->points[2].first, 131072);
  EXPECT_NE(a->source.find("FlashAttention-2"), std::string::npos);

  const char* cols_md =
      "## Mamba scan\n| L | ms |\n|--|--|\n| 512 | 9 |\n\n### Attention reference\n"
      "| sequence length | FA2 (ms) | note |\n|---|---|---|\n| 1,024 | 0.05 | x |\n| 4096 | 0.5 | y |\n";
  a = lab::parse_attention_reference(cols_md);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->points.size(), 2u);
  EXPECT_EQ(a->points[0].first, 1024);
  EXPECT_NEAR(a->points[1].second, 0.5e-3, 1e-12);

  EXPECT_FALSE(lab::parse_attention_reference("# Nothing here\n| L | ms |\n|--|--|\n| 1 | 2 |\n").has_value());

  // docs/benchmarks.md's layout: an FA-2 column in the scan table, lengths repeated, gaps as dashes.
  const char* bench_md =
      "## Selective scan (bf16)\n\n| batch | d_inner | L | ours (ms) | FA-2 (ms) | faster than FA-2 |\n"
      "|---|---|---|---|---|---|\n| 1 | 4096 | 512 | 0.06 | 0.0291 | no |\n| 1 | 4096 | 2048 | 0.21 | 0.1084 | no |\n"
      "| 1 | 1536 | 2048 | 0.19 | 0.1084 | no |\n| 8 | 1536 | 4096 | 0.52 | — | — |\n";
  a = lab::parse_attention_reference(bench_md);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->points.size(), 2u);
  EXPECT_EQ(a->points[1].first, 2048);
  EXPECT_NEAR(a->points[1].second, 0.1084e-3, 1e-12);
  EXPECT_EQ(a->label, "FA-2 (ms)");
  EXPECT_NE(a->source.find("Selective scan"), std::string::npos);
}

}  // namespace
