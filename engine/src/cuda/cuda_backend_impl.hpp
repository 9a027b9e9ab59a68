// The CUDA backend's class, shared by cuda_backend.cpp (construction, prefill, probes),
// cuda_modes.cpp (forward: the mode switch and freezing) and cuda_decode_driver.cpp (recurrent
// mode, CUDA graphs, GPU sampling).
#pragma once
#include <cublas_v2.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "cuda/cuda_backend.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_state.hpp"
#include "cuda/decode.hpp"
#include "cuda/decode_runtime.hpp"
#include "cuda/device_weights.hpp"
#include "cuda/frozen_values.hpp"
#include "cuda/scan.hpp"
#include "cuda/ssm_convolution.hpp"
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

// What one recorded layer of one forward call copied back, fp32 and token-major, read in place
// (from pinned memory); h, B and C may be null (not captured; B and C are not read for a frozen
// layer).
struct LayerCaptureView {
  const float *delta, *hnorm, *z, *u;  // {T, d_inner}
  const float *B, *C;                  // {T, d_state}
  const float* h;                      // {T, d_inner, d_state}
  int64_t first = 0;                   // first captured token (index in the call)
  const float* gate = nullptr;         // {T, d_inner}: SiLU(z) if already computed, else from z
};

// Where a layer's probe tensors lie in a staging slot (fp32, token-major, T = captured tokens),
// each starting on a 256-byte boundary like a cudaMalloc'd buffer (the scan writes h in place).
struct ProbeSlotLayout {
  int64_t T, d, N;
  static size_t up(int64_t n) { return size_t((n + 63) / 64 * 64); }
  size_t delta() const { return 0; }                  // {T, d}
  size_t hnorm() const { return up(T * d); }          // {T, d}
  size_t z() const { return 2 * up(T * d); }          // {T, d}: z, then SiLU(z) in place
  size_t u() const { return 3 * up(T * d); }          // {T, d}
  size_t B() const { return 4 * up(T * d); }          // {T, N}
  size_t C() const { return B() + up(T * N); }        // {T, N}
  size_t h() const { return C() + up(T * N); }        // {T, d, N}
  size_t floats(bool with_h) const { return h() + (with_h ? up(T * d * N) : 0); }
};

// A ring of staging slots through which recorded layers' probe tensors come back without the
// compute stream or the host waiting on each other (cuda_backend.cpp): the compute stream packs a
// layer into a slot's device half and records `packed`; a copy stream waits for that event,
// copies the slot into its pinned host half and records `landed`; the host turns a landed slot
// into ProbeRecorder frames, in submission order, and only then is the slot reused. The ring
// holds at most max(2 slots, budget) per side (set_probe_staging_bytes); a slot is one layer,
// bounded by the capture policy's max_tokens.
class ProbeRing {
 public:
  size_t budget_bytes = size_t(256) << 20;
  struct Slot {
    float* dev = nullptr;   // {floats} device
    float* host = nullptr;  // {floats} pinned
    cudaEvent_t packed = nullptr, landed = nullptr;
    int layer = -1;
    bool with_h = false;
    size_t floats = 0;  // what this layer fills and copies
  };
  ProbeRing() = default;
  ProbeRing(const ProbeRing&) = delete;
  ProbeRing& operator=(const ProbeRing&) = delete;
  ~ProbeRing();
  // Starts a forward call recording `layers` layers of at most `floats` each: forgets what an
  // interrupted call left (after its copies finish) and sizes the ring.
  void begin(size_t floats, int layers);
  bool full() const { return count_ == n_; }
  // The next free slot, for `floats` of its room (the caller made sure the ring is not full).
  Slot& push(int layer, bool with_h, size_t floats);
  // After the slot's packing was enqueued on `compute`: its copy to the host, on the copy stream.
  void submit(Slot& s, cudaStream_t compute);
  // The oldest submitted slot if its copy has landed (waiting for it if `wait`), else null.
  const Slot* oldest(bool wait);
  void pop();

 private:
  std::vector<Slot> slots_;
  size_t n_ = 0, head_ = 0, count_ = 0, floats_ = 0;
  DeviceMemory dev_;   // {n_, floats_} fp32: the slots' device halves
  PinnedMemory host_;  // {n_, floats_} fp32: their pinned host halves
  cudaStream_t copy_ = nullptr;  // device-to-host copies, beside the compute stream
};

// A sampled token and its alternatives, as the sampling kernels left them in SampleOut; throws,
// as the CPU Sampler does, where the step's logits were not finite.
inline void read_token(const SampleOut& out, int n_alt, GpuToken& tok) {
  tok.id = out.ids[0];
  if (tok.id == kNonFiniteToken)
    throw Error(
        "the model produced a non-finite logit (NaN or +inf) on the GPU: the weights or the "
        "computation are broken; check the checkpoint, or try --backend cpu");
  tok.alternatives.resize(size_t(n_alt));
  for (int j = 0; j < n_alt; ++j) tok.alternatives[size_t(j)] = Alternative{out.ids[1 + j], out.prob[j]};
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Checkpoint& ckpt, int device);
  
  ~CudaBackend() override {
    for (Graph* g : {&logits_graph_, &sample_graph_})
      if (g->exec) cudaGraphExecDestroy(g->exec);
    for (ExtrasGraph* g : {&extras_graph_, &extras_sample_graph_[0], &extras_sample_graph_[1]})
      if (g->exec) cudaGraphExecDestroy(g->exec);
    for (cudaEvent_t e : step_done_)
      if (e) cudaEventDestroy(e);
    for (cudaEvent_t e : slots_landed_)
      if (e) cudaEventDestroy(e);
    if (slot_copy_) cudaStreamDestroy(slot_copy_);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  DeviceInfo device() const override {
    DeviceInfo d;
    d.kind = "cuda";
    d.activations = w_.dtype;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device_) == cudaSuccess) d.name = prop.name;
    cudaMemGetInfo(&d.memory_free, &d.memory_total);
    return d;
  }

  bool supports(ScanMode mode, std::string* why_not) const override {
    (void)mode;
    (void)why_not;
    return true;  // all four modes, frozen or not (cuda_modes.cpp)
  }

  std::unique_ptr<BackendState> new_state() const override {
    return std::make_unique<CudaState>(size_t(cfg_.n_layer * cfg_.d_inner * (cfg_.d_conv - 1)),
                                       size_t(cfg_.n_layer * cfg_.d_inner * cfg_.d_state));
  }

  void forward(std::span<const int32_t> tokens, BackendState& state_base, const ForwardOptions& opts,
               std::vector<float>& logits) override;

  // Sampling on the GPU (cuda_decode_driver.cpp); with a recorder that records, each step also
  // records its probes (before on_token sees its token).
  void generate(CudaState& st, int32_t feed, int n, const SamplingParams& sp,
                const std::function<bool(const GpuToken&)>& on_token, std::span<const int32_t> history,
                ProbeRecorder* probes = nullptr);
  bool decode_on_device(BackendState& state, int32_t feed, int max_steps, const SamplingParams& sp,
                        std::span<const int32_t> history, ProbeRecorder* probes,
                        const std::function<bool(const DeviceStep&)>& on_step,
                        std::vector<float>& last_logits) override;
  // The fused decode step (cuda_decode_driver.cpp).
  std::string decode_path();
  RecordedDecodeStats recorded_stats() const { return recorded_stats_; }
  void use_fused(bool on);
  std::vector<DecodePhase> profile_fused(CudaState& st, int32_t feed, int n);
  void set_probe_staging_bytes(size_t bytes) { probe_ring_.budget_bytes = bytes; }

 private:
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    const CudaState* key = nullptr;
    SampleArgs args;
  };
  // Where a recurrent step that records (cuda_decode_extras.cpp) puts each layer's values in
  // d_extra_[b] / h_extra_[b]: {n_small slots of small_floats | n_h slots of d_inner·d_state}. A small
  // slot is {delta, hnorm, gate, x (d_inner each), xdbl (x_proj rows)}, then ypre (d_inner) only
  // when the call asks for SSM outputs and the residual (d_model) only when it asks for those.
  struct ExtrasPlan {
    std::vector<int> slot, h_slot;  // per layer: its small / h slot, or -1 (not recorded)
    int n_small = 0, n_h = 0;
    int64_t small_floats = 0;
    int64_t ypre_at = -1, resid_at = -1;  // offsets in a small slot, or -1 (not copied)
    size_t floats(int64_t h_floats) const { return size_t(n_small * small_floats + n_h * h_floats); }
    bool operator==(const ExtrasPlan&) const = default;
  };
  struct ExtrasGraph {
    cudaGraphExec_t exec = nullptr;
    const CudaState* key = nullptr;
    ExtrasPlan plan;
    const void *dev = nullptr, *host = nullptr;  // the buffers it copies between
    const float *conv = nullptr, *ssm = nullptr;  // the state's device buffers it updates
    const void* rollback = nullptr;               // where a sampled step saves them
    bool sampled = false;  // ends with the sampling kernel (args) instead of the logits' copy
    SampleArgs args;
    // The fused step records for this graph's plan: {slot, h_slot} per layer on the device.
    DeviceMemory plan_slots;
  };
  // The fused step samples greedy tokens itself (fused_can_sample): sets `a` up for `sampling`
  // and returns true, or returns false (sample() runs after the step).
  static bool fused_sampling(FusedArgs& a, const SampleArgs* sampling);
  // SampleArgs compared field by field (a memcmp would also compare the padding).
  static bool same_sampling(const SampleArgs& a, const SampleArgs& b);

  void prefill(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
               std::vector<float>& logits);
  void recurrent(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                 std::vector<float>& logits);
  // Enqueues one decode step reading the token id at d_ids_[0]; with a plan, the recorded
  // layers' values go to its slots in `slots` (d_extra_[b]), and the Δ overrides at `position` apply.
  void enqueue_step(CudaState& st, const ExtrasPlan* plan = nullptr,
                    std::span<const DeltaOverride> overrides = {}, int64_t position = 0,
                    float* slots = nullptr);
  // Recurrent steps that record (cuda_decode_extras.cpp).
  ExtrasPlan extras_plan(const ForwardOptions& opts) const;
  // The step writes its slots to d_extra_[buf]. Unsampled (forward()), the graph also copies
  // them and the logits to the host. Sampled (generate() with probes), it first saves what it
  // will replace in d_rollback_, so that a step run ahead of the host can be undone, and its
  // slots go to the host on the copy stream, outside the graph, under the next step.
  // plan_slots (ExtrasGraph::plan_slots, or null): the fused step records, where it runs and no
  // Δ override applies at `position`; else the per-layer kernels do.
  void enqueue_extras_step(CudaState& st, const ExtrasPlan& plan,
                           std::span<const DeltaOverride> overrides, int64_t position,
                           const SampleArgs* sampling, int buf, const int* plan_slots = nullptr);
  void reserve_extras(const ExtrasPlan& plan, int buffers);
  cudaGraphExec_t extras_graph(ExtrasGraph& g, CudaState& st, const ExtrasPlan& plan,
                               const SampleArgs* sampling, int buf);
  // generate() with probes (cuda_decode_extras.cpp): each step's graph is launched before the
  // host unpacks the previous step's probes, and undone if the host then stops.
  void generate_recorded(CudaState& st, int n, const SampleArgs& args, const ExtrasPlan& plan,
                         ProbeRecorder& probes, const std::function<bool(const GpuToken&)>& on_token);
  // What a sampled recorded step saves before it runs, so that it can be undone: the state, the
  // logits, the fed token, the sampler's counters and its repetition ring.
  struct RollbackPart {
    void* live;
    size_t at, bytes;  // in d_rollback_
  };
  std::vector<RollbackPart> rollback_parts(const CudaState& st, const SampleArgs& a) const;
  // Undoes the step run ahead of the host, if there is one (waits for it first).
  void undo_ahead();
  // The logits after the last token the host has seen; undoes a step run ahead first.
  void fetch_logits(std::vector<float>& out);
  // The layers' pointers changed (frozen views): capture the recorded steps again.
  void forget_step_graphs() {
    logits_graph_.key = extras_graph_.key = extras_sample_graph_[0].key = extras_sample_graph_[1].key = nullptr;
  }
  void run_extras_step(CudaState& st, const ExtrasPlan& plan, const ForwardOptions& opts,
                       int64_t position);
  void unpack_extras(const ExtrasPlan& plan, const ForwardOptions& opts, int64_t L, int64_t i,
                     int64_t pos, int buf = 0);
  DecodeLayer layer_view(const CudaState& st, int64_t l) const {
    DecodeLayer L = w_.layers[size_t(l)];
    L.conv_state = st.conv() + l * cfg_.d_inner * (cfg_.d_conv - 1);
    L.ssm_state = st.ssm() + l * cfg_.d_inner * cfg_.d_state;
    if (frozen_views_) {  // a frozen selective model decoding: Δ (before softplus), B, C constant
      L.x_proj = nullptr;
      L.dt_lti = frozen_->dt_pre(l);
      L.B_lti = frozen_->B(l);
      L.C_lti = frozen_->C(l);
    }
    return L;
  }
  void capture(Graph& g, CudaState& st, const SampleArgs* sampling);
  DecodeRuntime& decode_runtime();      // built on first use
  bool fused_for(const CudaState& st);  // whether this step runs the fused kernel
  FusedArgs fused_args(CudaState& st);
  void sync_step();                     // waits for the stream; names a stuck fused step
  void report_step_error(cudaError_t e, const char* call);  // sync_step's message for any wait
  // generate(): the host waits for the token's fields in mapped memory rather than for the
  // stream (MAMBASCOPE_DECODE_SPIN=0 turns it off).
  void arm_token(SampleOut& out, int n_alt);
  void wait_token(const SampleOut& out, int n_alt);
  void record_probes(ProbeRecorder& rec, int layer, int64_t position, int64_t L,
                     const LayerCaptureView& cap) const;
  // One frame: token i of `cap` (layer `layer`); frozen_means(layer) where frozen_ is set.
  struct FrozenMeans {
    const FrozenSsm* fz = nullptr;
    std::vector<float> B, C, Bsq;  // {d_state}, {d_state}, {d_inner}
  };
  FrozenMeans frozen_means(int layer) const;
  void fill_probe(LayerProbe& p, int layer, int64_t i, const LayerCaptureView& cap, const FrozenMeans& fm) const;
  // Turns landed probe slots into recorder frames, oldest first, waiting for the first
  // `wait_for` of them (0: only those already landed; SIZE_MAX: all, at the call's end).
  void drain_probes(ProbeRecorder& rec, int64_t position, int64_t L, const ProbeSlotLayout& lay,
                    size_t wait_for);
  // Modes and freezing (cuda_modes.cpp): one layer's SSM in the call's mode, from the scan's
  // parameters (probe outputs included); recurrent mode with frozen Δ, B, C; workspace check.
  void run_ssm(int64_t layer, ScanParams p, ScanMode mode);
  void recurrent_frozen(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                        std::vector<float>& logits);
  void check_mode_memory(ScanMode mode, int64_t L, bool frozen) const;

  ModelConfig cfg_;
  int device_;
  DeviceWeights w_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DecodeShape shape_{};
  // decode
  DeviceMemory d_ids_, d_resid1_, d_x_, d_z_, d_y_, d_xdbl_, d_logits1_, d_work_, d_prob_, d_ring_,
      d_counters_, d_extra_[2];
  PinnedMemory h_logits_, h_out_, h_extra_[2];
  Graph logits_graph_, sample_graph_;
  ExtrasGraph extras_graph_, extras_sample_graph_[2];  // forward() / generate() with probes
  // generate() with probes: a step ahead of the host needs its own token output, an event, and
  // room to save {conv state | ssm state | logits} for its undoing.
  MappedMemory ahead_out_[2];  // SampleOut
  cudaEvent_t step_done_[2] = {nullptr, nullptr}, slots_landed_[2] = {nullptr, nullptr};
  cudaStream_t slot_copy_ = nullptr;  // the slots' device-to-host copies
  DeviceMemory d_rollback_;
  std::vector<RollbackPart> rollback_;  // of the generate() call in progress
  bool ahead_ = false;  // a step is in flight beyond the token the host is looking at
  bool spin_on_token_ = [] {
    const char* v = std::getenv("MAMBASCOPE_DECODE_SPIN");
    return !(v && std::string(v) == "0");
  }();
  RecordedDecodeStats recorded_stats_;  // generate_recorded's host time
  std::unique_ptr<DecodeRuntime> decode_rt_;
  // prefill activations, grown on demand
  DeviceMemory a_ids_, a_resid_, a_hidden_, a_xz_, a_x_, a_xdbl_, a_dt_, a_y_, a_logits_,
      p_delta_, p_hnorm_, p_ypre_;
  ProbeRing probe_ring_;  // prefill's probe copies
  // Modes and freezing (cuda_modes.cpp). frozen_ is set for the length of a frozen forward call:
  // the LTI model's own values, or call_values_ (given, or computed layer by layer in prefill
  // when freeze_compute_ is set, over the call's tokens [freeze_t0_, freeze_t1_)).
  FrozenValues lti_values_, call_values_;
  const FrozenValues* frozen_ = nullptr;
  bool freeze_compute_ = false;
  int64_t freeze_t0_ = 0, freeze_t1_ = 0;
  bool frozen_views_ = false;  // layer_view() hands frozen_'s Δ, B, C to the decode step
  ConvWorkspace conv_ws_;
  LtiWorkspace lti_ws_;
  DeviceMemory freeze_work_, m_h0_, m_yscan_;  // freeze sums; probe scan's h0 copy and its y
};

}  // namespace mambascope::cuda
