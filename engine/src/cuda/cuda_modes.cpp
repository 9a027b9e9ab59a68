// The CUDA backend's forward(): the mode switch and freezing, as the CPU backend does them
// (cpu/cpu_mixer.cpp). Scan, convolution and lti-fft run layer by layer (prefill, with run_ssm
// choosing the SSM of the mode); recurrent runs token by token (cuda_decode_driver.cpp). A frozen
// call (an LTI model, a Freeze, or lti-fft's default freeze to the mean) runs every layer as the
// LTI system of its frozen Δ, B, C, in whichever mode was asked for.
#include <algorithm>
#include <string>

#include "cuda/cuda_backend_impl.hpp"
#include "cuda/freeze.hpp"
#include "cuda/lti_fft.hpp"
#include "cuda/ssm_convolution.hpp"

namespace mambascope::cuda {
namespace {

// Resets the backend's per-call freezing state however the call ends.
template <typename F>
struct OnExit {
  F f;
  ~OnExit() { f(); }
};
template <typename F> OnExit(F) -> OnExit<F>;

std::string mib(double bytes) { return std::to_string(int64_t(bytes / double(1 << 20))) + " MiB"; }

}  // namespace

void CudaBackend::forward(std::span<const int32_t> tokens, BackendState& state_base, const ForwardOptions& opts,
                          std::vector<float>& logits) {
  auto* state = dynamic_cast<CudaState*>(&state_base);
  if (!state) throw Error("the state was made by another backend");
  const int64_t L = int64_t(tokens.size()), V = cfg_.vocab_size, d = cfg_.d_inner, N = cfg_.d_state;
  if (L == 0) throw Error("forward() needs at least one token");
  for (int32_t id : tokens)
    if (id < 0 || id >= V)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(V - 1) + ")");
  Freeze::Kind kind = opts.freeze.kind;
  if (opts.mode == ScanMode::LtiFft && kind == Freeze::Kind::None) kind = Freeze::Kind::MeanOverInput;
  const bool frozen = cfg_.lti || kind != Freeze::Kind::None;
  // The CPU backend's checks and messages (cpu_mixer.cpp), made before anything runs.
  if (frozen && !opts.delta_overrides.empty())
    throw Error("Δ interventions need a selective layer; this run freezes Δ (LTI), so there is no "
                "per-token Δ to override");
  if (!cfg_.lti && kind == Freeze::Kind::AtToken && (opts.freeze.token < 0 || opts.freeze.token >= L))
    throw Error("freeze token " + std::to_string(opts.freeze.token) + " is outside the " +
                std::to_string(L) + " tokens of this run");
  if (!cfg_.lti && kind == Freeze::Kind::Given) {
    const FrozenSsm* v = opts.freeze.values.get();
    if (!v || v->d_inner != d || v->d_state != N || v->n_layer != cfg_.n_layer ||
        v->delta.size() != size_t(cfg_.n_layer * d) || v->B.size() != size_t(cfg_.n_layer * d * N) ||
        v->C.size() != size_t(cfg_.n_layer * d * N))
      throw Error("frozen Δ/B/C values do not match this model's shape");
  }
  MS_CUDA_CHECK(cudaSetDevice(device_));
  check_mode_memory(opts.mode, L, frozen);
  if (opts.ssm_outputs) opts.ssm_outputs->assign(size_t(cfg_.n_layer * L * d), 0.0f);
  if (opts.residuals) opts.residuals->assign(size_t(cfg_.n_layer * L * cfg_.d_model), 0.0f);
  if (opts.frozen_out) zero_frozen(*opts.frozen_out, cfg_);  // zero where nothing is frozen, as on the CPU

  OnExit reset{[this] {
    frozen_ = nullptr;
    freeze_compute_ = false;
    frozen_views_ = false;
  }};
  if (cfg_.lti) {
    frozen_ = &lti_values_;
  } else if (frozen) {
    call_values_.resize(cfg_);
    if (kind == Freeze::Kind::Given) {
      const FrozenSsm& v = *opts.freeze.values;
      call_values_.host().delta = v.delta;
      call_values_.host().B = v.B;
      call_values_.host().C = v.C;
      call_values_.upload(stream_);
    } else {
      freeze_compute_ = true;
      freeze_t0_ = kind == Freeze::Kind::AtToken ? opts.freeze.token : 0;
      freeze_t1_ = kind == Freeze::Kind::AtToken ? opts.freeze.token + 1 : L;
    }
    frozen_ = &call_values_;
  }

  if (opts.mode == ScanMode::Recurrent && frozen && !cfg_.lti) recurrent_frozen(tokens, *state, opts, logits);
  else if (opts.mode == ScanMode::Recurrent) recurrent(tokens, *state, opts, logits);
  else prefill(tokens, *state, opts, logits);
  if (opts.frozen_out && frozen_) *opts.frozen_out = frozen_->host();
}

void CudaBackend::run_ssm(int64_t l, ScanParams p, ScanMode mode) {
  const int64_t L = p.L, d = p.d, N = p.N;
  if (frozen_) {
    if (freeze_compute_) {  // this layer's Δ, B, C from its own activations (MeanOverInput, AtToken)
      FreezeMeanArgs f;
      f.dtype = p.dtype;
      f.t0 = freeze_t0_;
      f.t1 = freeze_t1_;
      f.d = p.d;
      f.N = p.N;
      f.dt = p.dt; f.lddt = p.lddt;
      f.dt_bias = p.dt_bias;
      f.B = p.B; f.ldb = p.ldb;
      f.C = p.C; f.ldc = p.ldc;
      f.delta = call_values_.delta(l);
      f.B_out = call_values_.B(l);
      f.C_out = call_values_.C(l);
      freeze_mean(f, freeze_work_, stream_);
      call_values_.download_layer(l, stream_);  // for frozen_out and the probes
    }
    // The scan's per-channel constants; Δ is already after softplus.
    p.dt = nullptr;
    p.B = p.C = nullptr;
    p.dt_bias = nullptr;
    p.dt_softplus = false;
    p.dt_const = frozen_->delta(l);
    p.B_const = frozen_->B(l);
    p.C_const = frozen_->C(l);
  }
  // Scan mode (and recurrent mode's layer-by-layer pass that finds frozen values).
  if (mode == ScanMode::Scan || mode == ScanMode::Recurrent) {
    selective_scan(p, stream_);
    return;
  }
  // Convolution and lti-fft. Their probes (Δ, ‖h‖, h) come from a scan beside them from a copy
  // of h0, as the CPU backend re-runs the recurrence for them, so that every mode records the
  // same numbers.
  const bool probes = p.delta_out || p.hnorm_out || p.h_out;
  if (probes) {
    m_h0_.reserve(sizeof(float) * d * N);
    MS_CUDA_CHECK(cudaMemcpyAsync(m_h0_.get(), p.h, sizeof(float) * d * N, cudaMemcpyDeviceToDevice, stream_));
  }
  SsmModeArgs a;
  a.dtype = p.dtype;
  a.L = L;
  a.d = p.d;
  a.N = p.N;
  a.u = p.u; a.ldu = p.ldu;
  a.z = p.z; a.ldz = p.ldz;
  a.dt = p.dt; a.lddt = p.lddt;
  a.dt_bias = p.dt_bias;
  a.B = p.B; a.ldb = p.ldb;
  a.C = p.C; a.ldc = p.ldc;
  a.overrides.n = p.n_overrides;
  std::copy(p.override_t, p.override_t + p.n_overrides, a.overrides.t);
  std::copy(p.override_value, p.override_value + p.n_overrides, a.overrides.value);
  if (frozen_) {
    a.delta_const = p.dt_const;
    a.B_const = p.B_const;
    a.C_const = p.C_const;
  }
  a.A = p.A;
  a.D = p.D;
  a.h = p.h;
  a.y = p.y; a.ldy = p.ldy;
  a.ypre = p.ypre_out;
  if (mode == ScanMode::Convolution) ssm_convolution(a, conv_ws_, lti_ws_, stream_);
  else ssm_lti_fft(a, lti_ws_, stream_);
  if (probes) {
    ScanParams q = p;
    q.h = m_h0_.f32();
    q.z = nullptr;
    q.ypre_out = nullptr;
    m_yscan_.reserve(dtype_size(p.dtype) * L * d);
    q.y = m_yscan_.get();
    q.ldy = d;
    selective_scan(q, stream_);
  }
}

void CudaBackend::recurrent_frozen(std::span<const int32_t> tokens, CudaState& st, const ForwardOptions& opts,
                                   std::vector<float>& logits) {
  if (freeze_compute_) {
    // A mean over the call's tokens (or one token's values) of each layer's activations, which
    // depend on the frozen layers below: found by a layer-by-layer pass over a copy of the state;
    // then the tokens run one at a time with those values.
    auto scratch = st.clone();
    ForwardOptions pass;
    pass.mode = ScanMode::Scan;
    std::vector<float> ignored;
    prefill(tokens, static_cast<CudaState&>(*scratch), pass, ignored);
    freeze_compute_ = false;
  }
  call_values_.make_dt_pre(stream_);
  // The captured decode step holds the layers' pointers: recapture with the frozen ones, and
  // again after this call.
  forget_step_graphs();
  OnExit recapture{[this] {
    frozen_views_ = false;
    forget_step_graphs();
  }};
  frozen_views_ = true;
  recurrent(tokens, st, opts, logits);
}

void CudaBackend::check_mode_memory(ScanMode mode, int64_t L, bool frozen) const {
  if (mode != ScanMode::Convolution && mode != ScanMode::LtiFft) return;
  const int d = int(cfg_.d_inner), N = int(cfg_.d_state);
  const size_t need = mode == ScanMode::Convolution ? convolution_workspace_bytes(L, d, N, frozen)
                                                    : lti_fft_workspace_bytes(L, d, N);
  const size_t held = conv_ws_.delta.bytes() + conv_ws_.S.bytes() + conv_ws_.chunks.bytes() +
                      conv_ws_.partial.bytes() + lti_ws_.K.bytes() + lti_ws_.U.bytes() +
                      lti_ws_.out.bytes() + lti_ws_.partial.bytes();
  size_t free_b = 0, total = 0;
  MS_CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
  if (need > free_b + held)
    throw Error(std::string("the ") + mode_name(mode) + " mode over " + std::to_string(L) +
                " tokens needs about " + mib(double(need)) + " of GPU workspace and only " +
                mib(double(free_b + held)) + " are available; run a shorter text, or the scan mode");
}

}  // namespace mambascope::cuda
