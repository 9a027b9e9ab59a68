// The numbers behind the Modes Lab's equivalence view (engine/src/lab/equivalence.cpp): every
// mode agrees with the recurrence within the documented tolerance, cell by cell, and a cell over
// the tolerance is flagged.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

using namespace mambascope;

namespace {

TEST(LabEquivalence, EveryModeAgreesWithTheRecurrenceWithinTolerance) {
  const auto fx = mambascope::testing::load_hf_fixture("long_500");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  const auto& cfg = ckpt->config();
  const lab::EquivalenceReport r = lab::equivalence(*be, cfg, fx.input_ids);
  const int64_t L = int64_t(fx.input_ids.size());
  ASSERT_EQ(r.modes.size(), 4u);
  EXPECT_TRUE(r.ok);
  for (const auto& m : r.modes) {
    SCOPED_TRACE(mode_name(m.mode));
    ASSERT_TRUE(m.skipped.empty());
    ASSERT_EQ(int64_t(m.y_max_abs.size()), cfg.n_layer * L);  // the heatmap {n_layer, L}
    ASSERT_EQ(int64_t(m.y_scale.size()), cfg.n_layer);
    EXPECT_LE(m.y_rel, lab::kModeTolerance);
    EXPECT_LE(m.logits_rel, lab::kModeTolerance);
    EXPECT_EQ(m.argmax_agree, L);
    EXPECT_TRUE(m.ok);
    EXPECT_GT(m.peak_bytes_estimate, 0u);
    for (int64_t l = 0; l < cfg.n_layer; ++l)
      for (int64_t t = 0; t < L; ++t) EXPECT_FALSE(m.flagged(l, t, L));
  }
  EXPECT_TRUE(r.modes[0].is_reference);
  EXPECT_EQ(r.modes[0].y_rel, 0.0);
  // Freezing a selective model changes it: that is what lti-fft is compared against separately.
  EXPECT_GT(r.frozen_vs_selective_rel, 1e-2);
}

TEST(LabEquivalence, ACellOverTheToleranceIsFlagged) {
  lab::ModeEquivalence m;
  m.tolerance = 1e-4;
  m.y_scale = {10.0f, 1.0f};              // two layers
  m.y_max_abs = {1e-4f, 2e-3f, 5e-5f, 2e-4f};  // L = 2
  EXPECT_FALSE(m.flagged(0, 0, 2));  // 1e-5 relative
  EXPECT_TRUE(m.flagged(0, 1, 2));   // 2e-4 relative
  EXPECT_FALSE(m.flagged(1, 0, 2));
  EXPECT_TRUE(m.flagged(1, 1, 2));
}

TEST(LabEquivalence, JsonCarriesTheHeatmapAndTheVerdict) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  lab::EquivalenceOptions o;
  o.modes = {ScanMode::Recurrent, ScanMode::Scan};
  const auto r = lab::equivalence(*be, ckpt->config(), fx.input_ids, o);
  const auto j = nlohmann::json::parse(lab::equivalence_json(r));
  EXPECT_EQ(j["backend"], "cpu");
  ASSERT_EQ(j["modes"].size(), 2u);
  EXPECT_EQ(j["modes"][1]["mode"], "scan");
  EXPECT_EQ(j["modes"][1]["y_max_abs"].size(), size_t(ckpt->config().n_layer) * fx.input_ids.size());
  EXPECT_TRUE(j["ok"].get<bool>());
}

TEST(LabEquivalence, TheCpuIsHeldToTheFp32ToleranceEvenForABf16Model) {
  // The CPU computes a bf16 checkpoint in fp32, so its modes must agree to 1e-4 there too.
  const auto fx = mambascope::testing::load_hf_fixture("bf16");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  EXPECT_EQ(be->device().activations, DType::F32);
  EXPECT_EQ(lab::mode_tolerance(*be), lab::kModeTolerance);
  lab::EquivalenceOptions o;
  o.modes = {ScanMode::Recurrent, ScanMode::Scan};
  const auto r = lab::equivalence(*be, ckpt->config(), fx.input_ids, o);
  EXPECT_EQ(r.modes[1].tolerance, lab::kModeTolerance);
  EXPECT_TRUE(r.ok);
  o.tolerance = 0;  // an explicit tolerance wins, even 0
  EXPECT_EQ(lab::equivalence(*be, ckpt->config(), fx.input_ids, o).modes[1].tolerance, 0.0);
}

TEST(LabEquivalence, ConvolutionNeedsQuadraticMemoryInTheEstimate) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  const auto& cfg = ckpt->config();
  const auto conv = [&](int64_t L) { return double(lab::mode_peak_bytes(cfg, ScanMode::Convolution, L, 2, false)); };
  const auto scan = [&](int64_t L) { return double(lab::mode_peak_bytes(cfg, ScanMode::Scan, L, 2, false)); };
  // Doubling L at large L: ~4x for the L x L kernel, ~2x for the scan.
  EXPECT_GT(conv(8192) / conv(4096), 3.5);
  EXPECT_LT(scan(8192) / scan(4096), 2.2);
}

}  // namespace
