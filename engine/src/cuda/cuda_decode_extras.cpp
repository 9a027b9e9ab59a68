// Recurrent steps that record probes, SSM outputs or residuals: the explorer's decode path. The
// per-layer kernels write each recorded layer's values into compact device slots (only the
// layers the capture policy records, h only where it keeps h); the step, those slots' one copy to
// pinned memory and the logits' copy are captured once into a CUDA graph and replayed per token,
// so a token costs one graph launch and the one wait before the host reads what landed. A step
// with a Δ intervention at its position runs the same work uncaptured.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cuda/cuda_backend_impl.hpp"
#include "cuda/probe_gate.hpp"

namespace mambascope::cuda {

CudaBackend::ExtrasPlan CudaBackend::extras_plan(const ForwardOptions& opts) const {
  const int64_t di = cfg_.d_inner, dm = cfg_.d_model, xr = cfg_.x_proj_rows();
  const bool probing = opts.probes && opts.probes->enabled();
  ExtrasPlan p;
  p.small_floats = 5 * di + xr + dm;
  p.slot.assign(size_t(cfg_.n_layer), -1);
  p.h_slot.assign(size_t(cfg_.n_layer), -1);
  for (int l = 0; l < int(cfg_.n_layer); ++l) {
    const bool rec = probing && opts.probes->policy().records_layer(l);
    if (rec || opts.ssm_outputs || opts.residuals) p.slot[size_t(l)] = p.n_small++;
    if (rec && opts.probes->policy().records_h(l)) p.h_slot[size_t(l)] = p.n_h++;
  }
  p.resid = opts.residuals != nullptr;
  return p;
}

// One step with extras, enqueued: the layers (recording into the plan's slots), the gate, the
// slots' copy to pinned memory, then the logits' copy (host sampling) or the sampling kernel.
void CudaBackend::enqueue_extras_step(CudaState& st, const ExtrasPlan& plan,
                                      std::span<const DeltaOverride> overrides, int64_t position,
                                      const SampleArgs* sampling) {
  enqueue_step(st, &plan, overrides, position);
  // The slots hold z: the probes show the gate SiLU(z).
  gate_in_place(d_extra_.f32(), plan.n_small, plan.small_floats, 3 * cfg_.d_inner, cfg_.d_inner, stream_);
  const size_t floats = plan.floats(cfg_.d_inner * cfg_.d_state);
  if (floats > 0)
    MS_CUDA_CHECK(cudaMemcpyAsync(h_extra_.as<float>(), d_extra_.get(), sizeof(float) * floats,
                                  cudaMemcpyDeviceToHost, stream_));
  if (sampling)
    sample(*sampling, stream_);
  else
    MS_CUDA_CHECK(cudaMemcpyAsync(h_logits_.as<float>(), d_logits1_.get(), sizeof(float) * cfg_.vocab_size,
                                  cudaMemcpyDeviceToHost, stream_));
}

void CudaBackend::reserve_extras(const ExtrasPlan& plan) {
  const size_t floats = std::max<size_t>(plan.floats(cfg_.d_inner * cfg_.d_state), 1);
  d_extra_.reserve(sizeof(float) * floats);
  h_extra_.reserve(sizeof(float) * floats);
}

// The graph of one recorded step, captured again when what it was captured for has changed.
cudaGraphExec_t CudaBackend::extras_graph(ExtrasGraph& g, CudaState& st, const ExtrasPlan& plan,
                                          const SampleArgs* sampling) {
  const bool same = g.exec && g.key == &st && g.conv == st.conv() && g.ssm == st.ssm() &&
                    g.plan == plan && g.dev == d_extra_.get() && g.host == h_extra_.as<void>() &&
                    g.sampled == (sampling != nullptr) &&
                    (!sampling || std::memcmp(&g.args, sampling, sizeof(SampleArgs)) == 0);
  if (same) return g.exec;
  if (g.exec) cudaGraphExecDestroy(g.exec);
  g = ExtrasGraph{};
  cudaGraph_t graph = nullptr;
  MS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_extras_step(st, plan, {}, 0, sampling);
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&g.exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  MS_CUDA_CHECK(e);
  g.key = &st;
  g.plan = plan;
  g.dev = d_extra_.get();
  g.host = h_extra_.as<void>();
  g.conv = st.conv();
  g.ssm = st.ssm();
  g.sampled = sampling != nullptr;
  if (sampling) g.args = *sampling;
  return g.exec;
}

void CudaBackend::run_extras_step(CudaState& st, const ExtrasPlan& plan, const ForwardOptions& opts,
                                  int64_t position) {
  reserve_extras(plan);
  const bool intervened = std::any_of(opts.delta_overrides.begin(), opts.delta_overrides.end(),
                                      [&](const DeltaOverride& o) { return o.position == position; });
  if (intervened)  // rare: the override flags are baked into a layer's launch
    enqueue_extras_step(st, plan, opts.delta_overrides, position, nullptr);
  else
    MS_CUDA_CHECK(cudaGraphLaunch(extras_graph(extras_graph_, st, plan, nullptr), stream_));
  sync_step();  // the one wait per token: the slots and the logits have landed
}

// What landed in pinned memory for token i of a call of L tokens at absolute position pos.
void CudaBackend::unpack_extras(const ExtrasPlan& plan, const ForwardOptions& opts, int64_t L,
                                int64_t i, int64_t pos) {
  const int64_t di = cfg_.d_inner, dm = cfg_.d_model, N = cfg_.d_state, R = cfg_.dt_rank,
                xr = cfg_.x_proj_rows();
  const bool probing = opts.probes && opts.probes->enabled();
  const float* base = h_extra_.as<const float>();
  const float* hbase = base + plan.n_small * plan.small_floats;
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const int slot = plan.slot[size_t(l)];
    if (slot < 0) continue;
    // {delta, hnorm, ypre, gate, x (d_inner each), xdbl (dt_rank, B, C), resid (d_model)}
    const float* e = base + slot * plan.small_floats;
    if (opts.ssm_outputs)
      std::copy(e + 2 * di, e + 3 * di, opts.ssm_outputs->begin() + (l * L + i) * di);
    if (opts.residuals)
      std::copy(e + 5 * di + xr, e + 5 * di + xr + dm, opts.residuals->begin() + (l * L + i) * dm);
    if (!probing || !opts.probes->policy().records_layer(int(l))) continue;
    const float* h = plan.h_slot[size_t(l)] >= 0 ? hbase + plan.h_slot[size_t(l)] * di * N : nullptr;
    LayerCaptureView v{};
    v.delta = e;
    v.hnorm = e + di;
    v.z = nullptr;
    v.gate = e + 3 * di;
    v.u = e + 4 * di;
    v.B = e + 5 * di + R;
    v.C = e + 5 * di + R + N;
    v.h = h;
    v.first = 0;
    record_probes(*opts.probes, int(l), pos, 1, v);
  }
}

}  // namespace mambascope::cuda
