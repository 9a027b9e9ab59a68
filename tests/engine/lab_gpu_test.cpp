// The Modes Lab's numbers on the CUDA backend (skipped without a GPU): all four modes run there
// and agree within the lab's tolerance on an fp32 checkpoint, the kernel built from the GPU's
// recorded Δ, B, C reproduces its outputs, frozen and selective variants score the same on the
// GPU as on the CPU, no intervention reproduces the original exactly, the last layer's lens is
// the model's argmax, and the sweep runs every mode with GPU memory estimates (checked without a
// GPU too).
#include <gtest/gtest.h>

#include <algorithm>

#include "hf_fixture.hpp"
#include "lab/lab_internal.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

using namespace mambascope;

namespace {

struct Gpu {
  mambascope::testing::HfFixture fx;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<Backend> be;
};

#define GPU_OR_SKIP(name, g)                                 \
  Gpu g;                                                     \
  {                                                          \
    std::string why;                                         \
    if (!cuda_backend_available(&why)) GTEST_SKIP() << why;  \
    g.fx = mambascope::testing::load_hf_fixture(name);       \
    g.ckpt = Checkpoint::open(g.fx.dir);                     \
    g.be = make_cuda_backend(*g.ckpt);                       \
  }

TEST(LabOnGpu, ModesAgreeWithinTheLabTolerance) {
  GPU_OR_SKIP("long_500", g);
  const auto r = lab::equivalence(*g.be, g.ckpt->config(), g.fx.input_ids);
  ASSERT_EQ(r.modes.size(), 4u);
  for (const auto& m : r.modes) {
    SCOPED_TRACE(mode_name(m.mode));
    EXPECT_EQ(m.skipped, "");  // every mode runs on the GPU
    EXPECT_GT(m.peak_bytes_estimate, 0u);
    EXPECT_LE(m.y_rel, lab::kModeTolerance);
    EXPECT_LE(m.logits_rel, lab::kModeTolerance);
    EXPECT_EQ(m.argmax_agree, int64_t(g.fx.input_ids.size()));
  }
  EXPECT_TRUE(r.ok) << lab::equivalence_json(r).substr(0, 2000);
  EXPECT_GT(r.frozen_vs_selective_rel, 0.0);  // lti-fft ran frozen, and freezing changes the model
}

TEST(LabOnGpu, ABf16ModelsModesAgreeWithinThe16BitTolerance) {
  // The GPU keeps a bf16 model's prefill activations in bf16 while its recurrence is fp32: the
  // modes round at different places, so they are held to kModeTolerance16 (docs/lab.md).
  GPU_OR_SKIP("bf16", g);
  EXPECT_EQ(g.be->device().activations, DType::BF16);
  EXPECT_EQ(lab::mode_tolerance(*g.be), lab::kModeTolerance16);
  const auto r = lab::equivalence(*g.be, g.ckpt->config(), g.fx.input_ids);
  ASSERT_EQ(r.modes.size(), 4u);
  for (const auto& m : r.modes) {
    SCOPED_TRACE(mode_name(m.mode));
    EXPECT_EQ(m.tolerance, lab::kModeTolerance16);
    EXPECT_LE(m.y_rel, lab::kModeTolerance16);
    EXPECT_LE(m.logits_rel, lab::kModeTolerance16);
  }
  EXPECT_TRUE(r.ok) << lab::equivalence_json(r).substr(0, 2000);
}

TEST(LabOnGpu, FrozenAndSelectiveVariantsScoreAsOnTheCpu) {
  GPU_OR_SKIP("long_500", g);
  auto cpu = make_cpu_backend(*g.ckpt, 0);
  std::vector<int32_t> ids(g.fx.input_ids.begin(), g.fx.input_ids.begin() + 200);
  lab::SelectivityOptions o;
  o.prompt_len = 150;
  o.n_continue = 8;
  auto variants = [&](Backend* b) {
    std::vector<lab::Variant> v(3);
    v[0].name = "selective";
    v[1].name = "frozen (mean)";
    v[1].freeze = Freeze::Kind::MeanOverInput;
    v[2].name = "frozen (token 40)";
    v[2].freeze = Freeze::Kind::AtToken;
    v[2].freeze_token = 40;
    for (auto& x : v) x.backend = b;
    return v;
  };
  const auto vg = variants(g.be.get()), vc = variants(cpu.get());
  const auto rg = lab::compare_selectivity(vg, ids, o), rc = lab::compare_selectivity(vc, ids, o);
  ASSERT_EQ(rg.size(), rc.size());
  for (size_t i = 0; i < rg.size(); ++i) {
    SCOPED_TRACE(rg[i].name);
    EXPECT_NEAR(rg[i].nll, rc[i].nll, 1e-3 * std::max(1.0, rc[i].nll));
    EXPECT_EQ(rg[i].continuation.size(), 8u);  // (greedy tokens of a random model may tie: not compared)
    for (size_t t = 1; t < ids.size(); ++t) EXPECT_NEAR(rg[i].logprob[t], rc[i].logprob[t], 1e-3);
  }
  EXPECT_NE(rg[0].nll, rg[1].nll);  // freezing changed the model
}

TEST(LabOnGpu, KernelRowsReproduceTheGpusOutputs) {
  GPU_OR_SKIP("long_500", g);
  std::vector<int32_t> ids(g.fx.input_ids.begin(), g.fx.input_ids.begin() + 120);
  lab::KernelOptions o;
  o.layer = 1;
  const auto r = lab::selective_kernel(*g.ckpt, *g.be, ids, o);
  EXPECT_LE(r.reconstruction_rel, 1e-3);
  EXPECT_LE(r.lti_reconstruction_rel, 1e-3);
  EXPECT_LT(r.nonstationarity_lti, 1e-5);
  EXPECT_GT(r.nonstationarity, r.nonstationarity_lti);
}

TEST(LabOnGpu, NoInterventionReproducesTheOriginalExactly) {
  GPU_OR_SKIP("tied_fp32", g);
  lab::InterventionOptions o;
  o.n_continue = 4;
  auto r = lab::intervene(*g.be, g.ckpt->config(), g.fx.input_ids, o);
  EXPECT_TRUE(r.identical);
  EXPECT_EQ(r.continuation_original, r.continuation_intervened);
  o.overrides = {{-1, 3, 0.0f}};
  r = lab::intervene(*g.be, g.ckpt->config(), g.fx.input_ids, o);
  EXPECT_FALSE(r.identical);
  for (int64_t t = 0; t < 3; ++t) EXPECT_EQ(r.logits_change[size_t(t)], 0.0f);
}

TEST(LabOnGpu, LastLayerLensIsTheModelsArgmax) {
  GPU_OR_SKIP("tied_fp32", g);
  const auto r = lab::layer_lens(*g.ckpt, *g.be, g.fx.input_ids, 1);
  int agree = 0;
  for (int64_t t = 0; t < r.L; ++t) {
    const float* row = g.fx.logits_row(size_t(t));
    int64_t best = 0;
    for (int64_t v = 1; v < g.fx.vocab; ++v)
      if (row[v] > row[best]) best = v;
    agree += r.top(r.n_layer - 1, t)[0] == best;
  }
  EXPECT_EQ(agree, r.L);
}

TEST(LabOnGpu, ModelSweepRunsOnTheGpu) {
  GPU_OR_SKIP("tied_fp32", g);
  lab::SweepOptions o;
  o.scope = lab::SweepScope::Model;
  o.lengths = {16, 64, 256};
  o.max_repeats = 1;
  o.min_seconds = 0;
  const auto r = lab::sweep(*g.ckpt, g.be.get(), o);
  ASSERT_EQ(r.series.size(), 4u);
  for (const auto& s : r.series) {
    EXPECT_TRUE(g.be->supports(s.method));
    EXPECT_EQ(s.points.size(), 3u) << s.label << ": " << s.stopped;
    for (const auto& p : s.points)
      EXPECT_EQ(p.peak_bytes_estimate, lab::detail::gpu_mode_peak_bytes(g.ckpt->config(), s.method, p.L, false));
  }
}

// No GPU needed: the estimates the lab shows for the GPU. No mode builds an L × L matrix there.
TEST(LabGpuEstimates, NoModeIsQuadraticInMemoryOnTheGpu) {
  ModelConfig c;
  c.d_model = 768; c.n_layer = 24; c.d_inner = 1536; c.d_state = 16; c.dt_rank = 48; c.d_conv = 4;
  c.vocab_size = 50280;
  for (ScanMode m : {ScanMode::Scan, ScanMode::Convolution, ScanMode::LtiFft}) {
    SCOPED_TRACE(mode_name(m));
    const double small = double(lab::detail::gpu_mode_peak_bytes(c, m, 4096, false));
    const double large = double(lab::detail::gpu_mode_peak_bytes(c, m, 131072, false));
    EXPECT_LT(large / small, 2 * 32.0);  // 32× the tokens: linear (the FFT's padding up to 2×)
    EXPECT_GT(large / small, 16.0);
    EXPECT_LT(large, 20.0 * (1ull << 30));  // L = 131072 of the 130m shape fits an H200 easily
  }
  // The convolution keeps Δ and its running sum (fp32 + double) beyond the scan's buffers.
  EXPECT_GT(lab::detail::gpu_mode_peak_bytes(c, ScanMode::Convolution, 1000, false),
            lab::detail::gpu_mode_peak_bytes(c, ScanMode::Scan, 1000, false) + size_t(1000 * 1536 * 12) - 1);
  // Decoding holds one token's vectors, whatever L.
  EXPECT_EQ(lab::detail::gpu_mode_peak_bytes(c, ScanMode::Recurrent, 1, false),
            lab::detail::gpu_mode_peak_bytes(c, ScanMode::Recurrent, 100000, false));
}

}  // namespace
