// The single-token decode step: four fused kernels per layer (norm + in_proj + conv step,
// x_proj, dt_proj + Δ + state update + output + gate, out_proj + residual add), the final norm
// + lm_head, and GPU sampling with the top-k alternatives. Batch 1, activations fp32, weights
// in the model's dtype; every launch is graph-capturable (no host synchronisation).
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

// GPU sampling. Reads logits, writes the token and the alternatives to device memory, and
// appends the token to a device history ring (for the repetition penalty) and a step counter
// (for the random stream), so that it can be replayed inside a CUDA graph.
struct SampleArgs {
  const float* logits = nullptr;
  int vocab = 0;
  float temperature = 0.f;  // 0: greedy
  int top_k = 0;            // 0: off (then at most kMaxCandidates are considered)
  float top_p = 1.f;
  float min_p = 0.f;
  float repetition_penalty = 1.f;
  int window = 0;           // history ring size (repetition window)
  int32_t* ring = nullptr;  // {window}
  int64_t* counters = nullptr;  // [0]: tokens appended to the ring, [1]: sampling steps
  uint64_t seed = 0;
  int n_alt = 0;
  float* work = nullptr;          // {vocab} scratch
  int32_t* out = nullptr;         // {1 + n_alt}: token, then the alternatives' ids
  float* out_prob = nullptr;      // {n_alt}: their probabilities
};
constexpr int kMaxCandidates = 64;
void sample(const SampleArgs& a, cudaStream_t stream);

}  // namespace mambascope::cuda
