// The time-invariant SSM (Δ, B, C fixed per channel, as in S4 or a frozen Mamba layer), run two
// ways that must agree: as an RNN, and as one causal convolution per channel applied by FFT
// (FFTW). K_c[k] = Σ_n C[c,n] · exp(k Δ_c A[c,n]) · Δ_c B[c,n].
#include <fftw3.h>

#include <cmath>
#include <complex>
#include <map>
#include <mutex>
#include <vector>

#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"

namespace mambascope::cpu {
namespace {

struct FftPlans {
  fftwf_plan forward = nullptr, inverse = nullptr;
};

// FFTW's planner is not thread-safe; plans are made once per size under a lock and then executed
// concurrently on per-thread buffers with the new-array interface.
FftPlans plans_for(int64_t M) {
  static std::mutex mutex;
  static std::map<int64_t, FftPlans> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(M);
  if (it != cache.end()) return it->second;
  float* r = fftwf_alloc_real(size_t(M));
  fftwf_complex* f = fftwf_alloc_complex(size_t(M / 2 + 1));
  FftPlans p;
  p.forward = fftwf_plan_dft_r2c_1d(int(M), r, f, FFTW_ESTIMATE);
  p.inverse = fftwf_plan_dft_c2r_1d(int(M), f, r, FFTW_ESTIMATE);
  fftwf_free(r);
  fftwf_free(f);
  cache[M] = p;
  return p;
}

int64_t fft_size(int64_t L) {
  int64_t M = 1;
  while (M < 2 * L) M <<= 1;
  return M;
}

}  // namespace

void ssm_lti_kernel(const LtiArgs& a, int64_t c, float* K) {
  const float dt = a.delta[c];
  for (int64_t k = 0; k < a.L; ++k) {
    double acc = 0;
    for (int64_t n = 0; n < a.N; ++n) {
      const double logdecay = double(k) * dt * a.A[c * a.N + n];
      acc += double(a.C[c * a.N + n]) * std::exp(logdecay) * dt * a.B[c * a.N + n];
    }
    K[k] = float(acc);
  }
}

// ssm_state = exp(Δ A) * ssm_state + Δ B u;  y = C · ssm_state + D u, with Δ, B, C fixed
void ssm_lti_recurrent(const LtiArgs& a) {
  const int64_t L = a.L, d = a.d, N = a.N;
  parallel_for(d, channel_grain(L, N), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float dt = a.delta[c];
      const float* A = a.A + c * N;
      const float* B = a.B + c * N;
      const float* C = a.C + c * N;
      float* h = a.h + c * N;
      for (int64_t t = 0; t < L; ++t) {
        const float u = a.u[t * d + c];
        float y = 0;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dt * A[n]) * h[n] + dt * B[n] * u;
          y += C[n] * h[n];
        }
        a.y[t * d + c] = y + a.D[c] * u;
      }
    }
  });
}

// Adds the initial state's decay and the D skip to y (which holds K * u), and advances h to
// h_{L-1} = Ā^L h0 + Σ_s Ā^(L-1-s) Δ B u_s. Shared by the FFT and the direct convolution.
static void lti_finish_channel(const LtiArgs& a, int64_t c, const float* k_conv_u /*{L}*/) {
  const int64_t L = a.L, d = a.d, N = a.N;
  const float dt = a.delta[c];
  const float* A = a.A + c * N;
  const float* B = a.B + c * N;
  const float* C = a.C + c * N;
  float* h = a.h + c * N;
  for (int64_t t = 0; t < L; ++t) {
    float from_h0 = 0;  // Σ_n C[n] Ā[n]^(t+1) h0[n]
    for (int64_t n = 0; n < N; ++n) from_h0 += C[n] * std::exp(float(t + 1) * dt * A[n]) * h[n];
    a.y[t * d + c] = k_conv_u[t] + from_h0 + a.D[c] * a.u[t * d + c];
  }
  for (int64_t n = 0; n < N; ++n) {
    double acc = std::exp(double(L) * dt * A[n]) * h[n];
    for (int64_t s = 0; s < L; ++s)
      acc += std::exp(double(L - 1 - s) * dt * A[n]) * dt * B[n] * a.u[s * d + c];
    h[n] = float(acc);
  }
}

// y = irfft(rfft(K) · rfft(u)) over a zero-padded length ≥ 2L (so the circular convolution is
// the causal linear one), plus the initial state's decay and the D skip.
void ssm_lti_fft(const LtiArgs& a) {
  const int64_t L = a.L, d = a.d;
  const int64_t M = fft_size(L);
  const FftPlans plans = plans_for(M);
  parallel_for(d, 8, [&](int64_t c0, int64_t c1) {
    float* k_time = fftwf_alloc_real(size_t(M));  // {M}
    float* u_time = fftwf_alloc_real(size_t(M));  // {M}
    fftwf_complex* k_freq = fftwf_alloc_complex(size_t(M / 2 + 1));
    fftwf_complex* u_freq = fftwf_alloc_complex(size_t(M / 2 + 1));
    for (int64_t c = c0; c < c1; ++c) {
      std::fill(k_time, k_time + M, 0.0f);
      std::fill(u_time, u_time + M, 0.0f);
      ssm_lti_kernel(a, c, k_time);
      for (int64_t t = 0; t < L; ++t) u_time[t] = a.u[t * d + c];
      fftwf_execute_dft_r2c(plans.forward, k_time, k_freq);
      fftwf_execute_dft_r2c(plans.forward, u_time, u_freq);
      for (int64_t f = 0; f < M / 2 + 1; ++f) {
        std::complex<float> p = std::complex<float>(k_freq[f][0], k_freq[f][1]) *
                                std::complex<float>(u_freq[f][0], u_freq[f][1]);
        u_freq[f][0] = p.real() / float(M);  // FFTW's inverse is unnormalised
        u_freq[f][1] = p.imag() / float(M);
      }
      fftwf_execute_dft_c2r(plans.inverse, u_freq, u_time);  // u_time[0..L) = K * u
      lti_finish_channel(a, c, u_time);
    }
    fftwf_free(k_time);
    fftwf_free(u_time);
    fftwf_free(k_freq);
    fftwf_free(u_freq);
  });
}

// The same convolution written as the causal Toeplitz matrix, O(L²): the LTI row of the
// convolution mode.
void ssm_lti_direct(const LtiArgs& a) {
  const int64_t L = a.L, d = a.d;
  parallel_for(d, 8, [&](int64_t c0, int64_t c1) {
    std::vector<float> K(static_cast<size_t>(L)), ku(static_cast<size_t>(L));
    for (int64_t c = c0; c < c1; ++c) {
      ssm_lti_kernel(a, c, K.data());
      for (int64_t t = 0; t < L; ++t) {
        float acc = 0;
        for (int64_t s = 0; s <= t; ++s) acc += K[t - s] * a.u[s * d + c];
        ku[t] = acc;
      }
      lti_finish_channel(a, c, ku.data());
    }
  });
}

}  // namespace mambascope::cpu
