// Recurrent mode on the GPU: one fused decode step per token. A step that only needs logits
// (or a sampled token) is captured once into a CUDA graph and replayed, with one small
// device-to-host copy per token; a step that records probes, SSM outputs or residuals runs
// uncaptured and copies those per layer.
#include <algorithm>
#include <cstring>
#include <string>

#include "cuda/cuda_backend_impl.hpp"
#include "cuda/ops.hpp"

namespace mambascope::cuda {

void CudaBackend::enqueue_step(CudaState& st, const ForwardOptions* extra, int64_t position) {
  const int64_t dm = cfg_.d_model, di = cfg_.d_inner, N = cfg_.d_state, xr = cfg_.x_proj_rows();
  const int64_t nl = cfg_.n_layer;
  // hidden_states = self.embeddings(input_id)                  -> resid1 {d_model}
  embedding(static_cast<const int32_t*>(d_ids_.get()), w_.embedding, w_.dtype, 1, dm,
            d_resid1_.f32(), stream_);
  DecodeScratch sc{d_x_.f32(), d_z_.f32(), d_xdbl_.f32(), d_y_.f32()};
  // extra layout {per layer: delta, hnorm, ypre, z, x (d_inner each), xdbl, resid, h (d_inner N)}
  const int64_t per = 5 * di + xr + dm + di * N;
  if (extra) d_extra_.reserve(sizeof(float) * nl * per);
  for (int64_t l = 0; l < nl; ++l) {
    DecodeProbes pr;
    float* e = extra ? d_extra_.f32() + l * per : nullptr;
    if (e) {
      pr.delta = e;
      pr.hnorm = e + di;
      pr.ypre = e + 2 * di;
      for (const DeltaOverride& o : extra->delta_overrides)
        if ((o.layer == -1 || o.layer == l) && o.position == position)
          pr.override_delta = true, pr.override_value = o.value;
    }
    const DecodeLayer lw = layer_view(st, l);
    decode_layer(shape_, lw, d_resid1_.f32(), sc, pr, stream_);
    if (e) {
      auto copy = [&](float* dst, const float* src, int64_t n) {
        MS_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, stream_));
      };
      copy(e + 3 * di, d_z_.f32(), di);
      copy(e + 4 * di, d_x_.f32(), di);
      copy(e + 5 * di, d_xdbl_.f32(), xr);
      copy(e + 5 * di + xr, d_resid1_.f32(), dm);
      copy(e + 5 * di + xr + dm, lw.ssm_state, di * N);
    }
  }
  // logits = lm_head(norm_f(hidden_states))
  decode_logits(shape_, w_.norm_f, w_.lm_head, int(cfg_.vocab_size), d_resid1_.f32(),
                d_logits1_.f32(), stream_);
}

void CudaBackend::capture(Graph& g, CudaState& st, const SampleArgs* sampling) {
  if (g.exec) cudaGraphExecDestroy(g.exec);
  g.exec = nullptr;
  // One uncaptured run first would advance the state, so the graph is built from a capture
  // only; kernel attributes are set on the host and are legal during capture.
  cudaGraph_t graph = nullptr;
  MS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_step(st, nullptr, 0);
    if (sampling) {
      sample(*sampling, stream_);
      const size_t ids = sizeof(int32_t) * (1 + kMaxCandidates);
      MS_CUDA_CHECK(cudaMemcpyAsync(h_out_.as<char>(), d_ids_.get(), ids, cudaMemcpyDeviceToHost, stream_));
      MS_CUDA_CHECK(cudaMemcpyAsync(h_out_.as<char>() + ids, d_prob_.get(), sizeof(float) * kMaxCandidates,
                                    cudaMemcpyDeviceToHost, stream_));
    } else {
      MS_CUDA_CHECK(cudaMemcpyAsync(h_logits_.as<float>(), d_logits1_.get(),
                                    sizeof(float) * cfg_.vocab_size, cudaMemcpyDeviceToHost, stream_));
    }
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  MS_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  const cudaError_t e = cudaGraphInstantiate(&g.exec, graph, 0);
  cudaGraphDestroy(graph);
  MS_CUDA_CHECK(e);
  g.key = &st;
  if (sampling) g.args = *sampling;
}

void CudaBackend::recurrent(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                            std::vector<float>& logits) {
  const int64_t L = int64_t(tokens.size()), V = cfg_.vocab_size, dm = cfg_.d_model,
                di = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank, xr = cfg_.x_proj_rows();
  const bool probing = opts.probes && opts.probes->enabled();
  const bool extra = probing || opts.ssm_outputs || opts.residuals || !opts.delta_overrides.empty();
  const int64_t n_out = opts.all_logits ? L : 1;
  logits.resize(size_t(n_out * V));
  const int64_t per = 5 * di + xr + dm + di * N;
  std::vector<float> host_extra;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t pos = st.position();
    MS_CUDA_CHECK(cudaMemcpyAsync(d_ids_.get(), &tokens[size_t(i)], sizeof(int32_t),
                                  cudaMemcpyHostToDevice, stream_));
    const bool want_logits = opts.all_logits || i == L - 1;
    if (!extra) {
      if (!logits_graph_.exec || logits_graph_.key != &st) capture(logits_graph_, st, nullptr);
      MS_CUDA_CHECK(cudaGraphLaunch(logits_graph_.exec, stream_));
      MS_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (want_logits)
        std::memcpy(logits.data() + (opts.all_logits ? i : 0) * V, h_logits_.as<float>(), sizeof(float) * V);
    } else {
      enqueue_step(st, &opts, pos);
      if (want_logits)
        MS_CUDA_CHECK(cudaMemcpyAsync(logits.data() + (opts.all_logits ? i : 0) * V, d_logits1_.get(),
                                      sizeof(float) * V, cudaMemcpyDeviceToHost, stream_));
      host_extra.resize(size_t(cfg_.n_layer * per));
      MS_CUDA_CHECK(cudaMemcpyAsync(host_extra.data(), d_extra_.get(), sizeof(float) * host_extra.size(),
                                    cudaMemcpyDeviceToHost, stream_));
      MS_CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (int64_t l = 0; l < cfg_.n_layer; ++l) {
        const float* e = host_extra.data() + l * per;
        if (opts.ssm_outputs)
          std::copy(e + 2 * di, e + 3 * di, opts.ssm_outputs->begin() + (l * L + i) * di);
        if (opts.residuals)
          std::copy(e + 5 * di + xr, e + 5 * di + xr + dm, opts.residuals->begin() + (l * L + i) * dm);
        if (probing && opts.probes->policy().records_layer(int(l))) {
          LayerCapture cap;
          cap.first = 0;
          cap.delta.assign(e, e + di);
          cap.hnorm.assign(e + di, e + 2 * di);
          cap.z.assign(e + 3 * di, e + 4 * di);
          cap.u.assign(e + 4 * di, e + 5 * di);
          cap.B.assign(e + 5 * di + R, e + 5 * di + R + N);
          cap.C.assign(e + 5 * di + R + N, e + 5 * di + R + 2 * N);
          if (opts.probes->policy().records_h(int(l)))
            cap.h.assign(e + 5 * di + xr + dm, e + per);
          record_probes(*opts.probes, int(l), pos, 1, cap);
        }
      }
    }
    st.advance(1);
  }
}

void CudaBackend::generate(CudaState& st, int32_t feed, int n, const SamplingParams& sp,
                           const std::function<bool(const GpuToken&)>& on_token) {
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
  a.window = sp.repetition_penalty != 1.f ? std::max(1, sp.repetition_window) : 0;
  d_ring_.reserve(sizeof(int32_t) * std::max(1, a.window));
  a.ring = static_cast<int32_t*>(d_ring_.get());
  a.counters = static_cast<int64_t*>(d_counters_.get());
  a.seed = sp.seed;
  a.n_alt = std::min(sp.n_alternatives, kMaxCandidates);
  a.work = d_work_.f32();
  a.out = static_cast<int32_t*>(d_ids_.get());  // the sampled token is the next step's input
  a.out_prob = d_prob_.f32();
  const bool same = sample_graph_.exec && sample_graph_.key == &st &&
                    std::memcmp(&sample_graph_.args, &a, sizeof(a)) == 0;
  if (!same) capture(sample_graph_, st, &a);
  // The feed token starts the ring (so the penalty sees it) and the counters start at zero.
  const int64_t counters[2] = {a.window > 0 ? 1 : 0, 0};
  MS_CUDA_CHECK(cudaMemcpyAsync(d_counters_.get(), counters, sizeof(counters), cudaMemcpyHostToDevice, stream_));
  MS_CUDA_CHECK(cudaMemcpyAsync(d_ring_.get(), &feed, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  MS_CUDA_CHECK(cudaMemcpyAsync(d_ids_.get(), &feed, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  const size_t ids = sizeof(int32_t) * (1 + kMaxCandidates);
  GpuToken tok;
  for (int i = 0; i < n; ++i) {
    MS_CUDA_CHECK(cudaGraphLaunch(sample_graph_.exec, stream_));
    MS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the one wait per token: its tiny copy
    st.advance(1);
    const int32_t* out = h_out_.as<int32_t>();
    const float* prob = reinterpret_cast<const float*>(h_out_.as<char>() + ids);
    tok.id = out[0];
    tok.alternatives.resize(size_t(a.n_alt));
    for (int j = 0; j < a.n_alt; ++j) tok.alternatives[size_t(j)] = Alternative{out[1 + j], prob[j]};
    if (!on_token(tok)) break;
  }
}

void generate_on_gpu(Backend& backend, BackendState& state, int32_t feed, int n,
                     const SamplingParams& sp, const std::function<bool(const GpuToken&)>& on_token) {
  auto* b = dynamic_cast<CudaBackend*>(&backend);
  auto* s = dynamic_cast<CudaState*>(&state);
  if (!b || !s) throw Error("generate_on_gpu needs the CUDA backend and one of its states");
  b->generate(*s, feed, n, sp, on_token);
}

}  // namespace mambascope::cuda

namespace mambascope {

std::unique_ptr<Backend> make_cuda_backend(const Checkpoint& ckpt, int device) {
  return std::make_unique<cuda::CudaBackend>(ckpt, device);
}

}  // namespace mambascope
