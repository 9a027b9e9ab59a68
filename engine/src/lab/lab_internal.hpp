// What the lab's computations share (engine/src/lab): fp32 copies of single tensors (so the lab
// never converts a whole bf16 model), the process's peak-RSS probe, rebuilding a layer's SSM
// input u from the residual stream, small reductions, and a stopwatch.
#pragma once
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab::detail {

// The whole tensor as fp32 (a copy). Throws Error naming a missing tensor.
std::vector<float> tensor_f32(const Checkpoint& ckpt, const std::string& name);
// Rows `rows` of a 2-D tensor as fp32 {rows.size(), cols}.
std::vector<float> rows_f32(const Checkpoint& ckpt, const std::string& name, std::span<const int32_t> rows);
std::string layer_tensor(int layer, const std::string& leaf);  // "backbone.layers.{i}.mixer.<leaf>"

// A = -exp(A_log) {d_inner, d_state} of one layer.
std::vector<float> layer_A(const Checkpoint& ckpt, int layer);

// u {L, d_inner} of `layer` for a run from the zero state: silu(conv1d(in_proj(rms_norm(x))))
// where x {L, d_model} is the residual stream entering the layer.
std::vector<float> ssm_input(const Checkpoint& ckpt, int layer, const float* x, int64_t L);
// The residual stream entering `layer` {L, d_model}: the embedding for layer 0, else the
// recorded residual after layer - 1 (residuals {n_layer, L, d_model}).
std::vector<float> layer_input(const Checkpoint& ckpt, std::span<const int32_t> ids,
                               const std::vector<float>& residuals, int layer);

// Peak resident memory of this process: reset_peak_rss() lowers the high-water mark to the
// current RSS (Linux /proc/self/clear_refs); false where that is not possible.
bool reset_peak_rss();
int64_t peak_rss_bytes();     // VmHWM, -1 if unknown
int64_t current_rss_bytes();  // VmRSS, -1 if unknown

double max_abs(std::span<const float> v);
int32_t argmax(const float* v, int64_t n);
// log-softmax of one row, in double for the sum
void log_softmax_row(const float* logits, int64_t n, std::vector<double>& out);

class Stopwatch {
 public:
  Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// mode_peak_bytes() for the CUDA backend's buffers (lab_common.cpp).
size_t gpu_mode_peak_bytes(const ModelConfig& cfg, ScanMode mode, int64_t L, bool all_logits);
// The estimate for the buffers of the backend that runs it: the GPU's or the CPU's (its threads).
size_t backend_mode_peak_bytes(const Backend& backend, const ModelConfig& cfg, ScanMode mode, int64_t L,
                               bool all_logits);

using lab::format_bytes;    // mambascope/lab.hpp
using lab::format_seconds;

}  // namespace mambascope::lab::detail
