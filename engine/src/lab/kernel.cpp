// (c) The selective kernel ("hidden attention") of a layer, built from the Δ, B, C the probes
// recorded and A = -exp(A_log):  K_c[t,s] = Σ_n C_t[n] exp(Σ_{k=s+1..t} Δ_k[c] A[c,n]) Δ_s[c] B_s[n],
// beside the LTI kernel of the same layer with Δ, B, C frozen: k_c[j] = Σ_n C[c,n] e^{jΔ_c A[c,n]} Δ_c B[c,n].
// Views: one channel (signed), the mean of |K_c| over channels, or a rollout across layers
// (docs/lab.md). Each view is checked: row t of every selective kernel shown, applied to the
// layer's input u, must give back the y_t the backend computed, and the LTI kernel applied as a
// Toeplitz matrix must give back the FFT convolution (cpu::ssm_lti_fft) of the same u.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <sstream>

#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"
#include "lab/lab_internal.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"
#include "mambascope/probes.hpp"

namespace mambascope::lab {
namespace {

struct Energy {
  double residual2 = 0, total2 = 0;  // ‖K - Toeplitz(k̂)‖², ‖K‖² over the causal triangle
};

Energy toeplitz_residual(const float* K, int64_t L) {
  Energy e;
  for (int64_t j = 0; j < L; ++j) {  // diagonal j: K[t, t - j]
    double sum = 0, sum2 = 0;
    for (int64_t t = j; t < L; ++t) {
      const double v = K[t * L + t - j];
      sum += v;
      sum2 += v * v;
    }
    const double n = double(L - j);
    e.total2 += sum2;
    e.residual2 += std::max(0.0, sum2 - sum * sum / n);  // Σ (v - mean)²
  }
  return e;
}

// Builds the kernel matrix of one channel: selective from a trace or LTI (Toeplitz) from frozen values.
struct KernelSource {
  const LayerTrace* trace = nullptr;  // selective
  const FrozenSsm* frozen = nullptr;  // LTI
  int layer = 0;
  const float* A = nullptr;  // {d, N}
  int64_t L = 0;
  void fill(int64_t c, float* K, std::vector<float>& k) const {
    if (trace) {
      kernel_channel(*trace, c, K);
      return;
    }
    k.resize(size_t(L));
    lti_kernel_channel(*frozen, layer, A, c, L, k.data());
    for (int64_t t = 0; t < L; ++t)
      for (int64_t s = 0; s < L; ++s) K[t * L + s] = s <= t ? k[size_t(t - s)] : 0.0f;
  }
};

struct Aggregate {
  std::vector<float> mean_abs;  // {L, L}: mean over channels of |K_c|
  Energy energy;                // summed over channels
  double recon_err = 0, y_scale = 0;
};

// Every channel's kernel once: the mean of |K_c|, the Toeplitz residual energy and, with u and
// y {L, d}, the largest |Σ_s K_c[t,s] u_s + D_c u_t - y_t|. Progress covers [p0, p0 + span).
Aggregate aggregate_channels(const KernelSource& src, int64_t d, const float* u, const float* y,
                             const float* D, const Progress& progress, double p0, double span,
                             const std::string& what) {
  const int64_t L = src.L;
  Aggregate agg;
  agg.mean_abs.assign(size_t(L * L), 0.0f);
  std::mutex mutex;
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  cpu::parallel_for(d, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> K(size_t(L * L)), k;  // K {L, L}
    std::vector<double> sum(size_t(L * L), 0.0);
    Energy e;
    double err = 0, ys = 0;
    for (int64_t c = c0; c < c1 && !stop; ++c) {
      if (progress.cancelled()) {
        stop = true;
        break;
      }
      src.fill(c, K.data(), k);
      for (size_t i = 0; i < K.size(); ++i) sum[i] += std::fabs(K[i]);
      const Energy ec = toeplitz_residual(K.data(), L);
      e.residual2 += ec.residual2;
      e.total2 += ec.total2;
      if (u && y) {
        for (int64_t t = 0; t < L; ++t) {
          double acc = double(D[c]) * u[t * d + c];
          for (int64_t s = 0; s <= t; ++s) acc += double(K[t * L + s]) * u[s * d + c];
          err = std::max(err, std::fabs(acc - y[t * d + c]));
          ys = std::max(ys, double(std::fabs(y[t * d + c])));
        }
      }
      const int64_t n = ++done;
      if (c0 == 0) progress(p0 + span * double(n) / double(d), what);  // the calling thread reports
    }
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < sum.size(); ++i) agg.mean_abs[i] += float(sum[i] / double(d));
    agg.energy.residual2 += e.residual2;
    agg.energy.total2 += e.total2;
    agg.recon_err = std::max(agg.recon_err, err);
    agg.y_scale = std::max(agg.y_scale, ys);
  });
  progress.check();
  return agg;
}

double ratio(double err, double scale) { return scale > 0 ? err / scale : err; }

// One channel's kernel, its Toeplitz residual and its reconstruction error.
Aggregate single_channel(const KernelSource& src, int64_t c, int64_t d, const float* u, const float* y,
                         const float* D) {
  const int64_t L = src.L;
  Aggregate agg;
  std::vector<float> k;
  agg.mean_abs.resize(size_t(L * L));
  src.fill(c, agg.mean_abs.data(), k);  // signed K_c here
  agg.energy = toeplitz_residual(agg.mean_abs.data(), L);
  if (u && y)
    for (int64_t t = 0; t < L; ++t) {
      double acc = double(D[c]) * u[t * d + c];
      for (int64_t s = 0; s <= t; ++s) acc += double(agg.mean_abs[size_t(t * L + s)]) * u[s * d + c];
      agg.recon_err = std::max(agg.recon_err, std::fabs(acc - y[t * d + c]));
      agg.y_scale = std::max(agg.y_scale, double(std::fabs(y[t * d + c])));
    }
  return agg;
}

// R = M_l ... M_0 with M = ½(I + row-normalised |K|): how much of token s reaches token t's
// representation through the SSM path and the residual path of every layer (docs/lab.md).
void rollout_step(std::vector<float>& R, const std::vector<float>& mean_abs, int64_t L) {
  std::vector<float> M(size_t(L * L), 0.0f);  // M {L, L}, lower triangular
  for (int64_t t = 0; t < L; ++t) {
    double row = 0;
    for (int64_t s = 0; s <= t; ++s) row += mean_abs[size_t(t * L + s)];
    for (int64_t s = 0; s <= t; ++s)
      M[size_t(t * L + s)] = row > 0 ? float(0.5 * mean_abs[size_t(t * L + s)] / row) : 0.0f;
    M[size_t(t * L + t)] += row > 0 ? 0.5f : 1.0f;
  }
  if (R.empty()) {
    R = std::move(M);
    return;
  }
  std::vector<float> out(size_t(L * L), 0.0f);  // out = M · R; both lower triangular
  cpu::parallel_for(L, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t k = 0; k <= t; ++k) {
        const float m = M[size_t(t * L + k)];
        if (m == 0) continue;
        for (int64_t s = 0; s <= k; ++s) out[size_t(t * L + s)] += m * R[size_t(k * L + s)];
      }
  });
  R = std::move(out);
}

struct Recorded {
  std::vector<LayerTrace> traces;  // one per requested layer
  std::vector<float> residuals;    // {n_layer, L, d_model}
  std::vector<float> y;            // {n_layer, L, d_inner}
};

// One forward pass from the zero state: the requested layers' Δ, B, C (selective models; an LTI
// model records none) and, with_u_and_y, each layer's input u and output y.
Recorded record(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids,
                const std::vector<int>& layers, bool with_u_and_y) {
  const ModelConfig& cfg = ckpt.config();
  const int64_t L = int64_t(ids.size()), d = cfg.d_inner, N = cfg.d_state;
  ProbePolicy pol;
  pol.enabled = !cfg.lti;
  pol.layers = layers;
  pol.max_tokens = L;
  ProbeRecorder rec(pol);
  Recorded out;
  ForwardOptions o;
  o.mode = ScanMode::Scan;
  if (!cfg.lti) o.probes = &rec;
  if (with_u_and_y) {
    o.residuals = &out.residuals;
    o.ssm_outputs = &out.y;
  }
  auto state = backend.new_state();
  std::vector<float> logits;
  backend.forward(ids, *state, o, logits);
  for (int l : layers) {
    LayerTrace tr;
    tr.L = L;
    tr.d = d;
    tr.N = N;
    if (!cfg.lti) {
      tr.delta.resize(size_t(L * d));
      tr.B.resize(size_t(L * N));
      tr.C.resize(size_t(L * N));
      for (int64_t t = 0; t < L; ++t) {
        const TokenProbe* tp = rec.at(t);
        const LayerProbe* p = tp ? tp->layer(l) : nullptr;
        if (!p || int64_t(p->delta.size()) != d || int64_t(p->B.size()) != N || int64_t(p->C.size()) != N)
          throw Error("the backend did not record Δ, B, C for layer " + std::to_string(l) + " at token " +
                      std::to_string(t));
        std::copy(p->delta.begin(), p->delta.end(), tr.delta.begin() + t * d);
        std::copy(p->B.begin(), p->B.end(), tr.B.begin() + t * N);
        std::copy(p->C.begin(), p->C.end(), tr.C.begin() + t * N);
      }
    }
    tr.A = detail::layer_A(ckpt, l);
    tr.D = detail::tensor_f32(ckpt, detail::layer_tensor(l, "D"));
    if (with_u_and_y) {
      const std::vector<float> x = detail::layer_input(ckpt, ids, out.residuals, l);
      tr.u = detail::ssm_input(ckpt, l, x.data(), L);
      tr.y.assign(out.y.begin() + l * L * d, out.y.begin() + (l + 1) * L * d);
    }
    out.traces.push_back(std::move(tr));
  }
  return out;
}

// Layer l's frozen Δ {d}, B, C {d, N} into f: an LTI model's own parameters, or the selective
// run's Δ, B, C averaged over the tokens (or one token's), the same for every channel.
void freeze_layer(const Checkpoint& ckpt, const LayerTrace& tr, int l, Freeze::Kind kind, int64_t token,
                  FrozenSsm& f) {
  const int64_t d = tr.d, N = tr.N, L = tr.L;
  float* delta = &f.delta[size_t(l * d)];
  float* B = &f.B[size_t(l * d * N)];
  float* C = &f.C[size_t(l * d * N)];
  if (ckpt.config().lti) {
    const std::vector<float> dt = detail::tensor_f32(ckpt, detail::layer_tensor(l, "dt_lti"));
    const std::vector<float> b = detail::tensor_f32(ckpt, detail::layer_tensor(l, "B_lti"));
    const std::vector<float> c = detail::tensor_f32(ckpt, detail::layer_tensor(l, "C_lti"));
    for (int64_t i = 0; i < d; ++i) delta[i] = dt[size_t(i)] > 20.0f ? dt[size_t(i)] : std::log1p(std::exp(dt[size_t(i)]));
    std::copy(b.begin(), b.end(), B);
    std::copy(c.begin(), c.end(), C);
    return;
  }
  const int64_t t0 = kind == Freeze::Kind::AtToken ? token : 0, t1 = kind == Freeze::Kind::AtToken ? token + 1 : L;
  std::vector<double> dm(size_t(d), 0.0), bm(size_t(N), 0.0), cm(size_t(N), 0.0);
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t c = 0; c < d; ++c) dm[size_t(c)] += tr.delta[size_t(t * d + c)];
    for (int64_t n = 0; n < N; ++n) {
      bm[size_t(n)] += tr.B[size_t(t * N + n)];
      cm[size_t(n)] += tr.C[size_t(t * N + n)];
    }
  }
  const double inv = 1.0 / double(t1 - t0);
  for (int64_t c = 0; c < d; ++c) {
    delta[c] = float(dm[size_t(c)] * inv);
    for (int64_t n = 0; n < N; ++n) {
      B[c * N + n] = float(bm[size_t(n)] * inv);
      C[c * N + n] = float(cm[size_t(n)] * inv);
    }
  }
}

// y {L, d} of the frozen layer applied to u by FFT (cpu::ssm_lti_fft, from h = 0): what the LTI
// kernel's Toeplitz matrix must reproduce.
std::vector<float> lti_fft_output(const FrozenSsm& f, int l, const LayerTrace& tr) {
  const int64_t d = tr.d, N = tr.N, L = tr.L;
  std::vector<float> h(size_t(d * N), 0.0f), y(size_t(L * d));  // h {d, N}; y {L, d}
  cpu::LtiArgs a{tr.u.data(), &f.delta[size_t(l * d)], tr.A.data(), &f.B[size_t(l * d * N)],
                 &f.C[size_t(l * d * N)], tr.D.data(), L, d, N, h.data(), y.data()};
  cpu::ssm_lti_fft(a);
  return y;
}

void check_kernel_size(int64_t L) {
  const double bytes = double(L) * double(L) * 4 * (2 + 3 * cpu::num_threads());
  if (bytes > 8.0 * (1ull << 30))
    throw Error("the kernel view of " + std::to_string(L) + " tokens would need " + detail::format_bytes(bytes) +
                " (it is L x L): choose a shorter text");
}

}  // namespace

const char* kernel_view_name(KernelView v) {
  switch (v) {
    case KernelView::Channel: return "channel";
    case KernelView::MeanOverChannels: return "mean";
    case KernelView::Rollout: return "rollout";
  }
  return "?";
}

void kernel_channel(const LayerTrace& tr, int64_t c, float* K) {
  const int64_t L = tr.L, N = tr.N, d = tr.d;
  if (c < 0 || c >= d) throw Error("channel " + std::to_string(c) + " is outside 0.." + std::to_string(d - 1));
  // P {L, N}: P[t][n] = Σ_{k≤t} Δ_k A[c,n], in double so that P_t - P_s keeps its digits.
  std::vector<double> P(size_t(L * N));
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t t = 0; t < L; ++t) {
      s += double(tr.delta[size_t(t * d + c)]) * tr.A[size_t(c * N + n)];
      P[size_t(t * N + n)] = s;
    }
  }
  for (int64_t t = 0; t < L; ++t) {
    const float* C = &tr.C[size_t(t * N)];
    for (int64_t s = 0; s <= t; ++s) {
      const float* B = &tr.B[size_t(s * N)];
      double k = 0;
      for (int64_t n = 0; n < N; ++n)
        k += double(C[n]) * std::exp(P[size_t(t * N + n)] - P[size_t(s * N + n)]) * B[n];
      K[t * L + s] = float(k * tr.delta[size_t(s * d + c)]);
    }
    for (int64_t s = t + 1; s < L; ++s) K[t * L + s] = 0.0f;
  }
}

void lti_kernel_channel(const FrozenSsm& f, int layer, const float* A, int64_t c, int64_t L, float* k) {
  const int64_t d = f.d_inner, N = f.d_state;
  const float dt = f.delta[size_t(layer * d + c)];
  const float* B = &f.B[size_t((layer * d + c) * N)];
  const float* C = &f.C[size_t((layer * d + c) * N)];
  for (int64_t j = 0; j < L; ++j) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += double(C[n]) * std::exp(double(j) * dt * A[c * N + n]) * B[n];
    k[j] = float(acc * dt);
  }
}

double nonstationarity(const float* K, int64_t L) {
  const Energy e = toeplitz_residual(K, L);
  return e.total2 > 0 ? std::sqrt(e.residual2 / e.total2) : 0.0;
}

LayerTrace record_layer_trace(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids, int layer,
                              bool with_u_and_y) {
  Recorded r = record(ckpt, backend, ids, {layer}, with_u_and_y);
  return std::move(r.traces[0]);
}

KernelResult selective_kernel(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids,
                              const KernelOptions& opts, const Progress& progress) {
  const ModelConfig& cfg = ckpt.config();
  const int64_t L = int64_t(ids.size()), d = cfg.d_inner;
  if (L == 0) throw Error("the text is empty: there is no kernel to show");
  if (opts.layer < 0 || opts.layer >= cfg.n_layer)
    throw Error("layer " + std::to_string(opts.layer) + " does not exist (the model has " +
                std::to_string(cfg.n_layer) + " layers)");
  if (opts.view == KernelView::Channel && (opts.channel < 0 || opts.channel >= d))
    throw Error("channel " + std::to_string(opts.channel) + " is outside 0.." + std::to_string(d - 1));
  check_kernel_size(L);
  KernelResult res;
  res.L = L;
  res.layer = opts.layer;
  res.view = opts.view;
  res.channel = opts.channel;
  res.signed_values = opts.view == KernelView::Channel;

  std::vector<int> layers;
  if (opts.view == KernelView::Rollout)
    for (int l = 0; l <= opts.layer; ++l) layers.push_back(l);
  else
    layers.push_back(opts.layer);

  if (opts.lti_freeze == Freeze::Kind::AtToken && (opts.lti_token < 0 || opts.lti_token >= L))
    throw Error("freeze token " + std::to_string(opts.lti_token) + " is outside the " + std::to_string(L) +
                " tokens of the text");
  progress(0, "recording Δ, B, C");
  const Recorded sel = record(ckpt, backend, ids, layers, opts.verify);
  // The frozen values of the layers shown (the others stay zero: no kernel is built for them).
  FrozenSsm frozen;
  frozen.n_layer = cfg.n_layer;
  frozen.d_inner = d;
  frozen.d_state = cfg.d_state;
  frozen.delta.assign(size_t(cfg.n_layer * d), 0.0f);
  frozen.B.assign(size_t(cfg.n_layer * d * cfg.d_state), 0.0f);
  frozen.C.assign(frozen.B.size(), 0.0f);
  for (size_t i = 0; i < layers.size(); ++i)
    freeze_layer(ckpt, sel.traces[i], layers[i], opts.lti_freeze, opts.lti_token, frozen);
  res.lti_source = cfg.lti ? "the model's own LTI parameters (dt_lti, B_lti, C_lti)"
                   : opts.lti_freeze == Freeze::Kind::AtToken
                       ? "token " + std::to_string(opts.lti_token) + "'s Δ, B, C"
                       : "Δ, B, C averaged over the " + std::to_string(L) + " tokens";

  const double n_parts = double(layers.size()) * (cfg.lti ? 1 : 2);
  double part = 0;
  double recon_err = 0, recon_scale = 0, lti_err = 0, lti_scale = 0;
  Energy sel_energy;
  std::vector<float> R, R_lti;
  for (size_t i = 0; i < layers.size(); ++i) {
    progress.check();
    const int l = layers[i];
    const LayerTrace& tr = sel.traces[i];
    const std::vector<float>& A = tr.A;
    const std::vector<float>& D = tr.D;
    std::vector<float> lti_y;
    if (opts.verify) lti_y = lti_fft_output(frozen, l, tr);
    const float* lti_u = opts.verify ? tr.u.data() : nullptr;
    const float* lti_yl = opts.verify ? lti_y.data() : nullptr;
    KernelSource lti_src{nullptr, &frozen, l, A.data(), L};
    const std::string where = "layer " + std::to_string(l);

    // LTI kernel of this layer
    Aggregate lti;
    if (opts.view == KernelView::Channel) {
      lti = single_channel(lti_src, opts.channel, d, lti_u, lti_yl, D.data());
      res.lti_kernel.resize(size_t(L));
      lti_kernel_channel(frozen, l, A.data(), opts.channel, L, res.lti_kernel.data());
    } else {
      lti = aggregate_channels(lti_src, d, lti_u, lti_yl, D.data(), progress,
                               0.1 + 0.9 * part / n_parts, 0.9 / n_parts, where + ": LTI kernel");
      res.lti_kernel.assign(size_t(L), 0.0f);
      for (int64_t j = 0; j < L; ++j) res.lti_kernel[size_t(j)] = lti.mean_abs[size_t(j * L)];
    }
    ++part;
    lti_err = std::max(lti_err, lti.recon_err);
    lti_scale = std::max(lti_scale, lti.y_scale);

    // selective kernel of this layer (for an LTI model: the LTI kernel, checked against the backend)
    Aggregate s;
    if (cfg.lti) {
      s = opts.view == KernelView::Channel
              ? single_channel(lti_src, opts.channel, d, lti_u, opts.verify ? tr.y.data() : nullptr, D.data())
              : aggregate_channels(lti_src, d, lti_u, opts.verify ? tr.y.data() : nullptr, D.data(), progress,
                                   0.1 + 0.9 * part / n_parts, 0.0, where + ": checking the kernel");
    } else {
      KernelSource src{&tr, nullptr, l, tr.A.data(), L};
      const float* u = opts.verify ? tr.u.data() : nullptr;
      const float* y = opts.verify ? tr.y.data() : nullptr;
      if (opts.view == KernelView::Channel)
        s = single_channel(src, opts.channel, d, u, y, D.data());
      else
        s = aggregate_channels(src, d, u, y, D.data(), progress, 0.1 + 0.9 * part / n_parts, 0.9 / n_parts,
                               where + ": selective kernel");
      ++part;
    }
    recon_err = std::max(recon_err, s.recon_err);
    recon_scale = std::max(recon_scale, s.y_scale);
    sel_energy.residual2 += s.energy.residual2;
    sel_energy.total2 += s.energy.total2;

    if (opts.view == KernelView::Rollout) {
      rollout_step(R, s.mean_abs, L);
      rollout_step(R_lti, lti.mean_abs, L);
    } else {
      res.K = std::move(s.mean_abs);
      res.K_lti = std::move(lti.mean_abs);
    }
  }
  if (opts.view == KernelView::Rollout) {
    res.K = std::move(R);
    res.K_lti = std::move(R_lti);
    res.nonstationarity = nonstationarity(res.K.data(), L);
  } else {
    res.nonstationarity = sel_energy.total2 > 0 ? std::sqrt(sel_energy.residual2 / sel_energy.total2) : 0.0;
  }
  res.nonstationarity_lti = nonstationarity(res.K_lti.data(), L);
  if (opts.verify) {
    res.reconstruction_rel = ratio(recon_err, recon_scale);
    res.lti_reconstruction_rel = ratio(lti_err, lti_scale);
  }
  progress(1, "done");
  return res;
}

std::string kernel_csv(const std::vector<float>& K, int64_t L) {
  std::ostringstream o;
  o.precision(9);
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t s = 0; s < L; ++s) {
      if (s) o << ',';
      o << K[size_t(t * L + s)];
    }
    o << '\n';
  }
  return o.str();
}

}  // namespace mambascope::lab
