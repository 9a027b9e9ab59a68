// The CUDA backend: the whole model on one GPU. Prefill (the scan, convolution and lti-fft
// modes) runs each layer as cuBLAS projections around the SSM of the mode (cuda_modes.cpp);
// decode (recurrent mode) runs the fused single-token step, replayed from a CUDA graph when
// nothing but logits or a sampled token is wanted. Δ interventions, per-layer SSM outputs and
// residuals are recorded on the GPU and copied back once per forward call; prefill's probes come
// back through a ring of pinned staging slots on a copy stream (ProbeRing), so that neither the
// layers' compute nor the host waits on a probe copy until the call's end.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/cuda_backend_impl.hpp"
#include "cuda/ops.hpp"
#include "cuda/probe_gate.hpp"
#include "cuda/scan.hpp"

namespace mambascope::cuda {

CudaBackend::CudaBackend(const Checkpoint& ckpt, int device) : cfg_(ckpt.config()), device_(device) {
  std::string why;
  if (!cuda_backend_available(&why)) throw Error(why);
  int n = 0;
  MS_CUDA_CHECK(cudaGetDeviceCount(&n));
  if (device < 0 || device >= n)
    throw Error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)");
  MS_CUDA_CHECK(cudaSetDevice(device));
  w_ = upload_weights(ckpt);
  MS_CUDA_CHECK(cudaStreamCreate(&stream_));
  MS_CUDA_CHECK(cublasCreate(&blas_));
  shape_ = DecodeShape{w_.dtype, int(cfg_.d_model), int(cfg_.d_inner), int(cfg_.d_state),
                       int(cfg_.d_conv), int(cfg_.dt_rank), float(cfg_.norm_eps)};
  const size_t di = size_t(cfg_.d_inner);
  d_ids_.reserve(sizeof(int32_t) * (1 + kMaxCandidates));
  d_resid1_.reserve(sizeof(float) * cfg_.d_model);
  d_x_.reserve(sizeof(float) * di);
  d_z_.reserve(sizeof(float) * di);
  d_y_.reserve(sizeof(float) * di);
  d_xdbl_.reserve(sizeof(float) * size_t(cfg_.x_proj_rows()));
  d_logits1_.reserve(sizeof(float) * cfg_.vocab_size);
  d_work_.reserve(sizeof(float) * cfg_.vocab_size);
  d_prob_.reserve(sizeof(float) * kMaxCandidates);
  d_counters_.reserve(2 * sizeof(int64_t));
  h_logits_.reserve(sizeof(float) * cfg_.vocab_size);
  h_out_.reserve(sizeof(int32_t) * (1 + kMaxCandidates) + sizeof(float) * kMaxCandidates);
  if (cfg_.lti) {
    // An LTI model is always frozen: Δ = softplus(dt_lti), B_lti, C_lti (cpu_mixer.cpp's values).
    lti_values_.resize(cfg_);
    FrozenSsm& f = lti_values_.host();
    const int64_t dn = cfg_.d_inner * cfg_.d_state;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      const DecodeLayer& w = w_.layers[size_t(l)];
      float* delta = f.delta.data() + l * cfg_.d_inner;
      MS_CUDA_CHECK(cudaMemcpy(delta, w.dt_lti, sizeof(float) * di, cudaMemcpyDeviceToHost));
      for (size_t c = 0; c < di; ++c) delta[c] = delta[c] > 20.0f ? delta[c] : std::log1p(std::exp(delta[c]));
      MS_CUDA_CHECK(cudaMemcpy(f.B.data() + l * dn, w.B_lti, sizeof(float) * dn, cudaMemcpyDeviceToHost));
      MS_CUDA_CHECK(cudaMemcpy(f.C.data() + l * dn, w.C_lti, sizeof(float) * dn, cudaMemcpyDeviceToHost));
    }
    lti_values_.upload(stream_);
  }
}

void CudaBackend::prefill(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                          std::vector<float>& logits) {
  const int64_t L = int64_t(tokens.size()), dm = cfg_.d_model, di = cfg_.d_inner,
                N = cfg_.d_state, R = cfg_.dt_rank, xr = cfg_.x_proj_rows(), V = cfg_.vocab_size;
  const DType dt = w_.dtype;
  const size_t es = dtype_size(dt);
  a_ids_.reserve(sizeof(int32_t) * L);
  a_resid_.reserve(sizeof(float) * L * dm);
  a_hidden_.reserve(es * L * dm);
  a_xz_.reserve(es * L * 2 * di);
  a_x_.reserve(es * L * di);
  a_xdbl_.reserve(es * L * xr);
  a_dt_.reserve(es * L * di);
  a_y_.reserve(es * L * di);
  MS_CUDA_CHECK(cudaMemcpyAsync(a_ids_.get(), tokens.data(), sizeof(int32_t) * L,
                                cudaMemcpyHostToDevice, stream_));
  float* resid = a_resid_.f32();
  // hidden_states = self.embeddings(input_ids)                -> resid {L, d_model} fp32
  embedding(static_cast<const int32_t*>(a_ids_.get()), w_.embedding, dt, L, dm, resid, stream_);
  char* xz = static_cast<char*>(a_xz_.get());
  char* xdbl = static_cast<char*>(a_xdbl_.get());
  // Probes: the tokens the recorder keeps (its last max_tokens; all where max_tokens <= 0, as
  // ProbeRecorder bounds it) of each recorded layer, one staging slot per layer.
  ProbeRecorder* rec = opts.probes && opts.probes->enabled() ? opts.probes : nullptr;
  const int64_t max_t = rec ? rec->policy().max_tokens : 0;
  const ProbeSlotLayout lay{rec ? (max_t > 0 ? std::min(L, max_t) : L) : 0, di, N};
  if (rec) {
    int recorded = 0;
    bool any_h = false;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      recorded += rec->policy().records_layer(int(l));
      any_h |= rec->policy().records_h(int(l));
    }
    if (recorded == 0) rec = nullptr;
    else probe_ring_.begin(lay.floats(any_h), recorded);
    // The CPU records all L tokens and the recorder's bound keeps the last max_tokens of them:
    // none of what it held before. Skipping the call's first tokens must not leave a gap between
    // those and the new ones (the recorder indexes positions contiguously).
    if (rec && lay.T < L) rec->clear();
  }
  // Where the call wants the last token's logits and nothing else per token, the last layer's
  // z (the gate) and out_proj matter for the last token only: its state needs x for every token,
  // its output only the last row. MAMBASCOPE_PREFILL_TRIM=0 runs them for every token.
  static const bool trim_allowed = [] {
    const char* v = std::getenv("MAMBASCOPE_PREFILL_TRIM");
    return !(v && std::string(v) == "0");
  }();
  const bool last_only = trim_allowed && L > 1 && !opts.all_logits && !opts.residuals && !opts.ssm_outputs;
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const DecodeLayer& w = w_.layers[size_t(l)];
    const DecodeLayer sv = layer_view(st, l);
    const bool trim = last_only && l == cfg_.n_layer - 1 && !(rec && rec->policy().records_layer(int(l)));
    // hidden_states = self.norm(residual)                     -> hidden {L, d_model}
    add_rms_norm(resid, nullptr, w.norm_w, shape_.eps, L, dm, a_hidden_.get(), dt, dm, stream_);
    // xz = in_proj(hidden)                                    -> xz {L, 2 d_inner}
    if (trim) {  // x for every token, z for the last (the other rows' gates are never read)
      linear(blas_, a_hidden_.get(), dm, w.in_proj, dt, L, dm, di, xz, dt, 2 * di, 0.f, stream_);
      linear(blas_, static_cast<const char*>(a_hidden_.get()) + (L - 1) * dm * es, dm,
             static_cast<const char*>(w.in_proj) + di * dm * es, dt, 1, dm, di, xz + ((L - 1) * 2 * di + di) * es, dt,
             2 * di, 0.f, stream_);
    } else {
      linear(blas_, a_hidden_.get(), dm, w.in_proj, dt, L, dm, 2 * di, xz, dt, 2 * di, 0.f, stream_);
    }
    add_bias(xz, dt, 2 * di, w.in_bias, L, 2 * di, stream_);
    // x = silu(conv1d(x))                                     -> x {L, d_inner}
    conv1d_causal_silu(xz, 2 * di, sv.conv_state, w.conv_w, w.conv_b, L, di, cfg_.d_conv,
                       a_x_.get(), dt, stream_);
    ScanParams p;
    p.dtype = dt;
    p.L = L;
    p.d = int(di);
    p.N = int(N);
    p.u = a_x_.get(); p.ldu = di;
    p.z = xz + di * es; p.ldz = 2 * di;
    if (!cfg_.lti) {  // an LTI layer's Δ, B, C come from frozen_ (run_ssm)
      // dt, B, C = x_proj(x).split(...); dt = dt_proj(dt)      -> xdbl {L, R + 2N}, dt {L, d_inner}
      linear(blas_, a_x_.get(), di, w.x_proj, dt, L, di, xr, xdbl, dt, xr, 0.f, stream_);
      linear(blas_, xdbl, xr, w.dt_proj, dt, L, R, di, a_dt_.get(), dt, di, 0.f, stream_);
      p.dt = a_dt_.get(); p.lddt = di;
      p.B = xdbl + R * es; p.ldb = xr;
      p.C = xdbl + (R + N) * es; p.ldc = xr;
      p.dt_bias = w.dt_bias;
    }
    p.A = w.A;
    p.D = w.D;
    p.h = sv.ssm_state;
    p.y = a_y_.get(); p.ldy = di;
    for (const DeltaOverride& o : opts.delta_overrides) {
      if (o.layer != -1 && o.layer != l) continue;
      const int64_t t = o.position - st.position();
      if (t < 0 || t >= L) continue;
      if (p.n_overrides == ScanParams::kMaxOverrides)
        throw Error("at most 8 Δ interventions per layer and call run on the GPU");
      p.override_t[p.n_overrides] = t;
      p.override_value[p.n_overrides++] = o.value;
    }
    ProbeRing::Slot* slot = nullptr;
    if (rec && rec->policy().records_layer(int(l))) {
      // A full ring converts its oldest slot first (the only wait inside the call).
      if (probe_ring_.full()) drain_probes(*rec, st.position(), L, lay, 1);
      const bool with_h = rec->policy().records_h(int(l));
      slot = &probe_ring_.push(int(l), with_h, lay.floats(with_h));
      p_delta_.reserve(sizeof(float) * L * di);
      p_hnorm_.reserve(sizeof(float) * L * di);
      p.delta_out = p_delta_.f32();
      p.hnorm_out = p_hnorm_.f32();
      if (slot->with_h) {  // the scan writes the kept tokens' h straight into the slot
        p.h_out = slot->dev + lay.h();
        p.h_out_from = L - lay.T;
      }
    }
    if (opts.ssm_outputs) {
      p_ypre_.reserve(sizeof(float) * L * di);
      p.ypre_out = p_ypre_.f32();
    }
    // y = ssm(x, Δ, A, B, C, D) * silu(z), in the call's mode -> y {L, d_inner}
    run_ssm(l, p, opts.mode);
    // residual = residual + out_proj(y)  (trim: the last token's row only)
    const int64_t r0 = trim ? L - 1 : 0;
    linear(blas_, static_cast<const char*>(a_y_.get()) + r0 * di * es, di, w.out_proj, dt, L - r0, di, dm,
           resid + r0 * dm, DType::F32, dm, 1.f, stream_);
    add_bias(resid + r0 * dm, DType::F32, dm, w.out_bias, L - r0, dm, stream_);

    if (opts.ssm_outputs)
      MS_CUDA_CHECK(cudaMemcpyAsync(opts.ssm_outputs->data() + l * L * di, p_ypre_.get(),
                                    sizeof(float) * L * di, cudaMemcpyDeviceToHost, stream_));
    if (opts.residuals)
      MS_CUDA_CHECK(cudaMemcpyAsync(opts.residuals->data() + l * L * dm, resid,
                                    sizeof(float) * L * dm, cudaMemcpyDeviceToHost, stream_));
    if (slot) {
      // Pack the kept tokens' tensors (fp32) into the slot, then hand it to the copy stream.
      const int64_t first = L - lay.T;
      auto pack = [&](size_t at, const void* src, DType sdt, int64_t ld, int64_t cols) {
        to_f32(static_cast<const char*>(src) + first * ld * dtype_size(sdt), sdt, ld, lay.T, cols,
               slot->dev + at, stream_);
      };
      pack(lay.delta(), p_delta_.get(), DType::F32, di, di);
      pack(lay.hnorm(), p_hnorm_.get(), DType::F32, di, di);
      pack(lay.z(), xz + di * es, dt, 2 * di, di);
      gate_in_place(slot->dev + lay.z(), 1, 0, 0, lay.T * di, stream_);  // the probes show SiLU(z)
      pack(lay.u(), a_x_.get(), dt, di, di);
      if (!frozen_) {
        pack(lay.B(), xdbl + R * es, dt, xr, N);
        pack(lay.C(), xdbl + (R + N) * es, dt, xr, N);
      }
      probe_ring_.submit(*slot, stream_);
      drain_probes(*rec, st.position(), L, lay, 0);  // whatever has landed meanwhile
    }
  }
  // logits = lm_head(norm_f(residual)), for the last token or all of them
  const int64_t n_out = opts.all_logits ? L : 1;
  a_logits_.reserve(sizeof(float) * n_out * V);
  add_rms_norm(resid + (L - n_out) * dm, nullptr, w_.norm_f, shape_.eps, n_out, dm,
               a_hidden_.get(), dt, dm, stream_);
  linear(blas_, a_hidden_.get(), dm, w_.lm_head, dt, n_out, dm, V, a_logits_.get(), DType::F32, V,
         0.f, stream_);
  logits.resize(size_t(n_out * V));
  MS_CUDA_CHECK(cudaMemcpyAsync(logits.data(), a_logits_.get(), sizeof(float) * logits.size(),
                                cudaMemcpyDeviceToHost, stream_));
  MS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (rec) drain_probes(*rec, st.position(), L, lay, SIZE_MAX);
  st.advance(L);
}

void CudaBackend::drain_probes(ProbeRecorder& rec, int64_t position, int64_t L, const ProbeSlotLayout& lay,
                               size_t wait_for) {
  for (size_t i = 0;; ++i) {
    const ProbeRing::Slot* s = probe_ring_.oldest(i < wait_for);
    if (!s) return;
    const float* h = s->host;
    const LayerCaptureView v{h + lay.delta(), h + lay.hnorm(), nullptr, h + lay.u(),
                             frozen_ ? nullptr : h + lay.B(), frozen_ ? nullptr : h + lay.C(),
                             s->with_h ? h + lay.h() : nullptr, L - lay.T,
                             h + lay.z()};  // the gate, computed on the device
    record_probes(rec, s->layer, position, L, v);
    probe_ring_.pop();
  }
}

ProbeRing::~ProbeRing() {
  if (copy_) cudaStreamSynchronize(copy_);
  for (Slot& s : slots_) {
    if (s.packed) cudaEventDestroy(s.packed);
    if (s.landed) cudaEventDestroy(s.landed);
  }
  if (copy_) cudaStreamDestroy(copy_);
}

void ProbeRing::begin(size_t floats, int layers) {
  if (!copy_) MS_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  MS_CUDA_CHECK(cudaStreamSynchronize(copy_));  // an interrupted call's copies; their frames are dropped
  head_ = count_ = 0;
  floats_ = floats;
  const size_t budget = budget_bytes / sizeof(float) / std::max<size_t>(floats, 1);
  n_ = std::max<size_t>(1, std::min<size_t>(size_t(layers), std::max<size_t>(2, budget)));
  while (slots_.size() < n_) {
    Slot s;
    MS_CUDA_CHECK(cudaEventCreateWithFlags(&s.packed, cudaEventDisableTiming));
    MS_CUDA_CHECK(cudaEventCreateWithFlags(&s.landed, cudaEventDisableTiming));
    slots_.push_back(s);
  }
  dev_.reserve(sizeof(float) * n_ * floats);
  host_.reserve(sizeof(float) * n_ * floats);
  for (size_t i = 0; i < n_; ++i) {
    slots_[i].dev = dev_.f32() + i * floats;
    slots_[i].host = host_.as<float>() + i * floats;
  }
}

ProbeRing::Slot& ProbeRing::push(int layer, bool with_h, size_t floats) {
  Slot& s = slots_[(head_ + count_++) % n_];
  s.layer = layer;
  s.with_h = with_h;
  s.floats = std::min(floats, floats_);
  return s;
}

void ProbeRing::submit(Slot& s, cudaStream_t compute) {
  MS_CUDA_CHECK(cudaEventRecord(s.packed, compute));
  MS_CUDA_CHECK(cudaStreamWaitEvent(copy_, s.packed, 0));
  MS_CUDA_CHECK(cudaMemcpyAsync(s.host, s.dev, sizeof(float) * s.floats, cudaMemcpyDeviceToHost, copy_));
  MS_CUDA_CHECK(cudaEventRecord(s.landed, copy_));
}

const ProbeRing::Slot* ProbeRing::oldest(bool wait) {
  if (count_ == 0) return nullptr;
  const Slot& s = slots_[head_];
  if (wait) {
    MS_CUDA_CHECK(cudaEventSynchronize(s.landed));
  } else {
    const cudaError_t e = cudaEventQuery(s.landed);
    if (e == cudaErrorNotReady) return nullptr;
    MS_CUDA_CHECK(e);
  }
  return &s;
}

void ProbeRing::pop() {
  head_ = (head_ + 1) % n_;
  --count_;
}

// Fills the recorder from one layer's captured tensors, like the CPU backend does.
CudaBackend::FrozenMeans CudaBackend::frozen_means(int layer) const {
  FrozenMeans m;
  if (!frozen_) return m;
  const int64_t di = cfg_.d_inner, N = cfg_.d_state;
  // A frozen layer (an LTI model, or Δ, B, C frozen for this call) has per-channel B, C: the
  // probe shows their means; the write strength needs Σ_n B[c,n]²; Δ is the frozen Δ.
  m.fz = &frozen_->host();
  m.B.assign(size_t(N), 0.f);
  m.C.assign(size_t(N), 0.f);
  m.Bsq.assign(size_t(di), 0.f);
  const float* Bl = m.fz->B.data() + layer * di * N;
  const float* Cl = m.fz->C.data() + layer * di * N;
  for (int64_t c = 0; c < di; ++c)
    for (int64_t n = 0; n < N; ++n) {
      m.B[n] += Bl[c * N + n] / float(di);
      m.C[n] += Cl[c * N + n] / float(di);
      m.Bsq[c] += Bl[c * N + n] * Bl[c * N + n];
    }
  return m;
}

void CudaBackend::fill_probe(LayerProbe& p, int layer, int64_t i, const LayerCaptureView& cap,
                             const FrozenMeans& fm) const {
  const int64_t di = cfg_.d_inner, N = cfg_.d_state;
  const FrozenSsm* fz = fm.fz;
  if (fz) p.delta.assign(fz->delta.begin() + layer * di, fz->delta.begin() + (layer + 1) * di);
  else p.delta.assign(cap.delta + i * di, cap.delta + (i + 1) * di);
  p.h_norm.assign(cap.hnorm + i * di, cap.hnorm + (i + 1) * di);
  if (cap.gate) {
    p.gate.assign(cap.gate + i * di, cap.gate + (i + 1) * di);
  } else {
    p.gate.resize(size_t(di));
    for (int64_t c = 0; c < di; ++c) p.gate[c] = silu_h(cap.z[i * di + c]);
  }
  if (fz) {
    p.B = fm.B;
    p.C = fm.C;
  } else {
    p.B.assign(cap.B + i * N, cap.B + (i + 1) * N);
    p.C.assign(cap.C + i * N, cap.C + (i + 1) * N);
  }
  double b2 = 0, c2 = 0, w2 = 0;
  for (int64_t n = 0; n < N; ++n) b2 += double(p.B[n]) * p.B[n], c2 += double(p.C[n]) * p.C[n];
  for (int64_t c = 0; c < di; ++c) {
    const double du = double(p.delta[c]) * cap.u[i * di + c];
    w2 += du * du * (fz ? double(fm.Bsq[c]) : b2);
  }
  p.write_strength = float(std::sqrt(w2));
  p.read_norm = float(std::sqrt(c2));
  if (cap.h) p.h.assign(cap.h + i * di * N, cap.h + (i + 1) * di * N);
  else p.h.clear();
}

void CudaBackend::record_probes(ProbeRecorder& rec, int layer, int64_t position, int64_t L,
                                const LayerCaptureView& cap) const {
  const FrozenMeans fm = frozen_means(layer);
  for (int64_t i = 0; i < L - cap.first; ++i)
    fill_probe(rec.slot(position + cap.first + i, layer), layer, i, cap, fm);
}

void set_probe_staging_bytes(Backend& backend, size_t bytes) {
  auto* b = dynamic_cast<CudaBackend*>(&backend);
  if (!b) throw Error("set_probe_staging_bytes needs the CUDA backend");
  b->set_probe_staging_bytes(bytes);
}

}  // namespace mambascope::cuda
