#include "mambascope/error.hpp"
// The three SSM modes are one system: the recurrence, the chunked scan and the selective-kernel
// convolution give the same y and final state; the LTI system gives the same y as an RNN, as a
// Toeplitz matrix and by FFT. Checked op by op on random inputs with realistic magnitudes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/cpu_ops.hpp"

using namespace mambascope::cpu;

namespace {

struct SsmCase {
  int64_t L, d, N;
  std::vector<float> u, delta, A, BC, D, h0;  // BC {L, 2N}: B then C per row
};

SsmCase make_case(int64_t L, int64_t d, int64_t N, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_dt(std::log(1e-3f), std::log(1e-1f));
  SsmCase c{L, d, N, {}, {}, {}, {}, {}, {}};
  c.u.resize(size_t(L * d));
  c.delta.resize(size_t(L * d));
  c.A.resize(size_t(d * N));
  c.BC.resize(size_t(L * 2 * N));
  c.D.resize(size_t(d));
  c.h0.resize(size_t(d * N));
  for (auto& v : c.u) v = normal(rng);
  for (auto& v : c.delta) v = std::exp(log_dt(rng)) * 5.0f;  // Δ in [5e-3, 0.5]
  for (int64_t ch = 0; ch < d; ++ch)
    for (int64_t n = 0; n < N; ++n) c.A[ch * N + n] = -float(n + 1);  // A = -exp(log(1..N))
  for (auto& v : c.BC) v = normal(rng);
  for (auto& v : c.D) v = 1.0f + 0.1f * normal(rng);
  for (auto& v : c.h0) v = 0.5f * normal(rng);
  return c;
}

struct Result {
  std::vector<float> y, h;
};

template <class Fn>
Result run(const SsmCase& c, Fn fn) {
  Result r{std::vector<float>(size_t(c.L * c.d)), c.h0};
  SsmArgs a{c.u.data(), c.delta.data(), c.A.data(), c.BC.data(), 2 * c.N, c.BC.data() + c.N,
            2 * c.N, c.D.data(), c.L, c.d, c.N, r.h.data(), r.y.data()};
  fn(a);
  return r;
}

// max |a - b| / max(max |b|, 1e-6)
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / den;
}

}  // namespace

class SsmModesAgree : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(SsmModesAgree, ScanAndConvolutionMatchTheRecurrence) {
  auto [L, d, N] = GetParam();
  SsmCase c = make_case(L, d, N, uint32_t(L * 131 + d * 7 + N));
  Result ref = run(c, [](const SsmArgs& a) { ssm_scan_recurrent(a); });
  Result scan = run(c, [](const SsmArgs& a) { ssm_scan_chunked(a, 16); });
  Result conv = run(c, [](const SsmArgs& a) { ssm_conv_selective(a); });
  EXPECT_LT(rel_diff(scan.y, ref.y), 1e-5);
  EXPECT_LT(rel_diff(scan.h, ref.h), 1e-5);
  EXPECT_LT(rel_diff(conv.y, ref.y), 1e-4);
  EXPECT_LT(rel_diff(conv.h, ref.h), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SsmModesAgree,
                         ::testing::Values(std::make_tuple(1, 8, 16), std::make_tuple(17, 5, 4),
                                           std::make_tuple(64, 16, 16), std::make_tuple(100, 3, 64),
                                           std::make_tuple(257, 4, 8)));

TEST(SelectiveKernel, RowTReproducesOutputT) {
  SsmCase c = make_case(40, 3, 16, 7);
  std::fill(c.h0.begin(), c.h0.end(), 0.0f);  // the kernel alone, no initial state
  Result ref = run(c, [](const SsmArgs& a) { ssm_scan_recurrent(a); });
  std::vector<float> K(size_t(c.L * c.L)), h(c.h0);
  SsmArgs a{c.u.data(), c.delta.data(), c.A.data(), c.BC.data(), 2 * c.N, c.BC.data() + c.N,
            2 * c.N, c.D.data(), c.L, c.d, c.N, h.data(), nullptr};
  for (int64_t ch = 0; ch < c.d; ++ch) {
    ssm_selective_kernel(a, ch, K.data());
    for (int64_t t = 0; t < c.L; ++t) {
      double y = c.D[ch] * c.u[t * c.d + ch];
      for (int64_t s = 0; s <= t; ++s) y += K[t * c.L + s] * c.u[s * c.d + ch];
      EXPECT_NEAR(y, ref.y[t * c.d + ch], 1e-4 * (1 + std::fabs(y))) << "channel " << ch << " t " << t;
      for (int64_t s = t + 1; s < c.L; ++s) EXPECT_EQ(K[t * c.L + s], 0.0f);  // causal
    }
  }
}

TEST(SelectiveKernel, NoUnderflowOverTwoThousandTokens) {
  // Σ Δ·A reaches about -2500 here: exp of that underflows, differences of it must not.
  SsmCase c = make_case(2500, 2, 16, 11);
  Result ref = run(c, [](const SsmArgs& a) { ssm_scan_recurrent(a); });
  Result conv = run(c, [](const SsmArgs& a) { ssm_conv_selective(a); });
  for (float v : conv.y) ASSERT_TRUE(std::isfinite(v));
  EXPECT_LT(rel_diff(conv.y, ref.y), 1e-4);
}

TEST(LtiSsm, FftAndToeplitzMatchTheRecurrence) {
  for (int64_t L : {1, 7, 64, 1000}) {
    const int64_t d = 6, N = 16;
    SsmCase c = make_case(L, d, N, uint32_t(L));
    std::vector<float> delta(c.delta.begin(), c.delta.begin() + d);  // one Δ per channel
    std::vector<float> B(size_t(d * N)), C(size_t(d * N));
    for (int64_t i = 0; i < d * N; ++i) {
      B[i] = c.BC[i % (2 * N)];
      C[i] = c.BC[(i + N) % (2 * N)] * 0.5f;
    }
    auto lti = [&](void (*fn)(const LtiArgs&)) {
      Result r{std::vector<float>(size_t(L * d)), c.h0};
      LtiArgs a{c.u.data(), delta.data(), c.A.data(), B.data(), C.data(), c.D.data(), L, d, N,
                r.h.data(), r.y.data()};
      fn(a);
      return r;
    };
    Result rnn = lti(ssm_lti_recurrent), fft = lti(ssm_lti_fft), direct = lti(ssm_lti_direct);
    EXPECT_LT(rel_diff(fft.y, rnn.y), 1e-4) << "L=" << L;
    EXPECT_LT(rel_diff(fft.h, rnn.h), 1e-4) << "L=" << L;
    EXPECT_LT(rel_diff(direct.y, rnn.y), 1e-4) << "L=" << L;
  }
}

TEST(LtiSsm, SelectiveScanWithConstantInputsIsTheLtiSystem) {
  // Freezing Δ, B, C over time makes the selective recurrence time-invariant: same numbers.
  const int64_t L = 50, d = 4, N = 8;
  SsmCase c = make_case(L, d, N, 3);
  for (int64_t t = 1; t < L; ++t) {
    std::copy(c.delta.begin(), c.delta.begin() + d, c.delta.begin() + t * d);
    std::copy(c.BC.begin(), c.BC.begin() + 2 * N, c.BC.begin() + t * 2 * N);
  }
  Result sel = run(c, [](const SsmArgs& a) { ssm_scan_chunked(a, 8); });
  std::vector<float> B(size_t(d * N)), C(size_t(d * N));
  for (int64_t ch = 0; ch < d; ++ch)
    for (int64_t n = 0; n < N; ++n) {
      B[ch * N + n] = c.BC[n];
      C[ch * N + n] = c.BC[N + n];
    }
  Result fft{std::vector<float>(size_t(L * d)), c.h0};
  LtiArgs a{c.u.data(), c.delta.data(), c.A.data(), B.data(), C.data(), c.D.data(), L, d, N,
            fft.h.data(), fft.y.data()};
  ssm_lti_fft(a);
  EXPECT_LT(rel_diff(fft.y, sel.y), 1e-4);
}

TEST(ConvolutionMode, RefusesAMatrixTooLargeForMemory) {
  SsmCase c = make_case(1, 1, 1, 1);
  std::vector<float> y(1), h(1);
  SsmArgs a{c.u.data(), c.delta.data(), c.A.data(), c.BC.data(), 2, c.BC.data() + 1, 2,
            c.D.data(), 40000, 1, 1, h.data(), y.data()};
  EXPECT_THROW(ssm_conv_selective(a), mambascope::Error);
}
