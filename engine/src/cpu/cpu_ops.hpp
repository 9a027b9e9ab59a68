// The CPU backend's ops: the fp32 reference every CUDA kernel is checked against. One function
// per op, named as its CUDA twin (engine/src/cuda). Buffers are row-major and token-major:
// x {L, d} means L rows of d floats. Each op is preceded in cpu_ops.cpp by the PyTorch line
// it implements.
#pragma once
#include <cstdint>

namespace mambascope::cpu {

// out {n, d} = rms_norm(x) * w.  x, out may alias.
void rms_norm(const float* x, const float* w, float eps, int64_t n, int64_t d, float* out);
// residual {n, d} += x (if x != null); out = rms_norm(residual) * w. Fused add + norm.
void add_rms_norm(float* residual, const float* x, const float* w, float eps, int64_t n,
                  int64_t d, float* out);
// out {n, d} = table[ids[i]]
void embedding(const int32_t* ids, const float* table, int64_t n, int64_t d, float* out);
// y {n, out_f} = x {n, in_f} · W^T (W {out_f, in_f}) + bias.  OpenBLAS sgemm.
void linear(const float* x, const float* W, const float* bias, int64_t n, int64_t in_f,
            int64_t out_f, float* y, int64_t ldx = 0, int64_t ldy = 0);
// Causal depthwise conv over L tokens continuing from conv_state {d, k-1} (the last k-1 inputs,
// oldest first), then SiLU. x {L, d} with row stride ldx; out {L, d}. conv_state is updated.
void conv1d_causal_silu(const float* x, int64_t ldx, float* conv_state, const float* w /*{d,k}*/,
                        const float* b /*{d} or null*/, int64_t L, int64_t d, int64_t k, float* out);
// delta {L, d} = softplus(dt {L, d} + bias {d})
void softplus_bias(const float* dt, const float* bias, int64_t L, int64_t d, float* delta);

// The selective SSM with the D skip, for L tokens from state h {d, N} (updated):
//   Ā_t = exp(Δ_t A), B̄_t x_t = Δ_t B_t x_t, h_t = Ā_t h_{t-1} + B̄_t x_t, y_t = C_t·h_t + D x_t
// u, delta {L, d}; A {d, N} (= -exp(A_log)); B, C {L, N} with row strides ldb, ldc; D {d};
// y {L, d}. If h_all != null it receives every h_t {L, d, N} (probes).
struct SsmArgs {
  const float* u; const float* delta; const float* A; const float* B; int64_t ldb;
  const float* C; int64_t ldc; const float* D;
  int64_t L, d, N;
  float* h;      // {d, N} in/out
  float* y;      // {L, d}
  float* h_all = nullptr;  // optional {L, d, N}
};
void ssm_scan_recurrent(const SsmArgs& a);      // one token at a time
void ssm_scan_chunked(const SsmArgs& a, int64_t chunk = 64);  // chunked parallel scan
// Builds K[t,s] = Σ_n C_t[n] exp(Σ_{k=s+1..t} Δ_k[c] A[c,n]) Δ_s[c] B_s[n] per channel in log
// space and applies it: y_t = Σ_{s≤t} K[t,s] u_s + D u_t + (contribution of the initial h).
// h_all is not filled here (the backend runs the recurrence beside it when probes want h).
void ssm_conv_selective(const SsmArgs& a);
// The kernel matrix of one channel c: K {L, L} (upper triangle zero).
void ssm_selective_kernel(const SsmArgs& a, int64_t channel, float* K);

// LTI: Δ {d}, B, C {d, N} fixed. K_c[k] = Σ_n C[c,n] Ā[c,n]^k Δ[c] B[c,n]; y = K * u by FFT,
// plus the initial state's contribution Σ_n C[c,n] Ā^(t+1) h0 and D u. h updated to h_L.
struct LtiArgs {
  const float* u; const float* delta; const float* A; const float* B; const float* C;
  const float* D; int64_t L, d, N;
  float* h;  // {d, N} in/out
  float* y;  // {L, d}
};
void ssm_lti_fft(const LtiArgs& a);
void ssm_lti_recurrent(const LtiArgs& a);  // the same LTI system run as an RNN (the check)
void ssm_lti_direct(const LtiArgs& a);     // K applied as a causal Toeplitz matrix, O(L²)
void ssm_lti_kernel(const LtiArgs& a, int64_t channel, float* K /*{L}*/);

// y {L, d} *= SiLU(z {L, d}, row stride ldz)
void gate_silu(float* y, const float* z, int64_t ldz, int64_t L, int64_t d);

}  // namespace mambascope::cpu
