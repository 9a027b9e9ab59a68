// fp32 views of a checkpoint's weights for the CPU backend. fp32 storage is used in place (no
// copy); fp16/bf16 storage is converted once into buffers owned here.
#pragma once
#include <memory>
#include <vector>

#include "mambascope/checkpoint.hpp"

namespace mambascope {

struct LayerWeightsF32 {
  const float* norm = nullptr;           // {d_model}
  const float* in_proj = nullptr;        // {2*d_inner, d_model}
  const float* in_proj_bias = nullptr;   // {2*d_inner} or null
  const float* conv_w = nullptr;         // {d_inner, 1, d_conv}
  const float* conv_b = nullptr;         // {d_inner} or null
  const float* x_proj = nullptr;         // {dt_rank + 2*d_state, d_inner}; null for LTI
  const float* dt_proj = nullptr;        // {d_inner, dt_rank}; null for LTI
  const float* dt_bias = nullptr;        // {d_inner}; null for LTI
  const float* A_log = nullptr;          // {d_inner, d_state}
  const float* D = nullptr;              // {d_inner}
  const float* out_proj = nullptr;       // {d_model, d_inner}
  const float* out_proj_bias = nullptr;  // {d_model} or null
  const float* dt_lti = nullptr;         // {d_inner} Δ before softplus; LTI only
  const float* B_lti = nullptr;          // {d_inner, d_state}; LTI only
  const float* C_lti = nullptr;          // {d_inner, d_state}; LTI only
};

struct ModelWeightsF32 {
  const float* embedding = nullptr;  // {vocab, d_model}
  const float* norm_f = nullptr;     // {d_model}
  const float* lm_head = nullptr;    // {vocab, d_model}; == embedding when tied
  std::vector<LayerWeightsF32> layers;
  std::vector<std::unique_ptr<float[]>> owned;  // converted copies of fp16/bf16 tensors
};

ModelWeightsF32 load_weights_f32(const Checkpoint& ckpt);

}  // namespace mambascope
