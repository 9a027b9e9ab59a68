// Recurrent steps that record probes, SSM outputs or residuals: the explorer's decode path. The
// fused step (where it runs, else the per-layer kernels) writes each recorded layer's values
// into compact device slots (only the layers the capture policy records, h only where it keeps
// h); the step, those slots' one copy to pinned memory and the logits' copy are captured once
// into a CUDA graph and replayed per token.
// forward() waits for each token's copy. generate() runs one step ahead of the host, with two
// sets of slots: while the GPU computes token t + 1, a copy stream brings token t's slots to the
// host and the host turns them into probe frames; the step run ahead is undone if the host then
// stops. A step with a Δ intervention at its position runs the same work uncaptured.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cpu/parallel_for.hpp"
#include "cuda/cuda_backend_impl.hpp"
#include "cuda/probe_gate.hpp"

namespace mambascope::cuda {
namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

CudaBackend::ExtrasPlan CudaBackend::extras_plan(const ForwardOptions& opts) const {
  const int64_t di = cfg_.d_inner, dm = cfg_.d_model, xr = cfg_.x_proj_rows();
  const bool probing = opts.probes && opts.probes->enabled();
  ExtrasPlan p;
  p.small_floats = 4 * di + xr;  // delta, hnorm, gate, x, xdbl
  if (opts.ssm_outputs) p.ypre_at = p.small_floats, p.small_floats += di;
  if (opts.residuals) p.resid_at = p.small_floats, p.small_floats += dm;
  p.slot.assign(size_t(cfg_.n_layer), -1);
  p.h_slot.assign(size_t(cfg_.n_layer), -1);
  for (int l = 0; l < int(cfg_.n_layer); ++l) {
    const bool rec = probing && opts.probes->policy().records_layer(l);
    if (rec || opts.ssm_outputs || opts.residuals) p.slot[size_t(l)] = p.n_small++;
    if (rec && opts.probes->policy().records_h(l)) p.h_slot[size_t(l)] = p.n_h++;
  }
  return p;
}

bool CudaBackend::same_sampling(const SampleArgs& a, const SampleArgs& b) {
  return a.logits == b.logits && a.vocab == b.vocab && a.temperature == b.temperature &&
         a.top_k == b.top_k && a.top_p == b.top_p && a.min_p == b.min_p &&
         a.repetition_penalty == b.repetition_penalty && a.window == b.window && a.ring == b.ring &&
         a.counters == b.counters && a.seed == b.seed && a.n_alt == b.n_alt && a.work == b.work &&
         a.out == b.out && a.host == b.host;
}

// One step with extras, enqueued: (sampled: the state and logits saved for an undo) the layers
// (recording into the plan's slots: the fused step where it can, else the per-layer kernels),
// the gate, the slots' copy to h_extra_[buf], then the logits' copy (host sampling) or the
// sampling kernel.
void CudaBackend::enqueue_extras_step(CudaState& st, const ExtrasPlan& plan,
                                      std::span<const DeltaOverride> overrides, int64_t position,
                                      const SampleArgs* sampling, int buf, const int* plan_slots) {
  if (sampling)
    for (const RollbackPart& r : rollback_parts(st, *sampling))
      MS_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(d_rollback_.get()) + r.at, r.live, r.bytes,
                                    cudaMemcpyDeviceToDevice, stream_));
  const bool intervened = std::any_of(overrides.begin(), overrides.end(),
                                      [&](const DeltaOverride& o) { return o.position == position; });
  bool sampled = false;  // inside the fused step
  if (plan_slots && !intervened && fused_for(st)) {
    FusedArgs a = fused_args(st);
    sampled = fused_sampling(a, sampling);
    FusedProbes& p = a.probes;
    p.base = d_extra_[buf].f32();
    p.slot = plan_slots;
    p.h_slot = plan_slots + cfg_.n_layer;
    p.small_floats = plan.small_floats;
    p.h_base = int64_t(plan.n_small) * plan.small_floats;
    p.ypre_at = int(plan.ypre_at);
    p.resid_at = int(plan.resid_at);
    launch_fused(a, w_.dtype, stream_);
  } else {
    enqueue_step(st, &plan, overrides, position, d_extra_[buf].f32());
  }
  // The slots hold z: the probes show the gate SiLU(z).
  gate_in_place(d_extra_[buf].f32(), plan.n_small, plan.small_floats, 2 * cfg_.d_inner, cfg_.d_inner, stream_);
  if (sampling) {
    if (!sampled) sample(*sampling, stream_);
    return;
  }
  const size_t floats = plan.floats(cfg_.d_inner * cfg_.d_state);
  if (floats > 0)
    MS_CUDA_CHECK(cudaMemcpyAsync(h_extra_[buf].as<float>(), d_extra_[buf].get(), sizeof(float) * floats,
                                  cudaMemcpyDeviceToHost, stream_));
  MS_CUDA_CHECK(cudaMemcpyAsync(h_logits_.as<float>(), d_logits1_.get(), sizeof(float) * cfg_.vocab_size,
                                cudaMemcpyDeviceToHost, stream_));
}

void CudaBackend::reserve_extras(const ExtrasPlan& plan, int buffers) {
  const size_t floats = std::max<size_t>(plan.floats(cfg_.d_inner * cfg_.d_state), 1);
  for (int b = 0; b < buffers; ++b) {
    d_extra_[b].reserve(sizeof(float) * floats);
    h_extra_[b].reserve(sizeof(float) * floats);
  }
}

// The graph of one recorded step, captured again when what it was captured for has changed.
cudaGraphExec_t CudaBackend::extras_graph(ExtrasGraph& g, CudaState& st, const ExtrasPlan& plan,
                                          const SampleArgs* sampling, int buf) {
  const bool same = g.exec && g.key == &st && g.conv == st.conv() && g.ssm == st.ssm() &&
                    g.plan == plan && g.dev == d_extra_[buf].get() && g.host == h_extra_[buf].as<void>() &&
                    g.rollback == d_rollback_.get() && g.sampled == (sampling != nullptr) &&
                    (!sampling || same_sampling(g.args, *sampling));
  if (same) return g.exec;
  if (g.exec) cudaGraphExecDestroy(g.exec);
  g = ExtrasGraph{};
  // The fused step's runtime is built on first use with synchronous copies, which a capture
  // does not allow: build it before.
  (void)decode_runtime();
  // The plan's slots per layer, for the fused step (uploaded before the capture: the graph's
  // kernel reads them where they are).
  std::vector<int> slots(plan.slot);
  slots.insert(slots.end(), plan.h_slot.begin(), plan.h_slot.end());
  g.plan_slots.reserve(sizeof(int) * slots.size());
  MS_CUDA_CHECK(cudaMemcpy(g.plan_slots.get(), slots.data(), sizeof(int) * slots.size(), cudaMemcpyHostToDevice));
  const bool fused = fused_for(st);
  // A driver that cannot capture the cooperative launch: the per-layer kernels from now on (as
  // capture() does for the plain step), and this graph captured again with them.
  auto without_fused = [&](const std::string& why) {
    cudaGetLastError();
    g.exec = nullptr;
    decode_runtime().why_not = "the fused step could not be captured: " + why;
    return extras_graph(g, st, plan, sampling, buf);
  };
  cudaGraph_t graph = nullptr;
  MS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_extras_step(st, plan, {}, 0, sampling, buf, static_cast<const int*>(g.plan_slots.get()));
  } catch (const Error& err) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    if (!fused) throw;
    return without_fused(err.what());
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&g.exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e != cudaSuccess && fused) return without_fused(cudaGetErrorString(e));
  MS_CUDA_CHECK(e);
  g.key = &st;
  g.plan = plan;
  g.dev = d_extra_[buf].get();
  g.host = h_extra_[buf].as<void>();
  g.rollback = d_rollback_.get();
  g.conv = st.conv();
  g.ssm = st.ssm();
  g.sampled = sampling != nullptr;
  if (sampling) g.args = *sampling;
  return g.exec;
}

std::vector<CudaBackend::RollbackPart> CudaBackend::rollback_parts(const CudaState& st,
                                                                   const SampleArgs& a) const {
  std::vector<RollbackPart> parts = {
      {st.conv(), 0, sizeof(float) * st.conv_floats()},
      {st.ssm(), 0, sizeof(float) * st.ssm_floats()},
      {d_logits1_.get(), 0, sizeof(float) * size_t(cfg_.vocab_size)},
      {a.counters, 0, 2 * sizeof(int64_t)},
      {a.out, 0, sizeof(int32_t)},
      {a.ring, 0, sizeof(int32_t) * size_t(a.window)},
  };
  std::erase_if(parts, [](const RollbackPart& r) { return r.bytes == 0; });  // no ring
  size_t at = 0;
  for (RollbackPart& r : parts) r.at = at, at += (r.bytes + 15) / 16 * 16;
  return parts;
}

void CudaBackend::undo_ahead() {
  if (!ahead_) return;
  ahead_ = false;
  sync_step();
  MS_CUDA_CHECK(cudaStreamSynchronize(slot_copy_));  // its slots' copy: the buffer is reused
  for (const RollbackPart& r : rollback_)
    MS_CUDA_CHECK(cudaMemcpyAsync(r.live, static_cast<const char*>(d_rollback_.get()) + r.at, r.bytes,
                                  cudaMemcpyDeviceToDevice, stream_));
  sync_step();
}

// Step k + 1 is launched before the host unpacks step k's slots (from the other pinned buffer),
// so the GPU's step and the host's probe frames overlap. If the host stops after token k (a stop
// string, a cancel, an exception), or needs the state as it was after token k (a snapshot asks
// for the logits first: fetch_logits), step k + 1 is undone from what it saved; after a
// snapshot it runs again, from the same saved counters, so the tokens do not change.
void CudaBackend::generate_recorded(CudaState& st, int n, const SampleArgs& args, const ExtrasPlan& plan,
                                    ProbeRecorder& probes, const std::function<bool(const GpuToken&)>& on_token) {
  reserve_extras(plan, 2);
  rollback_ = rollback_parts(st, args);
  d_rollback_.reserve(rollback_.back().at + rollback_.back().bytes + 16);
  cudaGraphExec_t step[2];
  for (int b = 0; b < 2; ++b) {
    if (!step_done_[b]) {
      ahead_out_[b].allocate(sizeof(SampleOut));
      MS_CUDA_CHECK(cudaEventCreateWithFlags(&step_done_[b], cudaEventDisableTiming));
      MS_CUDA_CHECK(cudaEventCreateWithFlags(&slots_landed_[b], cudaEventDisableTiming));
    }
    SampleArgs a = args;
    a.host = ahead_out_[b].dev<SampleOut>();
    step[b] = extras_graph(extras_sample_graph_[b], st, plan, &a, b);
  }
  if (!slot_copy_) MS_CUDA_CHECK(cudaStreamCreateWithFlags(&slot_copy_, cudaStreamNonBlocking));
  const size_t slot_bytes = sizeof(float) * plan.floats(cfg_.d_inner * cfg_.d_state);
  int launched = 0;  // steps 0 .. launched - 1 have been enqueued (and not undone)
  // Step k's slots are copied while step k + 1 computes; step k + 2 reuses the buffer only after
  // the host has waited for that copy.
  auto launch = [&](int k) {
    const int b = k & 1;
    MS_CUDA_CHECK(cudaGraphLaunch(step[b], stream_));
    launched = k + 1;
    MS_CUDA_CHECK(cudaEventRecord(step_done_[b], stream_));
    MS_CUDA_CHECK(cudaStreamWaitEvent(slot_copy_, step_done_[b], 0));
    if (slot_bytes > 0)
      MS_CUDA_CHECK(cudaMemcpyAsync(h_extra_[b].as<void>(), d_extra_[b].get(), slot_bytes, cudaMemcpyDeviceToHost,
                                    slot_copy_));
    MS_CUDA_CHECK(cudaEventRecord(slots_landed_[b], slot_copy_));
  };
  ForwardOptions rec;
  rec.probes = &probes;
  GpuToken tok;
  try {
    for (int k = 0; k < n; ++k) {
      if (launched == k) launch(k);  // the first step, or one undone for a snapshot
      ahead_ = false;
      if (k + 1 < n) {
        launch(k + 1);
        ahead_ = true;
      }
      const auto t0 = Clock::now();
      const cudaError_t e = cudaEventSynchronize(slots_landed_[k & 1]);  // after step k itself
      if (e != cudaSuccess) sync_step();  // throws, with the fused step's trap if there is one
      MS_CUDA_CHECK(e);
      const auto t1 = Clock::now();
      unpack_extras(plan, rec, 1, 0, st.position(), k & 1);
      st.advance(1);
      read_token(*ahead_out_[k & 1].host<SampleOut>(), args.n_alt, tok);
      const auto t2 = Clock::now();
      const bool go_on = on_token(tok);
      RecordedDecodeStats& rs = recorded_stats_;
      rs.steps += 1;
      rs.wait_s += seconds(t1 - t0);
      rs.record_s += seconds(t2 - t1);
      rs.caller_s += seconds(Clock::now() - t2);
      if (!go_on) break;
      if (!ahead_) launched = k + 1;  // fetch_logits undid step k + 1
    }
    undo_ahead();
  } catch (...) {
    try {
      undo_ahead();
    } catch (...) {  // the device failed: the first error is the one to report
    }
    ahead_ = false;
    throw;
  }
}

void CudaBackend::fetch_logits(std::vector<float>& out) {
  undo_ahead();
  out.resize(size_t(cfg_.vocab_size));
  // Through the pinned buffer: a copy into pageable memory is staged by the driver (slower).
  MS_CUDA_CHECK(cudaMemcpyAsync(h_logits_.as<float>(), d_logits1_.get(), sizeof(float) * out.size(),
                                cudaMemcpyDeviceToHost, stream_));
  MS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::memcpy(out.data(), h_logits_.as<float>(), sizeof(float) * out.size());
}

void CudaBackend::run_extras_step(CudaState& st, const ExtrasPlan& plan, const ForwardOptions& opts,
                                  int64_t position) {
  reserve_extras(plan, 1);
  const bool intervened = std::any_of(opts.delta_overrides.begin(), opts.delta_overrides.end(),
                                      [&](const DeltaOverride& o) { return o.position == position; });
  if (intervened)  // rare: the override flags are baked into a layer's launch
    enqueue_extras_step(st, plan, opts.delta_overrides, position, nullptr, 0);
  else
    MS_CUDA_CHECK(cudaGraphLaunch(extras_graph(extras_graph_, st, plan, nullptr, 0), stream_));
  sync_step();  // the one wait per token: the slots and the logits have landed
}

// What landed in pinned memory for token i of a call of L tokens at absolute position pos.
void CudaBackend::unpack_extras(const ExtrasPlan& plan, const ForwardOptions& opts, int64_t L,
                                int64_t i, int64_t pos, int buf) {
  const int64_t di = cfg_.d_inner, dm = cfg_.d_model, N = cfg_.d_state, R = cfg_.dt_rank;
  const bool probing = opts.probes && opts.probes->enabled();
  const float* base = h_extra_[buf].as<const float>();
  const float* hbase = base + plan.n_small * plan.small_floats;
  std::vector<std::pair<int, LayerCaptureView>> frames;  // the recorded layers' views
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const int slot = plan.slot[size_t(l)];
    if (slot < 0) continue;
    // {delta, hnorm, gate, x (d_inner each), xdbl (dt_rank, B, C)[, ypre][, resid]}
    const float* e = base + slot * plan.small_floats;
    if (opts.ssm_outputs)
      std::copy(e + plan.ypre_at, e + plan.ypre_at + di, opts.ssm_outputs->begin() + (l * L + i) * di);
    if (opts.residuals)
      std::copy(e + plan.resid_at, e + plan.resid_at + dm, opts.residuals->begin() + (l * L + i) * dm);
    if (!probing || !opts.probes->policy().records_layer(int(l))) continue;
    LayerCaptureView v{};
    v.delta = e;
    v.hnorm = e + di;
    v.z = nullptr;
    v.gate = e + 2 * di;
    v.u = e + 3 * di;
    v.B = e + 4 * di + R;
    v.C = e + 4 * di + R + N;
    v.h = plan.h_slot[size_t(l)] >= 0 ? hbase + plan.h_slot[size_t(l)] * di * N : nullptr;
    v.first = 0;
    frames.emplace_back(int(l), v);
  }
  if (frames.empty()) return;
  // The frames are made first, in layer order (the recorder's lists grow), then filled in
  // parallel: a 2.8b token's frames are ~4 MB of copies, which on one thread set the explorer's
  // pace (H200 host: 2.0 ms a token for a 2.1 ms step; in parallel 0.6-0.9 ms).
  ProbeRecorder& rec = *opts.probes;
  for (const auto& f : frames) rec.slot(pos, f.first);
  std::vector<LayerProbe*> dst;
  dst.reserve(frames.size());
  for (const auto& f : frames) dst.push_back(&rec.slot(pos, f.first));
  std::vector<FrozenMeans> means(frames.size());
  if (frozen_)
    for (size_t k = 0; k < frames.size(); ++k) means[k] = frozen_means(frames[k].first);
  // Tasks of >= ~64 KB of frames each (a small model's token stays on this thread: waking the
  // pool costs tens of µs), and at most 4 (H200 host, mambascope-bench --explorer: 130m while the
  // ring fills 337 µs a token with 8 tasks on 16 threads, 169 with 4 on 4; 2.8b's step hides
  // either).
  const int64_t nf = int64_t(frames.size());
  const int64_t grain = std::max<int64_t>({1, 65536 / (12 * di + 8 * N), (nf + 3) / 4});
  cpu::parallel_for(nf, grain, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      fill_probe(*dst[size_t(k)], frames[size_t(k)].first, 0, frames[size_t(k)].second, means[size_t(k)]);
  });
}

}  // namespace mambascope::cuda
