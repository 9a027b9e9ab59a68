// The single-token decode step, batch 1, activations fp32, weights in the model's dtype; every
// launch is graph-capturable (no host synchronisation). Two implementations:
// - the fused step (decode_fused.cu, sm_90): the whole token (every layer, the final norm, the
//   lm_head and greedy sampling) in one persistent kernel, one block per SM;
// - the per-layer kernels (decode.cu): four fused kernels per layer (norm + in_proj + conv step,
//   x_proj, dt_proj + Δ + state update + output + gate, out_proj + residual add) and the final
//   norm + lm_head. They run what the fused step does not: probes, interventions, LTI and frozen
//   layers, GPUs before sm_90, shapes it does not tile.
// And GPU sampling over the whole vocabulary with the top-k alternatives (sample.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

// Device pointers of one layer (fp32 unless noted; null where the model has none).
struct DecodeLayer {
  const float* norm_w = nullptr;     // {d_model}
  const void* in_proj = nullptr;     // {2*d_inner, d_model} (dtype)
  const float* in_bias = nullptr;    // {2*d_inner}
  const float* conv_w = nullptr;     // {d_inner, d_conv}
  const float* conv_b = nullptr;     // {d_inner}
  const void* x_proj = nullptr;      // {dt_rank + 2N, d_inner} (dtype); null for LTI
  const void* dt_proj = nullptr;     // {d_inner, dt_rank} (dtype)
  const float* dt_bias = nullptr;    // {d_inner}
  const float* dt_lti = nullptr;     // {d_inner} (LTI: Δ before softplus)
  const float* B_lti = nullptr;      // {d_inner, N}
  const float* C_lti = nullptr;      // {d_inner, N}
  const float* A = nullptr;          // {d_inner, N} = -exp(A_log)
  const float* D = nullptr;          // {d_inner}
  const void* out_proj = nullptr;    // {d_model, d_inner} (dtype)
  const float* out_bias = nullptr;   // {d_model}
  // Per-channel records for the fused step (fused_records_layout), null for LTI layers.
  const void* recA = nullptr;        // {d_inner, recA bytes}: conv bias, conv weights, x_proj column
  const void* recB = nullptr;        // {d_inner, recB bytes}: dt bias, D, A row, dt_proj row
  float* conv_state = nullptr;       // {d_inner, d_conv - 1}
  float* ssm_state = nullptr;        // {d_inner, N}
};

struct DecodeShape {
  DType dtype;
  int d_model, d_inner, d_state, d_conv, dt_rank;
  float eps;
};

// Scratch for one step (fp32): x, z, y {d_inner}; xdbl {dt_rank + 2N}.
struct DecodeScratch {
  float *x, *z, *xdbl, *y;
};

// Optional per-layer probe outputs of the step (fp32, each may be null).
struct DecodeProbes {
  float* delta = nullptr;   // {d_inner}
  float* hnorm = nullptr;   // {d_inner}
  float* ypre = nullptr;    // {d_inner}: C·h + D·u before the gate
  bool override_delta = false;
  float override_value = 0.f;
};

// residual {d_model} += mixer(norm(residual)); advances the layer's conv and SSM state.
void decode_layer(const DecodeShape& s, const DecodeLayer& w, float* residual,
                  const DecodeScratch& scratch, const DecodeProbes& probes, cudaStream_t stream);
// logits {vocab} = lm_head · norm_f(residual).
void decode_logits(const DecodeShape& s, const float* norm_f, const void* lm_head, int vocab,
                   const float* residual, float* logits, cudaStream_t stream);
// dst {cols, rows} = src {rows, cols} transposed, elements of dt (the fused step's out_proj by
// columns, FusedLayer::out_cols, made once when the plan uses it).
void transpose_matrix(const void* src, void* dst, int rows, int cols, DType dt, cudaStream_t stream);

// What a sampling step hands back to the host: written by the kernel straight into mapped
// pinned memory, so the only device-to-host traffic per token is this struct.
constexpr int kMaxCandidates = 64;
// ids[0] = kNonFiniteToken: some logit was NaN or +inf (or none was above -inf), as the CPU
// Sampler refuses; the step's next input is then token 0, so that nothing reads out of range.
constexpr int32_t kNonFiniteToken = -1;
struct SampleOut {
  int32_t ids[1 + kMaxCandidates];  // the token, then the alternatives' ids
  float prob[kMaxCandidates];       // the alternatives' probabilities
};

// GPU sampling with the CPU Sampler's semantics (sampler.hpp) over the whole vocabulary:
// repetition penalty, temperature, top-k, top-p, min-p, then a draw from a counter-based random
// stream seeded by `seed`; greedy takes the arg-max (ties to the lower id). Reads logits, writes
// the token to out[0] (the next step's input) and everything to *host, and appends the token to
// a device history ring (for the penalty) and a step counter (for the random stream), so that
// it can be replayed inside a CUDA graph.
struct SampleArgs {
  const float* logits = nullptr;
  int vocab = 0;
  float temperature = 0.f;  // 0: greedy
  int top_k = 0;            // 0: off (the whole vocabulary)
  float top_p = 1.f;
  float min_p = 0.f;
  float repetition_penalty = 1.f;
  int window = 0;           // history ring size (repetition window)
  int32_t* ring = nullptr;  // {window}
  int64_t* counters = nullptr;  // [0]: tokens appended to the ring, [1]: sampling steps
  uint64_t seed = 0;
  int n_alt = 0;            // <= kMaxCandidates
  float* work = nullptr;    // {vocab} scratch (penalised logits)
  int32_t* out = nullptr;   // {1}: the token (device)
  SampleOut* host = nullptr;  // mapped pinned memory (device-visible address)
};
void sample(const SampleArgs& a, cudaStream_t stream);
// The fused step samples greedy tokens itself when n_alt <= 8 and the ring fits in shared
// memory; anything else runs sample() after it.
constexpr int kFusedMaxAlt = 8;
constexpr int kFusedMaxWindow = 1024;
inline bool fused_can_sample(const SampleArgs& a) {
  return a.temperature <= 0.f && a.n_alt <= kFusedMaxAlt && a.window <= kFusedMaxWindow;
}

}  // namespace mambascope::cuda
