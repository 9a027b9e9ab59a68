// Convolution mode for the selective SSM: the recurrence unrolled into a causal L × L matrix per
// channel ("hidden attention"), K[t,s] = Σ_n C_t[n] · exp(Σ_{k=s+1..t} Δ_k A[n]) · Δ_s B_s[n].
// The products of Ā are formed as differences of a running log-sum kept in double precision, so
// nothing underflows at thousands of tokens and nothing cancels catastrophically.
// Cost: O(L² · N) per channel, and O(L²) memory for the matrix: the point of this mode is to show
// what selectivity costs when it is written as a convolution.
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cpu {
namespace {

// P {L, N}: P[t][n] = Σ_{k=0..t} Δ_k A[n]  (log of the decay from the start to token t)
void log_decay_prefix(const SsmArgs& a, int64_t c, std::vector<double>& P) {
  P.assign(size_t(a.L * a.N), 0.0);
  const float* A = a.A + c * a.N;
  for (int64_t n = 0; n < a.N; ++n) {
    double s = 0;
    for (int64_t t = 0; t < a.L; ++t) {
      s += double(a.delta[t * a.d + c]) * A[n];
      P[t * a.N + n] = s;
    }
  }
}

void fill_kernel(const SsmArgs& a, int64_t c, const std::vector<double>& P, float* K) {
  const int64_t L = a.L, N = a.N, d = a.d;
  for (int64_t t = 0; t < L; ++t) {
    const float* C = a.C + t * a.ldc;
    const double* Pt = &P[t * N];
    float* row = K + t * L;
    for (int64_t s = 0; s <= t; ++s) {
      const float* B = a.B + s * a.ldb;
      const double* Ps = &P[s * N];
      const float dts = a.delta[s * d + c];
      float k = 0;
      for (int64_t n = 0; n < N; ++n) k += C[n] * std::exp(float(Pt[n] - Ps[n])) * dts * B[n];
      row[s] = k;
    }
    for (int64_t s = t + 1; s < L; ++s) row[s] = 0.0f;
  }
}

}  // namespace

void ssm_selective_kernel(const SsmArgs& a, int64_t channel, float* K) {
  std::vector<double> P;
  log_decay_prefix(a, channel, P);
  fill_kernel(a, channel, P, K);
}

void ssm_conv_selective(const SsmArgs& a) {
  const int64_t L = a.L, d = a.d, N = a.N;
  const double matrix_bytes = double(L) * double(L) * sizeof(float);
  if (matrix_bytes > 2.0 * (1ull << 30))
    throw Error("convolution mode would materialise a " + std::to_string(L) + " x " +
                std::to_string(L) + " kernel matrix per channel (" +
                std::to_string(int(matrix_bytes / (1 << 20))) +
                " MiB per thread); that is the O(L^2) cost of this mode. Use --mode scan or "
                "recurrent for sequences this long.");
  parallel_for(d, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> P;
    std::vector<float> K(static_cast<size_t>(L * L));  // K {L, L}
    for (int64_t c = c0; c < c1; ++c) {
      log_decay_prefix(a, c, P);
      fill_kernel(a, c, P, K.data());
      float* h = a.h + c * N;  // h0 {N} on entry, h_{L-1} on exit
      for (int64_t t = 0; t < L; ++t) {
        const float* C = a.C + t * a.ldc;
        const float* row = K.data() + t * L;
        float y = 0;
        for (int64_t s = 0; s <= t; ++s) y += row[s] * a.u[s * d + c];
        for (int64_t n = 0; n < N; ++n) y += C[n] * std::exp(float(P[t * N + n])) * h[n];
        a.y[t * d + c] = y + a.D[c] * a.u[t * d + c];
      }
      // final state: h_{L-1} = exp(P_{L-1}) h0 + Σ_s exp(P_{L-1} - P_s) Δ_s B_s u_s
      for (int64_t n = 0; n < N; ++n) {
        const double Pend = P[(L - 1) * N + n];
        double acc = std::exp(Pend) * h[n];
        for (int64_t s = 0; s < L; ++s)
          acc += std::exp(Pend - P[s * N + n]) * a.delta[s * d + c] * a.B[s * a.ldb + n] * a.u[s * d + c];
        h[n] = float(acc);
      }
    }
  });
}

}  // namespace mambascope::cpu
