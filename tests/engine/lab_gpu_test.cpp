// The Modes Lab's numbers on the CUDA backend (skipped without a GPU): the modes agree within
// the lab's tolerance on an fp32 checkpoint, the kernel built from the GPU's recorded Δ, B, C
// reproduces its outputs, no intervention reproduces the original exactly, and the last layer's
// lens is the model's argmax.
#include <gtest/gtest.h>

#include "hf_fixture.hpp"
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
  for (const auto& m : r.modes) {
    SCOPED_TRACE(mode_name(m.mode));
    if (!m.skipped.empty()) continue;  // a mode this backend does not run says so
    EXPECT_LE(m.y_rel, lab::kModeTolerance);
    EXPECT_LE(m.logits_rel, lab::kModeTolerance);
    EXPECT_EQ(m.argmax_agree, int64_t(g.fx.input_ids.size()));
  }
  EXPECT_TRUE(r.ok) << lab::equivalence_json(r).substr(0, 2000);
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
  for (const auto& s : r.series) {
    if (g.be->supports(s.method))
      EXPECT_EQ(s.points.size(), 3u) << s.label << ": " << s.stopped;
    else  // a mode the GPU does not run is reported, not measured
      EXPECT_EQ(s.stopped.rfind("not run: ", 0), 0u) << s.stopped;
  }
}

}  // namespace
