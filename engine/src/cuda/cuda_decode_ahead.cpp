// generate() on the fused step without probes: step k + 1 is launched before the host waits for
// step k, so the GPU goes from one token to the next without waiting for the host's wake-up and
// the next graph launch (~10 µs a token on the H200, 4% of a 130m token).
//
// The steps alternate between two buffer pairs: pair 0 is the state's own conv and SSM buffers,
// d_ids_ (the fed token) and d_logits1_; pair 1 is ahead_*. A step reads pair c and writes pair
// 1 - c, so the step run ahead of a token the host stops at (end of text, a stop string, a
// cancel) never touched what the host has seen: undoing it is only going back to the pair it
// read. The repetition ring and the sampler's counters are shared; the host replays the tokens
// it has seen into its own copy of them and writes that back when it settles (settle_ahead):
// at the end of the call, when the host asks for the logits (a snapshot), or on an error.
#include <string>
#include <vector>

#include "cuda/cuda_backend_impl.hpp"

namespace mambascope::cuda {

void CudaBackend::capture_ahead(int c, CudaState& st, const SampleArgs& base) {
  Graph& g = ahead_graph_[c];
  if (g.exec) cudaGraphExecDestroy(g.exec);
  g.exec = nullptr;
  g.key = nullptr;
  float* conv[2] = {st.conv(), ahead_conv_.f32()};
  float* ssm[2] = {st.ssm(), ahead_ssm_.f32()};
  int32_t* ids[2] = {static_cast<int32_t*>(d_ids_.get()), static_cast<int32_t*>(ahead_ids_.get())};
  float* logits[2] = {d_logits1_.f32(), ahead_logits_.f32()};
  FusedArgs a = fused_args(st);
  a.conv_state = conv[c], a.ssm_state = ssm[c], a.ids = ids[c];
  a.conv_out = conv[1 - c], a.ssm_out = ssm[1 - c], a.logits = logits[1 - c];
  SampleArgs s = base;
  s.logits = logits[1 - c];
  s.out = ids[1 - c];
  s.host = ahead_out_[c].dev<SampleOut>();
  cudaGraph_t graph = nullptr;
  MS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    const bool sampled = fused_sampling(a, &s);
    launch_fused(a, w_.dtype, stream_);
    if (!sampled) sample(s, stream_);
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    return;  // g.exec stays null: the caller takes the step-by-step path
  }
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&g.exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    cudaGetLastError();
    g.exec = nullptr;
    return;
  }
  g.key = &st;
  g.args = base;
}

bool CudaBackend::generate_ahead(CudaState& st, int32_t feed, int n, const SampleArgs& args,
                                 std::span<const int32_t> window,
                                 const std::function<bool(const GpuToken&)>& on_token) {
  ahead_conv_.reserve(sizeof(float) * std::max<size_t>(st.conv_floats(), 1));
  ahead_ssm_.reserve(sizeof(float) * st.ssm_floats());
  ahead_ids_.reserve(sizeof(int32_t) * (1 + kMaxCandidates));
  ahead_logits_.reserve(sizeof(float) * size_t(cfg_.vocab_size));
  for (int c = 0; c < 2; ++c) {
    if (!step_done_[c]) {
      ahead_out_[c].allocate(sizeof(SampleOut));
      MS_CUDA_CHECK(cudaEventCreateWithFlags(&step_done_[c], cudaEventDisableTiming));
      MS_CUDA_CHECK(cudaEventCreateWithFlags(&slots_landed_[c], cudaEventDisableTiming));
    }
    // The graph bakes in the pair's pointers: capture again for another state, other sampling
    // settings, or pair-1 buffers that moved (a larger state).
    Graph& g = ahead_graph_[c];
    if (!g.exec || g.key != &st || !same_sampling(g.args, args) || ahead_graph_alt_[c] != ahead_ssm_.get()) {
      capture_ahead(c, st, args);
      ahead_graph_alt_[c] = ahead_ssm_.get();
    }
    if (!g.exec) return false;
  }
  run_ = AheadRun{};
  run_.active = true;
  run_.st = &st;
  run_.window = args.window;
  run_.ring.assign(window.begin(), window.end());
  run_.ring.resize(size_t(std::max(args.window, 0)));
  run_.counters[0] = int64_t(window.size());
  run_.last = feed;
  int launched = 0;  // steps 0 .. launched - 1 have been enqueued (and not undone)
  auto launch = [&](int k, int c) {
    MS_CUDA_CHECK(cudaGraphLaunch(ahead_graph_[c].exec, stream_));
    MS_CUDA_CHECK(cudaEventRecord(step_done_[c], stream_));
    launched = k + 1;
  };
  GpuToken tok;
  try {
    for (int k = 0; k < n; ++k) {
      if (launched == k) launch(k, run_.cur);  // the first step, or one undone for a snapshot
      run_.ahead = false;
      if (k + 1 < n) {
        launch(k + 1, 1 - run_.cur);
        run_.ahead = true;
      }
      const cudaError_t e = cudaEventSynchronize(step_done_[run_.cur]);  // step k
      if (e != cudaSuccess) sync_step();  // throws, naming a stuck fused step
      MS_CUDA_CHECK(e);
      read_token(*ahead_out_[run_.cur].host<SampleOut>(), args.n_alt, tok);
      run_.cur ^= 1;  // step k wrote the other pair
      if (run_.window > 0) run_.ring[size_t(run_.counters[0] % run_.window)] = tok.id;
      run_.counters[0] += 1;
      run_.counters[1] += 1;
      run_.last = tok.id;
      st.advance(1);
      if (!on_token(tok)) break;
      if (!run_.ahead) launched = k + 1;  // fetch_logits settled: step k + 1 runs again, from pair 0
    }
    settle_ahead();
  } catch (...) {
    try {
      settle_ahead();
    } catch (...) {  // the device failed: the first error is the one to report
    }
    run_.active = false;
    throw;
  }
  run_.active = false;
  return true;
}

void CudaBackend::settle_ahead() {
  if (!run_.active) return;
  run_.ahead = false;
  sync_step();  // the step run ahead, if any, has finished with the buffers
  if (run_.cur == 1) {
    CudaState& st = *run_.st;
    MS_CUDA_CHECK(cudaMemcpyAsync(st.conv(), ahead_conv_.get(), sizeof(float) * st.conv_floats(),
                                  cudaMemcpyDeviceToDevice, stream_));
    MS_CUDA_CHECK(cudaMemcpyAsync(st.ssm(), ahead_ssm_.get(), sizeof(float) * st.ssm_floats(),
                                  cudaMemcpyDeviceToDevice, stream_));
    MS_CUDA_CHECK(cudaMemcpyAsync(d_logits1_.get(), ahead_logits_.get(), sizeof(float) * size_t(cfg_.vocab_size),
                                  cudaMemcpyDeviceToDevice, stream_));
    run_.cur = 0;
  }
  // The fed token, the counters and the ring as the host's tokens left them (a step run ahead
  // advanced the device's copies).
  MS_CUDA_CHECK(cudaMemcpyAsync(d_ids_.get(), &run_.last, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  MS_CUDA_CHECK(cudaMemcpyAsync(d_counters_.get(), run_.counters, sizeof(run_.counters), cudaMemcpyHostToDevice,
                                stream_));
  if (run_.window > 0)
    MS_CUDA_CHECK(cudaMemcpyAsync(d_ring_.get(), run_.ring.data(), sizeof(int32_t) * run_.ring.size(),
                                  cudaMemcpyHostToDevice, stream_));
  sync_step();
}

}  // namespace mambascope::cuda
