// The LTI-by-FFT mode on the GPU: the twin of cpu::ssm_lti_fft. With Δ, B, C frozen, channel c
// is one causal convolution with K_c[k] = Σ_n C[c,n]·exp(k·Δ_c·A[c,n])·Δ_c·B[c,n], k < L, applied
// by cuFFT (batched in-place R2C / C2R over the d channels, zero-padded to a power of two ≥ 2L so
// that the circular convolution is the causal one), plus the initial state's decay, D·u and the
// gate; the final state in closed form. The kernel and the finishing step are shared with the
// frozen convolution mode (ssm_convolution.cu), which applies K as a Toeplitz matrix instead.
#pragma once
#include <cufft.h>

#include <cstdint>
#include <list>

#include "cuda/ssm_modes.hpp"

namespace mambascope::cuda {

// cuFFT plans per (length, batch), the most recent few kept (a plan holds its own work area).
class FftPlanCache {
 public:
  struct Plans {
    int64_t M = 0, batch = 0;
    cufftHandle r2c = 0, c2r = 0;
  };
  FftPlanCache() = default;
  FftPlanCache(const FftPlanCache&) = delete;
  FftPlanCache& operator=(const FftPlanCache&) = delete;
  ~FftPlanCache() { clear(); }
  const Plans& get(int64_t M, int64_t batch, int64_t L);  // throws Error (mode, length) on failure
  void clear();

 private:
  static constexpr size_t kKeep = 4;
  std::list<Plans> plans_;  // most recent first
};

struct LtiWorkspace {
  DeviceMemory K, U, out, partial;  // K, U, out {d, ldk} fp32; partial: ssm_final_state's
  FftPlanCache plans;
};

// y {L, d} (and ypre, h) of a frozen layer; a.delta_const, B_const, C_const must be set.
void ssm_lti_fft(const SsmModeArgs& a, LtiWorkspace& ws, cudaStream_t stream);

// K {d, ldk}: K_c[k] for k < L, 0 up to ldk; U {d, ldk}: u transposed, 0 from L up to ldk.
void lti_prepare(const SsmModeArgs& a, float* K, float* U, int64_t ldk, cudaStream_t stream);
// y_t = ku[c, t] + Σ_n C[c,n]·exp((t+1)·Δ_c·A[c,n])·h0[c,n] + D_c·u_t, gated; then h <- h_L.
// ku {d, ldk}: the causal convolution K_c * u_c.
void lti_finish(const SsmModeArgs& a, const float* ku, int64_t ldk, DeviceMemory& partial,
                cudaStream_t stream);

}  // namespace mambascope::cuda
