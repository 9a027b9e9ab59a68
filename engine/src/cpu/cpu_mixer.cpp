// One Mamba-1 mixer on the CPU (transformers' MambaMixer.slow_forward, token-major):
//   xz = in_proj(x); x, z = xz.chunk(2); x = silu(conv1d(x)); dt, B, C = x_proj(x).split(...)
//   Δ = softplus(dt_proj(dt)); y = selective_scan(x, Δ, A = -exp(A_log), B, C, D); y *= silu(z)
//   out = out_proj(y)
// The SSM step runs in the requested mode; a frozen (or LTI-model) Δ/B/C takes the LTI path.
#include "cpu/cpu_mixer.hpp"

#include <cmath>
#include <string>

#include "cpu/cpu_ops.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cpu {
namespace {

inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// Δ {d}, B, C {d, N} of a time-invariant layer.
struct FrozenLayer {
  std::vector<float> delta, B, C;
};

FrozenLayer freeze_layer(const MixerCall& call, const MixerScratch& s, Freeze::Kind kind) {
  const ModelConfig& cfg = *call.cfg;
  const int64_t d = cfg.d_inner, N = cfg.d_state, R = cfg.dt_rank, L = call.L;
  const int64_t ld = R + 2 * N;
  FrozenLayer f;
  f.delta.assign(size_t(d), 0.0f);
  f.B.assign(size_t(d * N), 0.0f);
  f.C.assign(size_t(d * N), 0.0f);
  if (cfg.lti) {
    for (int64_t c = 0; c < d; ++c) f.delta[c] = softplus(call.w->dt_lti[c]);
    std::copy(call.w->B_lti, call.w->B_lti + d * N, f.B.begin());
    std::copy(call.w->C_lti, call.w->C_lti + d * N, f.C.begin());
    return f;
  }
  if (kind == Freeze::Kind::Given) {
    const FrozenSsm* v = call.opts->freeze.values.get();
    if (!v || v->d_inner != d || v->d_state != N || v->n_layer != cfg.n_layer ||
        v->delta.size() != size_t(cfg.n_layer * d) || v->B.size() != size_t(cfg.n_layer * d * N) ||
        v->C.size() != size_t(cfg.n_layer * d * N))
      throw Error("frozen Δ/B/C values do not match this model's shape");
    const int64_t l = call.layer;
    std::copy(v->delta.begin() + l * d, v->delta.begin() + (l + 1) * d, f.delta.begin());
    std::copy(v->B.begin() + l * d * N, v->B.begin() + (l + 1) * d * N, f.B.begin());
    std::copy(v->C.begin() + l * d * N, v->C.begin() + (l + 1) * d * N, f.C.begin());
    return f;
  }
  int64_t t0 = 0, t1 = L;  // average over [t0, t1)
  if (kind == Freeze::Kind::AtToken) {
    if (call.opts->freeze.token < 0 || call.opts->freeze.token >= L)
      throw Error("freeze token " + std::to_string(call.opts->freeze.token) + " is outside the " +
                  std::to_string(L) + " tokens of this run");
    t0 = call.opts->freeze.token;
    t1 = t0 + 1;
  }
  const float inv = 1.0f / float(t1 - t0);
  std::vector<float> Bm(static_cast<size_t>(N), 0.0f), Cm(size_t(N), 0.0f);
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t c = 0; c < d; ++c) f.delta[c] += s.delta[t * d + c] * inv;
    for (int64_t n = 0; n < N; ++n) {
      Bm[n] += s.dbc[t * ld + R + n] * inv;
      Cm[n] += s.dbc[t * ld + R + N + n] * inv;
    }
  }
  for (int64_t c = 0; c < d; ++c)
    for (int64_t n = 0; n < N; ++n) {
      f.B[c * N + n] = Bm[n];
      f.C[c * N + n] = Cm[n];
    }
  return f;
}

void apply_delta_overrides(const MixerCall& call, MixerScratch& s) {
  const int64_t d = call.cfg->d_inner;
  for (const DeltaOverride& o : call.opts->delta_overrides) {
    if (o.layer != -1 && o.layer != call.layer) continue;
    const int64_t t = o.position - call.position;
    if (t < 0 || t >= call.L) continue;
    for (int64_t c = 0; c < d; ++c) s.delta[t * d + c] = o.value;
  }
}

// Re-runs the recurrence from h0 to record ‖h_t‖ (and h_t) per token with the other probe
// values. Kept apart from the modes so that every mode records the same numbers.
void record_probes(const MixerCall& call, const MixerScratch& s, const FrozenLayer* frozen,
                   std::vector<float> h /*{d, N}: h0*/) {
  ProbeRecorder& rec = *call.opts->probes;
  const ModelConfig& cfg = *call.cfg;
  const int64_t d = cfg.d_inner, N = cfg.d_state, R = cfg.dt_rank, ld = R + 2 * N;
  const bool want_h = rec.policy().records_h(call.layer);
  std::vector<float> Bt(static_cast<size_t>(d * N)), Ct(static_cast<size_t>(d * N));  // per-channel B, C at token t
  for (int64_t t = 0; t < call.L; ++t) {
    LayerProbe& p = rec.slot(call.position + t, call.layer);
    p.delta.resize(size_t(d));
    p.gate.resize(size_t(d));
    p.h_norm.resize(size_t(d));
    p.B.assign(size_t(N), 0.0f);
    p.C.assign(size_t(N), 0.0f);
    if (frozen) {
      std::copy(frozen->delta.begin(), frozen->delta.end(), p.delta.begin());
      Bt = frozen->B;
      Ct = frozen->C;
      for (int64_t c = 0; c < d; ++c)
        for (int64_t n = 0; n < N; ++n) {
          p.B[n] += Bt[c * N + n] / float(d);
          p.C[n] += Ct[c * N + n] / float(d);
        }
    } else {
      std::copy(s.delta.begin() + t * d, s.delta.begin() + (t + 1) * d, p.delta.begin());
      const float* B = &s.dbc[t * ld + R];
      const float* C = &s.dbc[t * ld + R + N];
      std::copy(B, B + N, p.B.begin());
      std::copy(C, C + N, p.C.begin());
      for (int64_t c = 0; c < d; ++c)
        for (int64_t n = 0; n < N; ++n) {
          Bt[c * N + n] = B[n];
          Ct[c * N + n] = C[n];
        }
    }
    double write2 = 0;
    for (int64_t c = 0; c < d; ++c) {
      const float dt = p.delta[c], u = s.xc[t * d + c];
      p.gate[c] = silu(s.xz[t * 2 * d + d + c]);
      double hn = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float w = dt * Bt[c * N + n] * u;
        float& hv = h[c * N + n];
        hv = std::exp(dt * s.A[c * N + n]) * hv + w;
        hn += double(hv) * hv;
        write2 += double(w) * w;
      }
      p.h_norm[c] = float(std::sqrt(hn));
    }
    p.write_strength = float(std::sqrt(write2));
    double c2 = 0;
    for (int64_t n = 0; n < N; ++n) c2 += double(p.C[n]) * p.C[n];
    p.read_norm = float(std::sqrt(c2));
    if (want_h) p.h = h;
  }
}

}  // namespace

void run_mixer(const MixerCall& call, MixerScratch& s) {
  const ModelConfig& cfg = *call.cfg;
  const LayerWeightsF32& w = *call.w;
  const ForwardOptions& opts = *call.opts;
  const int64_t L = call.L, d = cfg.d_inner, N = cfg.d_state, R = cfg.dt_rank;
  const int64_t ld = R + 2 * N;

  s.xz.resize(size_t(L * 2 * d));
  s.xc.resize(size_t(L * d));
  s.delta.resize(size_t(L * d));
  s.y.resize(size_t(L * d));
  s.A.resize(size_t(d * N));
  // projected_states = self.in_proj(input_states)  -> xz {L, 2*d_inner}
  linear(call.x, w.in_proj, w.in_proj_bias, L, cfg.d_model, 2 * d, s.xz.data());
  // hidden_states = act(conv1d(x))                 -> xc {L, d_inner}
  conv1d_causal_silu(s.xz.data(), 2 * d, call.conv_state, w.conv_w, w.conv_b, L, d, cfg.d_conv,
                     s.xc.data());
  // A = -torch.exp(self.A_log.float())
  for (int64_t i = 0; i < d * N; ++i) s.A[i] = -std::exp(w.A_log[i]);

  if (!cfg.lti) {
    s.dbc.resize(size_t(L * ld));
    // ssm_parameters = self.x_proj(hidden_states)   -> dbc {L, dt_rank + 2N}
    linear(s.xc.data(), w.x_proj, nullptr, L, d, ld, s.dbc.data());
    // discrete_time_step = softplus(self.dt_proj(time_step)) -> Δ {L, d_inner}
    linear(s.dbc.data(), w.dt_proj, nullptr, L, R, d, s.delta.data(), ld, d);
    softplus_bias(s.delta.data(), w.dt_bias, L, d, s.delta.data());
  }

  Freeze::Kind kind = opts.freeze.kind;
  if (opts.mode == ScanMode::LtiFft && kind == Freeze::Kind::None) kind = Freeze::Kind::MeanOverInput;
  const bool frozen = cfg.lti || kind != Freeze::Kind::None;
  if (!opts.delta_overrides.empty()) {
    if (frozen)
      throw Error("Δ interventions need a selective layer; this run freezes Δ (LTI), so there is no "
                  "per-token Δ to override");
    apply_delta_overrides(call, s);
  }

  const bool probing = opts.probes && opts.probes->policy().records_layer(call.layer);
  std::vector<float> h0;
  if (probing) h0.assign(call.ssm_state, call.ssm_state + d * N);

  FrozenLayer f;
  if (frozen) {
    f = freeze_layer(call, s, kind);
    if (opts.frozen_out) {
      FrozenSsm& out = *opts.frozen_out;
      std::copy(f.delta.begin(), f.delta.end(), out.delta.begin() + call.layer * d);
      std::copy(f.B.begin(), f.B.end(), out.B.begin() + call.layer * d * N);
      std::copy(f.C.begin(), f.C.end(), out.C.begin() + call.layer * d * N);
    }
    LtiArgs a{s.xc.data(), f.delta.data(), s.A.data(), f.B.data(), f.C.data(), w.D, L, d, N,
              call.ssm_state, s.y.data()};
    switch (opts.mode) {
      case ScanMode::Recurrent:
      case ScanMode::Scan: ssm_lti_recurrent(a); break;
      case ScanMode::Convolution: ssm_lti_direct(a); break;
      case ScanMode::LtiFft: ssm_lti_fft(a); break;
    }
  } else {
    SsmArgs a{s.xc.data(), s.delta.data(), s.A.data(), s.dbc.data() + R, ld,
              s.dbc.data() + R + N, ld, w.D, L, d, N, call.ssm_state, s.y.data()};
    switch (opts.mode) {
      case ScanMode::Recurrent: ssm_scan_recurrent(a); break;
      case ScanMode::Scan: ssm_scan_chunked(a); break;
      case ScanMode::Convolution: ssm_conv_selective(a); break;
      case ScanMode::LtiFft: break;  // unreachable: LtiFft always freezes
    }
  }
  if (probing) record_probes(call, s, frozen ? &f : nullptr, std::move(h0));
  if (opts.ssm_outputs)
    std::copy(s.y.begin(), s.y.end(), opts.ssm_outputs->begin() + call.layer * L * d);
  // scan_output = scan_output * act(gate); contextualized_states = self.out_proj(scan_output)
  gate_silu(s.y.data(), s.xz.data() + d, 2 * d, L, d);
  linear(s.y.data(), w.out_proj, w.out_proj_bias, L, d, cfg.d_model, call.out);
}

}  // namespace mambascope::cpu
