// Recurrent mode on the GPU: one decode step per token. A step that only needs logits (or a
// sampled token) is captured once into a CUDA graph and replayed: the fused kernel (one launch
// per token, decode_fused.hpp) where the device and the model allow, else the per-layer
// kernels; a sampled token and its alternatives land in mapped pinned memory, the one
// device-to-host transfer per token. A step that records probes, SSM outputs or residuals, or
// applies interventions, runs the per-layer kernels uncaptured and copies those per layer.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "cuda/cuda_backend_impl.hpp"
#include "cuda/ops.hpp"

namespace mambascope::cuda {

void CudaBackend::enqueue_step(CudaState& st, const ExtrasPlan* plan,
                               std::span<const DeltaOverride> overrides, int64_t position, float* slots) {
  const int64_t dm = cfg_.d_model, di = cfg_.d_inner, N = cfg_.d_state;
  const int64_t nl = cfg_.n_layer;
  // hidden_states = self.embeddings(input_id)                  -> resid1 {d_model}
  embedding(static_cast<const int32_t*>(d_ids_.get()), w_.embedding, w_.dtype, 1, dm,
            d_resid1_.f32(), stream_);
  DecodeScratch sc{d_x_.f32(), d_z_.f32(), d_xdbl_.f32(), d_y_.f32()};
  for (int64_t l = 0; l < nl; ++l) {
    DecodeProbes pr;
    // A recorded layer's slot (ExtrasPlan: delta, hnorm, z, x, xdbl[, ypre][, resid]) and h.
    float* e = plan && plan->slot[size_t(l)] >= 0 ? slots + plan->slot[size_t(l)] * plan->small_floats : nullptr;
    float* eh = plan && plan->h_slot[size_t(l)] >= 0
                    ? slots + plan->n_small * plan->small_floats + plan->h_slot[size_t(l)] * di * N
                    : nullptr;
    // A recorded layer's kernels keep z, x and xdbl in its slot instead of the scratch.
    DecodeScratch lsc = sc;
    if (e) {
      pr.delta = e;
      pr.hnorm = e + di;
      if (plan->ypre_at >= 0) pr.ypre = e + plan->ypre_at;
      lsc = DecodeScratch{e + 3 * di, e + 2 * di, e + 4 * di, d_y_.f32()};
    }
    for (const DeltaOverride& o : overrides)
      if ((o.layer == -1 || o.layer == l) && o.position == position)
        pr.override_delta = true, pr.override_value = o.value;
    const DecodeLayer lw = layer_view(st, l);
    decode_layer(shape_, lw, d_resid1_.f32(), lsc, pr, stream_);
    auto copy = [&](float* dst, const float* src, int64_t n) {
      MS_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, stream_));
    };
    if (e && plan->resid_at >= 0) copy(e + plan->resid_at, d_resid1_.f32(), dm);
    if (eh) copy(eh, lw.ssm_state, di * N);
  }
  // logits = lm_head(norm_f(hidden_states))
  decode_logits(shape_, w_.norm_f, w_.lm_head, int(cfg_.vocab_size), d_resid1_.f32(),
                d_logits1_.f32(), stream_);
}

namespace {
// Measurement and test overrides of the fused step's geometry: MAMBASCOPE_FUSED_BLOCKS=<G>
// (grid size, at most the SM count), MAMBASCOPE_FUSED_FOLD=0|1 (x_proj sums in every block),
// MAMBASCOPE_FUSED_PREFETCH=<bits> (FusedArgs::prefetch), MAMBASCOPE_FUSED_CLUSTER=<blocks>
// (FusedArgs::cluster), MAMBASCOPE_FUSED_OUTCOL=0|1 (FusedArgs::outcol), MAMBASCOPE_FUSED_SLOTS=<n>
// (at most n ring slots), MAMBASCOPE_FUSED_CAHEAD=<tiles> (FusedArgs::c_ahead; 0: the whole ring),
// MAMBASCOPE_FUSED_L2=<bits> (FusedArgs::l2, the streamed lines' L2 priorities; 0: none).
FusedRequest fused_request_from_env() {
  FusedRequest r;
  if (const char* g = std::getenv("MAMBASCOPE_FUSED_BLOCKS")) r.blocks = std::atoi(g);
  if (const char* f = std::getenv("MAMBASCOPE_FUSED_FOLD")) r.fold = std::atoi(f) != 0;
  if (const char* p = std::getenv("MAMBASCOPE_FUSED_PREFETCH")) r.prefetch = std::atoi(p);
  if (const char* c = std::getenv("MAMBASCOPE_FUSED_CLUSTER")) r.cluster = std::atoi(c);
  if (const char* o = std::getenv("MAMBASCOPE_FUSED_OUTCOL")) r.outcol = std::atoi(o) != 0;
  if (const char* n = std::getenv("MAMBASCOPE_FUSED_SLOTS")) r.slots = std::atoi(n);
  if (const char* c = std::getenv("MAMBASCOPE_FUSED_CAHEAD")) r.c_ahead = std::atoi(c);
  if (const char* l = std::getenv("MAMBASCOPE_FUSED_L2")) r.l2 = std::atoi(l);
  return r;
}
}  // namespace

DecodeRuntime& CudaBackend::decode_runtime() {
  if (decode_rt_) return *decode_rt_;
  auto rt = std::make_unique<DecodeRuntime>();
  rt->sample_out.allocate(sizeof(SampleOut));
  rt->trap.allocate(sizeof(FusedTrap));
  FusedArgs& a = rt->args;
  a.n_layer = int(cfg_.n_layer), a.dm = int(cfg_.d_model), a.D = int(cfg_.d_inner);
  a.N = int(cfg_.d_state), a.R = int(cfg_.dt_rank), a.xr = int(cfg_.x_proj_rows());
  a.k = int(cfg_.d_conv), a.V = int(cfg_.vocab_size), a.eps = float(cfg_.norm_eps);
  FusedRequest req = fused_request_from_env();
  if (cfg_.lti || !w_.layers[0].recA) rt->why_not = "LTI layers run on the per-layer kernels";
  else rt->why_not = fused_plan(a, w_.dtype, device_, req);
  // out_proj by columns needs a transposed copy of every out_proj (as large as out_proj: 130m
  // 57 MB, 2.8b 1.7 GB in bf16); without room for it, plan again by rows.
  const size_t cols_bytes = size_t(a.n_layer) * a.D * a.dm * dtype_size(w_.dtype);
  size_t free_b = 0, total_b = 0;
  if (rt->why_not.empty() && a.outcol && (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess ||
                                          free_b < cols_bytes + (size_t(512) << 20))) {
    req.outcol = 0;
    rt->why_not = fused_plan(a, w_.dtype, device_, req);
  }
  const char* env = std::getenv("MAMBASCOPE_DECODE");
  if (env && std::string(env) == "kernels") rt->enabled = false;
  if (rt->why_not.empty()) {
    std::vector<FusedLayer> layers;
    for (const DecodeLayer& L : w_.layers)
      layers.push_back({L.in_proj, L.out_proj, L.recA, L.recB, L.norm_w, L.in_bias, L.out_bias});
    if (a.outcol) {
      const size_t cols_layer = size_t(a.D) * a.dm * dtype_size(w_.dtype);
      rt->out_cols.reserve(cols_bytes);
      for (size_t l = 0; l < w_.layers.size(); ++l)
        transpose_matrix(w_.layers[l].out_proj, static_cast<char*>(rt->out_cols.get()) + l * cols_layer, a.dm, a.D,
                         w_.dtype, stream_);
      MS_CUDA_CHECK(cudaStreamSynchronize(stream_));
      a.out_cols = rt->out_cols.get();
    }
    rt->layers.reserve(sizeof(FusedLayer) * layers.size());
    MS_CUDA_CHECK(cudaMemcpy(rt->layers.get(), layers.data(), sizeof(FusedLayer) * layers.size(),
                             cudaMemcpyHostToDevice));
    a.layers = static_cast<const FusedLayer*>(rt->layers.get());
    a.embedding = w_.embedding;
    a.lm_head = w_.lm_head;
    a.norm_f = w_.norm_f;
    // Exchange words start at epoch 0, which no step uses (the first step's epoch is 1).
    rt->ll.reserve(sizeof(uint64_t) * size_t(fused_ll_words(a)));
    MS_CUDA_CHECK(cudaMemset(rt->ll.get(), 0, rt->ll.bytes()));
    rt->sync.reserve(2 * sizeof(uint32_t));
    MS_CUDA_CHECK(cudaMemset(rt->sync.get(), 0, rt->sync.bytes()));
#ifdef MAMBASCOPE_FUSED_TRACE
    rt->prof.reserve(sizeof(unsigned long long) * (kProfSlots + fused_trace_words(a.G, a.n_layer)));
#else
    rt->prof.reserve(sizeof(unsigned long long) * kProfSlots);
#endif
    a.ll = static_cast<uint64_t*>(rt->ll.get());
    a.sync = static_cast<uint32_t*>(rt->sync.get());
    a.ids = static_cast<const int32_t*>(d_ids_.get());
    a.logits = d_logits1_.f32();
    a.trap = rt->trap.dev<FusedTrap>();
    if (const char* f = std::getenv("MAMBASCOPE_FUSED_FAULT")) a.fault = std::atoi(f);  // a test hook
    // How long a block's step may last before its watchdog warp traps (twice this).
    if (const char* ms = std::getenv("MAMBASCOPE_FUSED_WATCHDOG_MS"); ms && std::atoll(ms) > 0)
      a.watchdog_ns = (unsigned long long)std::min(std::atoll(ms), 86400000LL) * 1000000ull;  // at most a day
  }
  decode_rt_ = std::move(rt);
  return *decode_rt_;
}

bool CudaBackend::fused_for(const CudaState& st) {
  const DecodeRuntime& rt = decode_runtime();
  // Frozen or LTI layers (no x_proj in the step's view) take the per-layer kernels.
  return rt.enabled && rt.why_not.empty() && layer_view(st, 0).x_proj != nullptr;
}

FusedArgs CudaBackend::fused_args(CudaState& st) {
  FusedArgs a = decode_runtime().args;
  a.conv_state = st.conv();
  a.ssm_state = st.ssm();
  return a;
}

void CudaBackend::sync_step() { report_step_error(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

void CudaBackend::report_step_error(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  std::string where;
  if (decode_rt_) {
    const FusedTrap& t = *decode_rt_->trap.host<FusedTrap>();
    const std::string waited = std::to_string(2 * decode_rt_->args.watchdog_ns / 1000000ull) + " ms";
    if (t.code && t.phase == kFusedPhaseStuck)
      where = " (block " + std::to_string(t.block) + " of the fused decode step did not finish within " + waited +
              ": its compute warps and its weight ring's producer wait for each other or for a tile that never "
              "comes, a bug in the step's plan; MAMBASCOPE_DECODE=kernels runs the per-layer kernels)";
    else if (t.code)
      where = " (the fused decode step waited ~10 s for block data: block " + std::to_string(t.block) +
              ", layer " + std::to_string(t.layer) + ", phase " + std::to_string(t.phase) + ", epoch " +
              std::to_string(t.epoch) + ", saw " + std::to_string(t.seen) +
              "; MAMBASCOPE_DECODE=kernels runs the per-layer kernels)";
  }
  throw_cuda_error(std::string(cudaGetErrorString(e)) + where, call, __FILE__, __LINE__);
}

bool CudaBackend::fused_sampling(FusedArgs& a, const SampleArgs* sampling) {
  if (!sampling || !fused_can_sample(*sampling)) return false;
  a.sample = true;
  a.n_alt = sampling->n_alt;
  a.rep_penalty = sampling->repetition_penalty;
  a.window = sampling->window;
  a.ring = sampling->ring;
  a.counters = sampling->counters;
  a.out = sampling->out;
  a.host = sampling->host;
  return true;
}

void CudaBackend::capture(Graph& g, CudaState& st, const SampleArgs* sampling) {
  if (g.exec) cudaGraphExecDestroy(g.exec);
  g.exec = nullptr;
  const bool fused = fused_for(st);
  // One uncaptured run first would advance the state, so the graph is built from a capture
  // only; kernel attributes are set on the host and are legal during capture.
  cudaGraph_t graph = nullptr;
  MS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    bool sampled = false;
    if (fused) {
      FusedArgs a = fused_args(st);
      sampled = fused_sampling(a, sampling);
      launch_fused(a, w_.dtype, stream_);
    } else {
      enqueue_step(st);
    }
    if (sampling && !sampled) sample(*sampling, stream_);
    if (!sampling)
      MS_CUDA_CHECK(cudaMemcpyAsync(h_logits_.as<float>(), d_logits1_.get(),
                                    sizeof(float) * cfg_.vocab_size, cudaMemcpyDeviceToHost, stream_));
  } catch (const Error& e) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    if (!fused) throw;
    // A driver that cannot capture the cooperative launch: the per-layer kernels from now on.
    cudaGetLastError();
    decode_runtime().why_not = std::string("the fused step could not be captured: ") + e.what();
    capture(g, st, sampling);
    return;
  }
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&g.exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e != cudaSuccess && fused) {
    cudaGetLastError();
    g.exec = nullptr;
    decode_runtime().why_not = std::string("the fused step could not be captured: ") + cudaGetErrorString(e);
    capture(g, st, sampling);
    return;
  }
  MS_CUDA_CHECK(e);
  g.key = &st;
  if (sampling) g.args = *sampling;
}

void CudaBackend::recurrent(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                            std::vector<float>& logits) {
  const int64_t L = int64_t(tokens.size()), V = cfg_.vocab_size;
  const bool probing = opts.probes && opts.probes->enabled();
  const bool extra = probing || opts.ssm_outputs || opts.residuals || !opts.delta_overrides.empty();
  const int64_t n_out = opts.all_logits ? L : 1;
  logits.resize(size_t(n_out * V));
  const ExtrasPlan plan = extra ? extras_plan(opts) : ExtrasPlan{};
  for (int64_t i = 0; i < L; ++i) {
    const int64_t pos = st.position();
    MS_CUDA_CHECK(cudaMemcpyAsync(d_ids_.get(), &tokens[size_t(i)], sizeof(int32_t),
                                  cudaMemcpyHostToDevice, stream_));
    const bool want_logits = opts.all_logits || i == L - 1;
    if (!extra) {
      if (!logits_graph_.exec || logits_graph_.key != &st) capture(logits_graph_, st, nullptr);
      MS_CUDA_CHECK(cudaGraphLaunch(logits_graph_.exec, stream_));
      sync_step();
    } else {
      run_extras_step(st, plan, opts, pos);  // (cuda_decode_extras.cpp) waits for the copies
      unpack_extras(plan, opts, L, i, pos);
    }
    if (want_logits)
      std::memcpy(logits.data() + (opts.all_logits ? i : 0) * V, h_logits_.as<float>(), sizeof(float) * V);
    st.advance(1);
  }
}

void CudaBackend::generate(CudaState& st, int32_t feed, int n, const SamplingParams& sp,
                           const std::function<bool(const GpuToken&)>& on_token,
                           std::span<const int32_t> history, ProbeRecorder* probes) {
  MS_CUDA_CHECK(cudaSetDevice(device_));
  if (feed < 0 || feed >= cfg_.vocab_size) throw Error("token id outside the vocabulary");
  SampleArgs a;
  a.logits = d_logits1_.f32();
  a.vocab = int(cfg_.vocab_size);
  a.temperature = sp.temperature;
  a.top_k = sp.top_k;
  a.top_p = sp.top_p;
  a.min_p = sp.min_p;
  a.repetition_penalty = sp.repetition_penalty;
  // A window of 0 turns the penalty off, as on the CPU.
  a.window = sp.repetition_penalty != 1.f && sp.repetition_window > 0 ? sp.repetition_window : 0;
  d_ring_.reserve(sizeof(int32_t) * std::max(1, a.window));
  a.ring = static_cast<int32_t*>(d_ring_.get());
  a.counters = static_cast<int64_t*>(d_counters_.get());
  a.seed = sp.seed;
  a.n_alt = std::min(sp.n_alternatives, kMaxCandidates);
  a.work = d_work_.f32();
  a.out = static_cast<int32_t*>(d_ids_.get());  // the sampled token is the next step's input
  a.host = decode_runtime().sample_out.dev<SampleOut>();
  const bool recording = probes && probes->enabled();
  if (!recording) {
    const bool same = sample_graph_.exec && sample_graph_.key == &st && same_sampling(sample_graph_.args, a);
    if (!same) capture(sample_graph_, st, &a);
  }
  // The ring starts as the CPU Sampler's window would be: the last tokens of the history and
  // the feed token, oldest first (the kernels overwrite the oldest next); the sampling step
  // counter starts at zero.
  std::vector<int32_t> window;
  if (a.window > 0) {
    const size_t keep = std::min(history.size(), size_t(a.window - 1));
    window.assign(history.end() - std::ptrdiff_t(keep), history.end());
    window.push_back(feed);
  }
  const int64_t counters[2] = {int64_t(window.size()), 0};
  MS_CUDA_CHECK(cudaMemcpyAsync(d_counters_.get(), counters, sizeof(counters), cudaMemcpyHostToDevice, stream_));
  if (!window.empty())
    MS_CUDA_CHECK(cudaMemcpyAsync(d_ring_.get(), window.data(), sizeof(int32_t) * window.size(),
                                  cudaMemcpyHostToDevice, stream_));
  MS_CUDA_CHECK(cudaMemcpyAsync(d_ids_.get(), &feed, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  // Recording probes: the recorded per-layer steps with the sampling kernel, pipelined.
  if (recording) {
    ForwardOptions rec;
    rec.probes = probes;
    generate_recorded(st, n, a, extras_plan(rec), *probes, on_token);
    return;
  }
  SampleOut* out = decode_runtime().sample_out.host<SampleOut>();
  GpuToken tok;
  try {
    for (int i = 0; i < n; ++i) {
      if (spin_on_token_) arm_token(*out, a.n_alt);
      MS_CUDA_CHECK(cudaGraphLaunch(sample_graph_.exec, stream_));
      if (spin_on_token_) wait_token(*out, a.n_alt);
      else sync_step();  // the one wait per token
      st.advance(1);
      read_token(*out, a.n_alt, tok);
      if (!on_token(tok)) break;
    }
  } catch (...) {
    try {
      sync_step();
    } catch (...) {  // the device failed: the first error is the one to report
    }
    throw;
  }
  if (spin_on_token_) sync_step();  // the last step's tail (the state's last writes)
}

// The token's fields get values no step writes (ids: INT32_MIN, probabilities: a NaN with a
// payload that arithmetic never makes) before each launch, so that the host sees the token as
// soon as the step has written it, before the kernel has finished and the stream has signalled
// it; the next launch is stream-ordered behind the kernel anyway.
namespace {
constexpr uint32_t kProbUnset = 0x7fbadbadu;
}
void CudaBackend::arm_token(SampleOut& out, int n_alt) {
  volatile int32_t* ids = out.ids;
  volatile uint32_t* prob = reinterpret_cast<volatile uint32_t*>(out.prob);
  for (int j = 0; j <= n_alt; ++j) ids[j] = INT32_MIN;
  for (int j = 0; j < n_alt; ++j) prob[j] = kProbUnset;
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void CudaBackend::wait_token(const SampleOut& out, int n_alt) {
  const volatile int32_t* ids = out.ids;
  const volatile uint32_t* prob = reinterpret_cast<const volatile uint32_t*>(out.prob);
  for (uint32_t spins = 1;; ++spins) {
    bool all = ids[0] != INT32_MIN;
    for (int j = 0; all && j < n_alt; ++j) all = ids[1 + j] != INT32_MIN && prob[j] != kProbUnset;
    if (all) break;
    // Now and then ask the stream: an error (a trapped step) is reported as sync_step reports
    // it, and a finished stream ends the wait whatever the fields hold (a sampler that writes
    // fewer alternatives than asked, where the vocabulary has fewer).
    if ((spins & 1023u) == 0) {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) break;
      if (e != cudaErrorNotReady) report_step_error(e, "cudaStreamQuery");
    }
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

std::string CudaBackend::decode_path() {
  MS_CUDA_CHECK(cudaSetDevice(device_));
  const DecodeRuntime& rt = decode_runtime();
  if (!rt.why_not.empty()) return "kernels: " + rt.why_not;
  if (!rt.enabled) return "kernels: the fused step is turned off";
  return "fused";
}

void CudaBackend::use_fused(bool on) {
  MS_CUDA_CHECK(cudaSetDevice(device_));
  decode_runtime().enabled = on;
  sample_graph_.key = nullptr;  // capture again, the recorded steps too (they record in the fused step)
  forget_step_graphs();
}

std::vector<DecodePhase> CudaBackend::profile_fused(CudaState& st, int32_t feed, int n) {
  MS_CUDA_CHECK(cudaSetDevice(device_));
  if (!fused_for(st) || n <= 0) return {};
  DecodeRuntime& rt = decode_runtime();
  FusedArgs a = fused_args(st);
  a.sample = true;
  a.n_alt = 5;
  a.counters = static_cast<int64_t*>(d_counters_.get());
  a.out = static_cast<int32_t*>(d_ids_.get());
  a.host = rt.sample_out.dev<SampleOut>();
  a.prof = static_cast<unsigned long long*>(rt.prof.get());
  MS_CUDA_CHECK(cudaMemsetAsync(rt.prof.get(), 0, rt.prof.bytes(), stream_));
  MS_CUDA_CHECK(cudaMemsetAsync(d_counters_.get(), 0, 2 * sizeof(int64_t), stream_));
  MS_CUDA_CHECK(cudaMemcpyAsync(d_ids_.get(), &feed, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  for (int i = 0; i < n; ++i) launch_fused(a, w_.dtype, stream_);
  sync_step();
  st.advance(n);
  unsigned long long p[kProfSlots];
  MS_CUDA_CHECK(cudaMemcpy(p, rt.prof.get(), sizeof(p), cudaMemcpyDeviceToHost));
#ifdef MAMBASCOPE_FUSED_TRACE
  // The last profiled step's stamps, appended to the file: {G, n_layer, stamps, cluster} as int32,
  // then the stamps as uint64 (scripts/fused_trace.py reads them).
  if (const char* path = std::getenv("MAMBASCOPE_FUSED_TRACE_OUT")) {
    std::vector<unsigned long long> tr(fused_trace_words(a.G, a.n_layer));
    MS_CUDA_CHECK(cudaMemcpy(tr.data(), static_cast<unsigned long long*>(rt.prof.get()) + kProfSlots,
                             tr.size() * sizeof(tr[0]), cudaMemcpyDeviceToHost));
    if (FILE* f = std::fopen(path, "ab")) {
      const int hdr[4] = {a.G, a.n_layer, kFusedTraceStamps, a.cluster};
      std::fwrite(hdr, sizeof(hdr), 1, f);
      std::fwrite(tr.data(), sizeof(tr[0]), tr.size(), f);
      std::fclose(f);
    } else {
      std::fprintf(stderr, "mambascope: cannot write the fused step's trace to %s\n", path);
    }
  }
#endif
  // Cycles of block 0 to µs through its own wall clock over the same steps.
  const double us_per_cycle = p[kProfStep] ? double(p[kProfNs]) * 1e-3 / double(p[kProfStep]) : 0.0;
  const double steps = double(std::max<unsigned long long>(1, p[kProfSteps]));
  const char* names[] = {"A wait (residual)", "A residual+norm (incl. wait)", "A in_proj", "A conv+x_proj partials",
                         "X wait", "X x_proj sums", "B wait (x_proj)", "B dt+state+gate",
                         "C wait (y)", "C out_proj+residual", "F wait (residual)", "F lm_head",
                         "F merge (block 0)", "weight ring waits (inside phases)", "step (block 0)"};
  std::vector<DecodePhase> out;
  for (int q = 0; q <= kProfStep; ++q) out.push_back({names[q], double(p[q]) * us_per_cycle / steps});
  out.push_back({"step wall (block 0, globaltimer)", double(p[kProfNs]) * 1e-3 / steps});
  out.push_back({"SM clock MHz (block 0: cycles / ns)", p[kProfNs] ? 1e3 * double(p[kProfStep]) / double(p[kProfNs]) : 0.0});
  out.push_back({"grid blocks (not a time)", double(a.G)});
  out.push_back({"blocks per cluster (not a time)", double(a.cluster)});
  out.push_back({"ring slots (not a time)", double(a.n_slots)});
  out.push_back({"B and C tiles ahead (not a time; B from 2)", double(a.c_ahead)});
  return out;
}

bool CudaBackend::decode_on_device(BackendState& state, int32_t feed, int max_steps,
                                   const SamplingParams& sp, std::span<const int32_t> history,
                                   ProbeRecorder* probes,
                                   const std::function<bool(const DeviceStep&)>& on_step,
                                   std::vector<float>& last_logits) {
  auto* st = dynamic_cast<CudaState*>(&state);
  if (!st || sp.n_alternatives > kMaxCandidates) return false;
  if (max_steps <= 0) return true;
  // The logits after the token the host has seen (fetch_logits knows where they are).
  auto fetch = [&](std::vector<float>& out) { fetch_logits(out); };
  DeviceStep step;
  step.logits = fetch;
  generate(*st, feed, max_steps, sp, [&](const GpuToken& t) {
    step.next = t.id;
    step.alternatives = t.alternatives;
    return on_step(step);
  }, history, probes);
  fetch(last_logits);
  return true;
}

void generate_on_gpu(Backend& backend, BackendState& state, int32_t feed, int n,
                     const SamplingParams& sp, const std::function<bool(const GpuToken&)>& on_token,
                     std::span<const int32_t> history) {
  auto* b = dynamic_cast<CudaBackend*>(&backend);
  auto* s = dynamic_cast<CudaState*>(&state);
  if (!b || !s) throw Error("generate_on_gpu needs the CUDA backend and one of its states");
  b->generate(*s, feed, n, sp, on_token, history);
}

namespace {
CudaBackend& cuda_of(Backend& backend) {
  auto* b = dynamic_cast<CudaBackend*>(&backend);
  if (!b) throw Error("this needs the CUDA backend");
  return *b;
}
}  // namespace

std::string decode_path(Backend& backend) { return cuda_of(backend).decode_path(); }
void use_fused_decode(Backend& backend, bool on) { cuda_of(backend).use_fused(on); }
RecordedDecodeStats recorded_decode_stats(Backend& backend) { return cuda_of(backend).recorded_stats(); }
std::vector<DecodePhase> profile_decode(Backend& backend, BackendState& state, int32_t feed, int n) {
  auto* s = dynamic_cast<CudaState*>(&state);
  if (!s) throw Error("profile_decode needs one of the CUDA backend's states");
  return cuda_of(backend).profile_fused(*s, feed, n);
}

}  // namespace mambascope::cuda

namespace mambascope {

std::unique_ptr<Backend> make_cuda_backend(const Checkpoint& ckpt, int device) {
  return std::make_unique<cuda::CudaBackend>(ckpt, device);
}

}  // namespace mambascope
