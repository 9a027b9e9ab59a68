// The numbers behind the kernel view (engine/src/lab/kernel.cpp): the selective kernel built from
// recorded Δ, B, C equals the backend's own ssm_selective_kernel; its row t applied to the
// layer's input reproduces y_t; the frozen LTI kernel applied as a convolution reproduces the FFT
// mode; the stationarity score is 0 for a Toeplitz matrix and positive for a selective kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "cpu/cpu_ops.hpp"
#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

using namespace mambascope;

namespace {

struct Fixture {
  mambascope::testing::HfFixture fx;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<Backend> be;
  explicit Fixture(const std::string& name, size_t max_tokens = 0) : fx(mambascope::testing::load_hf_fixture(name)) {
    ckpt = Checkpoint::open(fx.dir);
    be = make_cpu_backend(*ckpt, 2);
    if (max_tokens && fx.input_ids.size() > max_tokens) fx.input_ids.resize(max_tokens);
  }
};

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

TEST(LabKernel, RecordedKernelEqualsTheBackendsSelectiveKernel) {
  Fixture f("tied_fp32");
  const lab::LayerTrace tr = lab::record_layer_trace(*f.ckpt, *f.be, f.fx.input_ids, 1, false);
  const int64_t L = tr.L;
  std::vector<float> h(size_t(tr.d * tr.N)), y(size_t(L * tr.d)), u(size_t(L * tr.d));
  cpu::SsmArgs a{u.data(), tr.delta.data(), tr.A.data(), tr.B.data(), tr.N, tr.C.data(), tr.N, tr.D.data(),
                 L, tr.d, tr.N, h.data(), y.data()};
  std::vector<float> mine(size_t(L * L)), ref(size_t(L * L));
  for (int64_t c : {int64_t(0), tr.d / 2, tr.d - 1}) {
    lab::kernel_channel(tr, c, mine.data());
    cpu::ssm_selective_kernel(a, c, ref.data());
    const double scale = max_abs(ref);
    ASSERT_GT(scale, 0);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(mine[i], ref[i], 1e-5 * scale) << "channel " << c << " entry " << i;
  }
}

TEST(LabKernel, RowTOfTheKernelReproducesYt) {
  Fixture f("long_500", 200);
  const lab::LayerTrace tr = lab::record_layer_trace(*f.ckpt, *f.be, f.fx.input_ids, 1, true);
  const int64_t L = tr.L, d = tr.d;
  ASSERT_EQ(int64_t(tr.u.size()), L * d);
  ASSERT_EQ(int64_t(tr.y.size()), L * d);
  const double yscale = max_abs(tr.y);
  std::vector<float> K(size_t(L * L));
  for (int64_t c : {int64_t(1), d - 2}) {
    lab::kernel_channel(tr, c, K.data());
    for (int64_t t = 0; t < L; ++t) {
      double yt = double(tr.D[size_t(c)]) * tr.u[size_t(t * d + c)];
      for (int64_t s = 0; s <= t; ++s) yt += double(K[size_t(t * L + s)]) * tr.u[size_t(s * d + c)];
      ASSERT_NEAR(yt, tr.y[size_t(t * d + c)], 1e-4 * yscale) << "channel " << c << " token " << t;
    }
  }
}

TEST(LabKernel, EveryViewVerifiesItselfAgainstTheBackend) {
  Fixture f("long_500", 120);
  for (lab::KernelView v : {lab::KernelView::Channel, lab::KernelView::MeanOverChannels, lab::KernelView::Rollout}) {
    SCOPED_TRACE(lab::kernel_view_name(v));
    lab::KernelOptions o;
    o.layer = 1;
    o.view = v;
    o.channel = 5;
    const lab::KernelResult r = lab::selective_kernel(*f.ckpt, *f.be, f.fx.input_ids, o);
    const int64_t L = r.L;
    ASSERT_EQ(int64_t(r.K.size()), L * L);
    ASSERT_EQ(int64_t(r.K_lti.size()), L * L);
    ASSERT_EQ(int64_t(r.lti_kernel.size()), L);
    // Kernel rows reproduce the selective run's y; the LTI kernel reproduces the FFT mode's y.
    EXPECT_GE(r.reconstruction_rel, 0);
    EXPECT_LE(r.reconstruction_rel, 1e-4);
    EXPECT_GE(r.lti_reconstruction_rel, 0);
    EXPECT_LE(r.lti_reconstruction_rel, 1e-4);
    // One kernel for every t: the frozen matrix is Toeplitz, the selective one is not. (The
    // rollout normalises rows, which no Toeplitz matrix survives: there the scores only compare.)
    if (v != lab::KernelView::Rollout) EXPECT_LT(r.nonstationarity_lti, 1e-5);
    EXPECT_GT(r.nonstationarity, r.nonstationarity_lti);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t s = t + 1; s < L; ++s) ASSERT_EQ(r.K[size_t(t * L + s)], 0.0f);  // causal
  }
}

TEST(LabKernel, RolloutRowsAreDistributionsOverEarlierTokens) {
  Fixture f("tied_fp32");
  lab::KernelOptions o;
  o.layer = 1;
  o.view = lab::KernelView::Rollout;
  o.verify = false;
  const lab::KernelResult r = lab::selective_kernel(*f.ckpt, *f.be, f.fx.input_ids, o);
  EXPECT_EQ(r.reconstruction_rel, -1);
  for (int64_t t = 0; t < r.L; ++t) {
    double sum = 0;
    for (int64_t s = 0; s < r.L; ++s) {
      ASSERT_GE(r.K[size_t(t * r.L + s)], 0.0f);
      sum += r.K[size_t(t * r.L + s)];
    }
    EXPECT_NEAR(sum, 1.0, 1e-4) << "row " << t;
  }
}

TEST(LabKernel, FrozenKernelEqualsTheBackendsLtiKernel) {
  Fixture f("dstate_8");
  FrozenSsm frozen;
  ForwardOptions o;
  o.mode = ScanMode::LtiFft;
  o.frozen_out = &frozen;
  auto st = f.be->new_state();
  std::vector<float> logits;
  f.be->forward(f.fx.input_ids, *st, o, logits);
  const int64_t L = 50, d = frozen.d_inner, N = frozen.d_state;
  std::vector<float> A(size_t(d * N));
  const TensorView& alog = f.ckpt->get("backbone.layers.0.mixer.A_log");
  convert_to_f32(alog.dtype, alog.data, A.data(), A.size());
  for (float& a : A) a = -std::exp(a);
  std::vector<float> mine(static_cast<size_t>(L)), ref(static_cast<size_t>(L)), h(size_t(d * N));
  cpu::LtiArgs a{nullptr, frozen.delta.data(), A.data(), frozen.B.data(), frozen.C.data(), nullptr, L, d, N,
                 h.data(), nullptr};
  for (int64_t c = 0; c < d; c += 7) {
    lab::lti_kernel_channel(frozen, 0, A.data(), c, L, mine.data());
    cpu::ssm_lti_kernel(a, c, ref.data());
    for (int64_t j = 0; j < L; ++j) ASSERT_NEAR(mine[size_t(j)], ref[size_t(j)], 1e-6 + 1e-5 * std::fabs(ref[size_t(j)]));
  }
}

TEST(LabKernel, StationarityScoreIsZeroForToeplitzAndPositiveOtherwise) {
  const int64_t L = 6;
  std::vector<float> T(size_t(L * L), 0.0f);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t s = 0; s <= t; ++s) T[size_t(t * L + s)] = std::exp(-0.5f * float(t - s));
  EXPECT_NEAR(lab::nonstationarity(T.data(), L), 0.0, 1e-7);
  std::vector<float> K = T;
  K[size_t(4 * L + 1)] += 1.0f;  // one row is no longer a shifted copy
  EXPECT_GT(lab::nonstationarity(K.data(), L), 0.1);
  std::vector<float> zero(size_t(L * L), 0.0f);
  EXPECT_EQ(lab::nonstationarity(zero.data(), L), 0.0);
}

TEST(LabKernel, BadLayerOrChannelIsAnErrorNotACrash) {
  Fixture f("tied_fp32");
  lab::KernelOptions o;
  o.layer = 7;
  EXPECT_THROW(lab::selective_kernel(*f.ckpt, *f.be, f.fx.input_ids, o), Error);
  o.layer = 0;
  o.view = lab::KernelView::Channel;
  o.channel = 100000;
  EXPECT_THROW(lab::selective_kernel(*f.ckpt, *f.be, f.fx.input_ids, o), Error);
}

}  // namespace

namespace {

TEST(LabKernel, AnLtiModelsKernelIsOneKernelAndReproducesItsOutputs) {
  const std::string dir = MAMBASCOPE_SOURCE_DIR "/models/demos/induction-heads-lti";
  if (!std::filesystem::exists(dir + "/config.json")) GTEST_SKIP() << "no LTI demo model in " << dir;
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(ckpt->config().lti);
  auto be = make_cpu_backend(*ckpt, 2);
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(int32_t(4 + (i * 7) % 16));
  for (lab::KernelView v : {lab::KernelView::Channel, lab::KernelView::MeanOverChannels}) {
    lab::KernelOptions o;
    o.layer = 1;
    o.view = v;
    o.channel = 3;
    const auto r = lab::selective_kernel(*ckpt, *be, ids, o);
    EXPECT_LT(r.nonstationarity, 1e-5);  // no selectivity: every row is the same kernel, shifted
    EXPECT_EQ(r.K, r.K_lti);
    EXPECT_LE(r.reconstruction_rel, 1e-4);  // the model's own parameters give back its outputs
    EXPECT_LE(r.lti_reconstruction_rel, 1e-4);
  }
}

}  // namespace
