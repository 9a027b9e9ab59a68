// What the CUDA backend offers beyond the Backend interface: decoding with sampling on the GPU,
// one CUDA-graph replay and one small device-to-host copy per token (used by the benchmark and
// by callers that stream tokens without needing the logits on the host).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/sampler.hpp"

namespace mambascope::cuda {

struct GpuToken {
  int32_t id = 0;
  std::vector<Alternative> alternatives;  // the n_alternatives most probable, descending
};

// Feeds `feed` (a token the state has not consumed yet), samples the next token on the GPU,
// feeds that, and so on for n tokens; on_token sees each sampled token and returns false to
// stop early. Throws mambascope::Error if `backend` is not the CUDA backend.
void generate_on_gpu(Backend& backend, BackendState& state, int32_t feed, int n,
                     const SamplingParams& sp, const std::function<bool(const GpuToken&)>& on_token);

}  // namespace mambascope::cuda
