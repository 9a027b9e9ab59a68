// What the CUDA backend offers beyond the Backend interface: decoding with sampling on the GPU,
// one CUDA-graph replay and one small device-to-host copy per token (used by the benchmark and
// by callers that stream tokens without needing the logits on the host).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
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
// stop early. `history` is what came before `feed` (the prompt): the repetition penalty's
// window covers it as the CPU Sampler's does (the last repetition_window tokens of history,
// feed and the tokens sampled since). Throws mambascope::Error if `backend` is not the CUDA
// backend.
void generate_on_gpu(Backend& backend, BackendState& state, int32_t feed, int n,
                     const SamplingParams& sp, const std::function<bool(const GpuToken&)>& on_token,
                     std::span<const int32_t> history = {});

// Which decode step the backend runs: "fused" (one persistent kernel per token, sm_90) or
// "kernels: <why not fused>" (four kernels per layer).
std::string decode_path(Backend& backend);
// Turns the fused step off (false) or back on (true, where supported); for tests and the
// benchmark. The environment variable MAMBASCOPE_DECODE=kernels starts a backend with it off.
void use_fused_decode(Backend& backend, bool on);

// Where the host's time went in the decodes that recorded probes (a Session with probes on the
// GPU: the step one ahead of the host), summed since the backend was made: per step, the wait for
// its slots to land, turning them into the ProbeRecorder's frames, and the caller's on_token.
// A host that takes longer per token than the GPU's step sets the pace.
struct RecordedDecodeStats {
  int64_t steps = 0;
  double wait_s = 0, record_s = 0, caller_s = 0;
};
RecordedDecodeStats recorded_decode_stats(Backend& backend);

// Bounds the ring of staging slots through which prefill's probes come back (pinned host memory
// and as much device memory): at most max(bytes, 2 recorded layers' worth) each; default 256 MiB.
// A smaller ring makes the host convert older layers sooner; the results are the same.
void set_probe_staging_bytes(Backend& backend, size_t bytes);

// Runs n greedy steps (feeding `feed`, then each sampled token) of the fused kernel with its
// in-kernel timers on and returns where block 0's time went, in µs per token; empty where the
// fused step is not used. The state advances by n.
struct DecodePhase {
  std::string name;
  double us_per_token = 0;
};
std::vector<DecodePhase> profile_decode(Backend& backend, BackendState& state, int32_t feed, int n);

}  // namespace mambascope::cuda
