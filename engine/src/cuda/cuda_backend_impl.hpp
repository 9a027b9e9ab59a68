// The CUDA backend's class, shared by cuda_backend.cpp (construction, prefill, probes) and
// cuda_decode_driver.cpp (recurrent mode, CUDA graphs, GPU sampling).
#pragma once
#include <cublas_v2.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "cuda/cuda_backend.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_state.hpp"
#include "cuda/decode.hpp"
#include "cuda/device_weights.hpp"
#include "mambascope/checkpoint.hpp"

namespace mambascope::cuda {

inline float silu_h(float x) { return x / (1.0f + std::exp(-x)); }

// Pinned host memory for the per-token copies (asynchronous D2H needs it).
class PinnedMemory {
 public:
  PinnedMemory() = default;
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;
  ~PinnedMemory() { if (p_) cudaFreeHost(p_); }
  void reserve(size_t bytes) {
    if (bytes <= n_) return;
    if (p_) cudaFreeHost(p_);
    p_ = nullptr;
    MS_CUDA_CHECK(cudaMallocHost(&p_, bytes));
    n_ = bytes;
  }
  template <typename T> T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// What one recorded layer of one forward call copies back, fp32 and token-major.
struct LayerCapture {
  std::vector<float> delta, hnorm, h, B, C, z, u;  // {T, d} / {T, d, N} / {T, N}
  int64_t first = 0;                               // first captured token (index in the call)
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Checkpoint& ckpt, int device);
  
  ~CudaBackend() override {
    for (Graph* g : {&logits_graph_, &sample_graph_})
      if (g->exec) cudaGraphExecDestroy(g->exec);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  DeviceInfo device() const override {
    DeviceInfo d;
    d.kind = "cuda";
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device_) == cudaSuccess) d.name = prop.name;
    cudaMemGetInfo(&d.memory_free, &d.memory_total);
    return d;
  }

  bool supports(ScanMode mode, std::string* why_not) const override {
    if (mode == ScanMode::Scan || mode == ScanMode::Recurrent) return true;
    if (why_not)
      *why_not = std::string("the CUDA backend runs the scan and recurrent modes; ") +
                 mode_name(mode) + " runs on the CPU backend (--backend cpu)";
    return false;
  }

  std::unique_ptr<BackendState> new_state() const override {
    return std::make_unique<CudaState>(size_t(cfg_.n_layer * cfg_.d_inner * (cfg_.d_conv - 1)),
                                       size_t(cfg_.n_layer * cfg_.d_inner * cfg_.d_state));
  }

  void forward(std::span<const int32_t> tokens, BackendState& state_base, const ForwardOptions& opts,
               std::vector<float>& logits) override {
    auto* state = dynamic_cast<CudaState*>(&state_base);
    if (!state) throw Error("the state was made by another backend");
    const int64_t L = int64_t(tokens.size()), V = cfg_.vocab_size;
    if (L == 0) throw Error("forward() needs at least one token");
    for (int32_t id : tokens)
      if (id < 0 || id >= V)
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                    std::to_string(V - 1) + ")");
    std::string why;
    if (!supports(opts.mode, &why)) throw Error(why);
    if (opts.freeze.kind != Freeze::Kind::None)
      throw Error("freezing Δ, B, C runs on the CPU backend (--backend cpu)");
    MS_CUDA_CHECK(cudaSetDevice(device_));
    if (opts.ssm_outputs) opts.ssm_outputs->assign(size_t(cfg_.n_layer * L * cfg_.d_inner), 0.0f);
    if (opts.residuals) opts.residuals->assign(size_t(cfg_.n_layer * L * cfg_.d_model), 0.0f);
    if (opts.mode == ScanMode::Scan) prefill(tokens, *state, opts, logits);
    else recurrent(tokens, *state, opts, logits);
  }

  void generate(CudaState& st, int32_t feed, int n, const SamplingParams& sp,
                const std::function<bool(const GpuToken&)>& on_token);

 private:
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    const CudaState* key = nullptr;
    SampleArgs args;
  };

  void prefill(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
               std::vector<float>& logits);
  void recurrent(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                 std::vector<float>& logits);
  // Enqueues one decode step reading the token id at d_ids_[0]; `extra` (may be null) gets
  // per-layer copies for probes, SSM outputs and residuals.
  void enqueue_step(CudaState& st, const ForwardOptions* extra, int64_t position);
  DecodeLayer layer_view(const CudaState& st, int64_t l) const {
    DecodeLayer L = w_.layers[size_t(l)];
    L.conv_state = st.conv() + l * cfg_.d_inner * (cfg_.d_conv - 1);
    L.ssm_state = st.ssm() + l * cfg_.d_inner * cfg_.d_state;
    return L;
  }
  void capture(Graph& g, CudaState& st, const SampleArgs* sampling);
  void record_probes(ProbeRecorder& rec, int layer, int64_t position, int64_t L,
                     const LayerCapture& cap) const;

  ModelConfig cfg_;
  int device_;
  DeviceWeights w_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DecodeShape shape_{};
  // decode
  DeviceMemory d_ids_, d_resid1_, d_x_, d_z_, d_y_, d_xdbl_, d_logits1_, d_work_, d_prob_, d_ring_,
      d_counters_, d_extra_;
  PinnedMemory h_logits_, h_out_;
  Graph logits_graph_, sample_graph_;
  // prefill activations, grown on demand
  DeviceMemory a_ids_, a_resid_, a_hidden_, a_xz_, a_x_, a_xdbl_, a_dt_, a_y_, a_logits_,
      p_delta_, p_hnorm_, p_h_, p_ypre_, p_f32_;
};

}  // namespace mambascope::cuda
