// The compute interface. The CPU backend (engine/src/cpu, the fp32 reference) and the CUDA
// backend (engine/src/cuda) implement it with the same op names. A backend runs the whole model
// over a span of tokens, continuing from a state, in a chosen SSM mode.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mambascope/dtype.hpp"
#include "mambascope/probes.hpp"
#include "mambascope/sampler.hpp"

namespace mambascope {

class Checkpoint;

// Same numbers, different cost (docs/modes.md).
enum class ScanMode {
  Recurrent,    // h_t = Ā_t h_{t-1} + B̄_t x_t, one token at a time: O(1) per token
  Scan,         // chunked parallel scan over the sequence: prefill
  Convolution,  // selective kernel K[t,s] = C_t·(∏_{k=s+1..t} Ā_k)·B̄_s applied as a causal matrix: O(L²)
  LtiFft,       // Δ, B, C frozen (see Freeze): one kernel per channel, applied by FFT: O(L log L)
};
const char* mode_name(ScanMode m);
std::optional<ScanMode> parse_mode(std::string_view name);  // "recurrent", "scan", "convolution", "lti-fft"

// Input-independent Δ, B, C for every layer: an LTI (S4-like) system per channel.
struct FrozenSsm {
  int64_t n_layer = 0, d_inner = 0, d_state = 0;
  std::vector<float> delta;  // {n_layer, d_inner} (after softplus)
  std::vector<float> B, C;   // {n_layer, d_inner, d_state}
};

// Freezing Δ, B, C to input-independent values turns a selective layer into an LTI one.
struct Freeze {
  enum class Kind { None, MeanOverInput, AtToken, Given } kind = Kind::None;
  int64_t token = 0;                         // AtToken: index within this forward call's tokens
  std::shared_ptr<const FrozenSsm> values;   // Given
};

// An intervention on Δ: at absolute position `position` in `layer` (−1: every layer), Δ is
// replaced by `value` for every channel (0 = "ignore this token", large = "reset the state").
struct DeltaOverride {
  int layer = -1;
  int64_t position = 0;
  float value = 0;
};

struct ForwardOptions {
  ScanMode mode = ScanMode::Scan;
  bool all_logits = false;  // logits for every token, else for the last one only
  Freeze freeze;            // LtiFft on a selective model freezes to the mean unless set
  std::vector<DeltaOverride> delta_overrides;
  FrozenSsm* frozen_out = nullptr;          // if set: receives the frozen Δ, B, C that were used
  ProbeRecorder* probes = nullptr;        // null: nothing recorded, no cost
  std::vector<float>* residuals = nullptr;  // if set: residual stream after every layer
                                            // {n_layer, n_tokens, d_model} (layer lens)
  std::vector<float>* ssm_outputs = nullptr;  // if set: the SSM output y = C·h + D·x, before
                                              // the SiLU(z) gate {n_layer, n_tokens, d_inner}
};

// The recurrent state: fixed size whatever the sequence length.
struct HostState {
  int64_t position = 0;      // tokens consumed so far
  std::vector<float> conv;   // {n_layer, d_inner, d_conv - 1}: the last inputs of the conv
  std::vector<float> ssm;    // {n_layer, d_inner, d_state}: h
};

class BackendState {
 public:
  virtual ~BackendState() = default;
  virtual std::unique_ptr<BackendState> clone() const = 0;
  virtual HostState to_host() const = 0;
  virtual void from_host(const HostState& s) = 0;
  virtual int64_t position() const = 0;
  virtual size_t bytes() const = 0;
};

struct DeviceInfo {
  std::string kind;  // "cpu" or "cuda"
  std::string name;  // CPU model or GPU name
  size_t memory_total = 0, memory_free = 0;
  int threads = 0;
  // Storage type of the activations between ops: fp32 on the CPU; the weights' type on the GPU,
  // whose prefill keeps them in bf16/fp16 for a 16-bit model (its recurrence stays fp32).
  DType activations = DType::F32;
};

// One step of decoding with the sampling on the device (Backend::decode_on_device): the fed
// token has been consumed and `next` sampled after it.
struct DeviceStep {
  int32_t next = 0;
  std::span<const Alternative> alternatives;  // the n_alternatives most probable, descending
  // Copies the logits after the fed token {vocab} to the host (valid during the callback).
  // It also settles the state: a backend may already be computing the next step, and the state
  // is the one after the fed token only once this has run. Call it before reading or copying the
  // state inside the callback (a session's snapshot does).
  std::function<void(std::vector<float>&)> logits;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu" or "cuda"
  virtual DeviceInfo device() const = 0;
  virtual bool supports(ScanMode mode, std::string* why_not = nullptr) const = 0;
  virtual std::unique_ptr<BackendState> new_state() const = 0;
  // Runs tokens through the model from `state`, advancing it. logits gets {n_out, vocab} with
  // n_out = tokens.size() if opts.all_logits else 1. Throws mambascope::Error (e.g. out of memory).
  virtual void forward(std::span<const int32_t> tokens, BackendState& state,
                       const ForwardOptions& opts, std::vector<float>& logits) = 0;
  // Recurrent decoding with the sampling done where the model runs, so that only the sampled
  // token and its alternatives come back per step (the CUDA backend): feeds `feed`, samples the
  // next token, feeds that, and so on for at most max_steps steps; on_step returns false to stop
  // (the token it was given is then not fed). history: the tokens before `feed` (the repetition
  // penalty's window). probes (may be null): each fed token's probes are recorded before on_step
  // runs. last_logits gets the logits after the last token fed. The same seed gives the same
  // tokens on the same device, but not the CPU Sampler's draws. Returns false, doing nothing,
  // where the backend does not offer it (the caller then samples on the host).
  virtual bool decode_on_device(BackendState& state, int32_t feed, int max_steps,
                                const SamplingParams& sp, std::span<const int32_t> history,
                                ProbeRecorder* probes,
                                const std::function<bool(const DeviceStep&)>& on_step,
                                std::vector<float>& last_logits) {
    (void)state, (void)feed, (void)max_steps, (void)sp, (void)history, (void)probes, (void)on_step,
        (void)last_logits;
    return false;
  }
};

struct BackendChoice {
  std::string name = "auto";  // "auto" (GPU if present), "cpu", "cuda"
  int threads = 0;            // CPU threads; 0 = all cores
  int device = 0;             // CUDA device index
};

std::unique_ptr<Backend> make_cpu_backend(const Checkpoint& ckpt, int threads = 0);
bool cuda_backend_available(std::string* why_not = nullptr);
std::unique_ptr<Backend> make_cuda_backend(const Checkpoint& ckpt, int device = 0);
// "auto" falls back to the CPU (and says why in *note) when no usable GPU is present.
std::unique_ptr<Backend> make_backend(const Checkpoint& ckpt, const BackendChoice& choice,
                                      std::string* note = nullptr);

}  // namespace mambascope
