// One Mamba-1 mixer layer on the CPU, in any SSM mode, with probes, Δ interventions and
// frozen (LTI) Δ/B/C. Called by CpuBackend::forward for each layer.
#pragma once
#include <cstdint>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/config.hpp"
#include "mambascope/weights.hpp"

namespace mambascope::cpu {

struct MixerScratch {
  std::vector<float> xz;     // {L, 2*d_inner}: in_proj output, x then z
  std::vector<float> xc;     // {L, d_inner}: conv + SiLU output (u of the SSM)
  std::vector<float> dbc;    // {L, dt_rank + 2*d_state}: x_proj output
  std::vector<float> delta;  // {L, d_inner}
  std::vector<float> y;      // {L, d_inner}
  std::vector<float> A;      // {d_inner, d_state} = -exp(A_log)
};

struct MixerCall {
  const ModelConfig* cfg;
  const LayerWeightsF32* w;
  int layer;
  const float* x;          // normalised hidden states {L, d_model}
  int64_t L;
  int64_t position;        // absolute position of the first token
  float* conv_state;       // {d_inner, d_conv - 1}
  float* ssm_state;        // {d_inner, d_state}
  const ForwardOptions* opts;
  float* out;              // {L, d_model}
};

void run_mixer(const MixerCall& call, MixerScratch& s);

}  // namespace mambascope::cpu
