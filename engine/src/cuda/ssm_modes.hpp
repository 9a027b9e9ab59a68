// What the GPU's convolution and LTI-FFT modes share: one layer's SSM inputs and outputs (the
// arguments of ssm_convolution() and ssm_lti_fft()), the closed-form final state, and workspace
// growth that says which mode and length did not fit.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_weights.hpp"
#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

// Δ interventions: at token t (index within the call) Δ = value for every channel; later wins.
struct DeltaOverrides {
  static constexpr int kMax = 8;
  int n = 0;
  int64_t t[kMax] = {};
  float value[kMax] = {};
};

// One layer's SSM. Activations are token-major in `dtype` (row strides ld*); A, D, the Δ bias,
// the frozen values, the state and ypre are fp32.
struct SsmModeArgs {
  DType dtype = DType::F32;
  int64_t L = 0;
  int d = 0, N = 0;
  const void* u = nullptr; int64_t ldu = 0;    // {L, d}
  const void* z = nullptr; int64_t ldz = 0;    // {L, d}: the gate; null: none
  // Selective: Δ = softplus(dt + dt_bias) {L, d} (then the overrides), B, C {L, N}.
  const void* dt = nullptr; int64_t lddt = 0;
  const float* dt_bias = nullptr;              // {d} or null
  const void* B = nullptr; int64_t ldb = 0;
  const void* C = nullptr; int64_t ldc = 0;
  DeltaOverrides overrides;
  // Frozen (LTI): Δ {d} after softplus, B, C {d, N}. When set they replace dt, B, C above.
  const float* delta_const = nullptr;
  const float* B_const = nullptr;
  const float* C_const = nullptr;
  const float* A = nullptr;  // {d, N} = -exp(A_log)
  const float* D = nullptr;  // {d} or null
  float* h = nullptr;        // {d, N}: the initial state in, the final state out
  void* y = nullptr; int64_t ldy = 0;  // {L, d}: C·h + D·u, gated by SiLU(z)
  float* ypre = nullptr;     // {L, d} (row stride d) before the gate; optional
  bool frozen() const { return delta_const != nullptr; }
};

// Grows `m` to `bytes`; an allocation the GPU cannot make becomes an Error naming the mode and
// the length, with the memory that was free.
void reserve_for_mode(DeviceMemory& m, size_t bytes, const char* mode, int64_t L);

// h {d, N} <- exp(A·S_end)·h0 + Σ_s exp(A·(S_end − S_s))·Δ_s·B_s·u_s: the state after the L tokens,
// in closed form as the CPU's convolution and LTI modes compute it. S is the inclusive running
// sum of Δ; selective: S {L, d} (double), Δ {L, d}, B {L, N} in dtype; frozen (S null): Δ {d},
// S_s = (s + 1)·Δ, B_const {d, N}.
struct FinalStateArgs {
  DType dtype = DType::F32;
  int64_t L = 0;
  int d = 0, N = 0;
  const void* u = nullptr; int64_t ldu = 0;
  const float* delta = nullptr;
  const double* S = nullptr;
  const void* B = nullptr; int64_t ldb = 0;
  const float* B_const = nullptr;
  const float* A = nullptr;
  float* h = nullptr;
};
// The fields a layer's arguments give (shape, u, A, h); the caller adds Δ, S and B.
inline FinalStateArgs final_state_of(const SsmModeArgs& a) {
  FinalStateArgs f;
  f.dtype = a.dtype;
  f.L = a.L;
  f.d = a.d;
  f.N = a.N;
  f.u = a.u;
  f.ldu = a.ldu;
  f.A = a.A;
  f.h = a.h;
  return f;
}
void ssm_final_state(const FinalStateArgs& a, DeviceMemory& partial, cudaStream_t stream);

}  // namespace mambascope::cuda
