// The convolution mode on the GPU: the twin of cpu::ssm_conv_selective (and, for a frozen layer,
// of cpu::ssm_lti_direct). The selective kernel matrix
//   K[t,s] = Σ_n C_t[n]·exp(A[c,n]·(S_t − S_s))·Δ_s·B_s[n],   S_t = Σ_{k≤t} Δ_k   (per channel)
// is formed tile by tile and applied to u, honestly O(L²·d·N), like attention: 64 × 64 tiles of K
// live in registers and shared memory, never an L × L buffer. The frozen layer's Toeplitz matrix
// K_c[t − s] is applied the same way, O(L²·d). The final state comes in closed form.
#pragma once
#include <cuda_runtime.h>

#include "cuda/lti_fft.hpp"
#include "cuda/ssm_modes.hpp"

namespace mambascope::cuda {

struct ConvWorkspace {
  DeviceMemory delta;    // {L, d} fp32: Δ after softplus and the interventions
  DeviceMemory S;        // {L, d} double: the running sum of Δ
  DeviceMemory chunks;   // {L / 256 + 1, d} double: per-chunk sums of Δ
  DeviceMemory partial;  // ssm_final_state's
};

// y {L, d} (and ypre, h) of one layer in the convolution mode; selective, or frozen when
// a.delta_const is set (then lti's buffers are used).
void ssm_convolution(const SsmModeArgs& a, ConvWorkspace& ws, LtiWorkspace& lti, cudaStream_t stream);

// Bytes of GPU workspace ssm_convolution / ssm_lti_fft need (cuFFT's own work area not counted).
size_t convolution_workspace_bytes(int64_t L, int d, int N, bool frozen);
size_t lti_fft_workspace_bytes(int64_t L, int d, int N);

}  // namespace mambascope::cuda
