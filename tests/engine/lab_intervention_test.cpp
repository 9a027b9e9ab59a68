// The numbers behind the intervention and layer-lens views (engine/src/lab/intervention.cpp,
// lens.cpp): no intervention reproduces the original exactly; Δ = 0 at a token leaves everything
// before it untouched and passes the state through it; the last layer's lens is the model's output.
#include <gtest/gtest.h>

#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

using namespace mambascope;

namespace {

TEST(LabIntervention, NoChangeReproducesTheOriginalExactly) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  for (const std::vector<DeltaOverride>& overrides :
       {std::vector<DeltaOverride>{}, std::vector<DeltaOverride>{{-1, 100000, 0.0f}}}) {
    lab::InterventionOptions o;
    o.overrides = overrides;
    o.n_continue = 6;
    o.h_layer = 1;
    const auto r = lab::intervene(*be, ckpt->config(), fx.input_ids, o);
    EXPECT_TRUE(r.identical);
    EXPECT_EQ(r.top_original, r.top_intervened);
    EXPECT_EQ(r.continuation_original, r.continuation_intervened);
    ASSERT_EQ(r.continuation_original.size(), 6u);
    for (float v : r.logits_change) ASSERT_EQ(v, 0.0f);
    for (float v : r.kl) ASSERT_EQ(v, 0.0f);
    for (float v : r.y_change) ASSERT_EQ(v, 0.0f);
    for (float v : r.h_change) ASSERT_EQ(v, 0.0f);
    for (float v : r.state_change) ASSERT_EQ(v, 0.0f);
  }
}

TEST(LabIntervention, IgnoringATokenChangesOnlyWhatComesAfterIt) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  const int64_t k = 5;
  lab::InterventionOptions o;
  o.overrides = {{-1, k, 0.0f}};
  o.n_continue = 0;
  o.h_layer = 0;
  const auto r = lab::intervene(*be, ckpt->config(), fx.input_ids, o);
  EXPECT_FALSE(r.identical);
  for (int64_t t = 0; t < k; ++t) {
    EXPECT_EQ(r.logits_change[size_t(t)], 0.0f);
    EXPECT_EQ(r.h_change[size_t(t)], 0.0f);
  }
  // Δ = 0 in layer 0: h_k = h_{k-1}, so h at k differs from the original (which wrote token k).
  EXPECT_GT(r.h_change[size_t(k)], 0.0f);
  double later = 0;
  for (size_t t = size_t(k) + 1; t < r.kl.size(); ++t) later = std::max(later, double(r.logits_change[t]));
  EXPECT_GT(later, 1e-4);
  for (float s : r.state_change) EXPECT_GT(s, 0.0f);
}

TEST(LabIntervention, ANegativeDeltaIsRefused) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  lab::InterventionOptions o;
  o.overrides = {{0, 1, -1.0f}};
  EXPECT_THROW(lab::intervene(*be, ckpt->config(), fx.input_ids, o), Error);
  o.overrides = {{9, 1, 0.0f}};
  EXPECT_THROW(lab::intervene(*be, ckpt->config(), fx.input_ids, o), Error);
}

TEST(LabLens, LastLayerLensIsTheModelsOwnPrediction) {
  const auto fx = mambascope::testing::load_hf_fixture("untied_bias_noconvbias");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  const auto r = lab::layer_lens(*ckpt, *be, fx.input_ids, 3);
  const int64_t L = int64_t(fx.input_ids.size()), V = fx.vocab;
  ASSERT_EQ(r.n_layer, ckpt->config().n_layer);
  ASSERT_EQ(r.L, L);
  for (int64_t t = 0; t < L; ++t) {
    const float* row = fx.logits_row(size_t(t));
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > row[best]) best = v;
    EXPECT_EQ(r.top(r.n_layer - 1, t)[0], best) << "token " << t;
    for (int64_t l = 0; l < r.n_layer; ++l) {
      const float* p = &r.probs[size_t((l * L + t) * 3)];
      EXPECT_GE(p[0], p[1]);
      EXPECT_GE(p[1], p[2]);
      EXPECT_LE(p[0] + p[1] + p[2], 1.0f + 1e-5f);
    }
  }
}

}  // namespace
