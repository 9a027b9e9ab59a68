// (e) Interventions on Δ: the text is run twice, as it is and with Δ overridden at chosen tokens
// and layers (0: the token is ignored, the state passes it unchanged; large: the state is reset
// to what the token writes), and the two runs are compared: next-token logits and their KL,
// each layer's SSM output, the hidden state h of one layer token by token, the state after the
// text, and the greedy continuation.
#include <cmath>

#include "lab/lab_internal.hpp"
#include "mambascope/lab.hpp"
#include "mambascope/probes.hpp"

namespace mambascope::lab {
namespace {

struct Pass {
  std::vector<float> logits;  // {L, vocab}
  std::vector<float> y;       // {n_layer, L, d_inner}
  std::vector<float> h;       // {L, d_inner, d_state} of the h layer
  HostState final_state;
  std::vector<int32_t> continuation;
};

Pass run_pass(Backend& b, const ModelConfig& cfg, std::span<const int32_t> ids, const InterventionOptions& io,
              bool with_overrides, const Progress& progress) {
  const int64_t L = int64_t(ids.size()), dN = cfg.d_inner * cfg.d_state;
  ProbePolicy pol;
  pol.enabled = true;
  pol.layers = {io.h_layer};
  pol.capture_h = true;
  pol.max_tokens = L;
  ProbeRecorder rec(pol);
  ForwardOptions o;
  o.mode = ScanMode::Scan;
  o.all_logits = true;
  o.ssm_outputs = nullptr;
  if (with_overrides) o.delta_overrides = io.overrides;
  Pass p;
  o.ssm_outputs = &p.y;
  o.probes = &rec;
  auto st = b.new_state();
  b.forward(ids, *st, o, p.logits);
  p.final_state = st->to_host();
  p.h.assign(size_t(L * dN), 0.0f);
  for (int64_t t = 0; t < L; ++t) {
    const TokenProbe* tp = rec.at(t);
    const LayerProbe* lp = tp ? tp->layer(io.h_layer) : nullptr;
    if (lp && int64_t(lp->h.size()) == dN) std::copy(lp->h.begin(), lp->h.end(), p.h.begin() + t * dN);
  }
  if (io.n_continue > 0) {
    const int64_t V = cfg.vocab_size;
    std::vector<float> last(p.logits.end() - V, p.logits.end());
    ForwardOptions dec;
    if (with_overrides) dec.delta_overrides = io.overrides;  // positions past the text: no effect
    p.continuation = greedy_continue(b, *st, std::move(last), dec, io.n_continue, progress);
  }
  return p;
}

double rel_change(const float* a, const float* b, int64_t n) {
  double diff = 0, base = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    base += double(a[i]) * a[i];
  }
  return base > 0 ? std::sqrt(diff / base) : std::sqrt(diff);
}

}  // namespace

InterventionResult intervene(Backend& backend, const ModelConfig& cfg, std::span<const int32_t> ids,
                             const InterventionOptions& io, const Progress& progress) {
  const int64_t L = int64_t(ids.size());
  if (L == 0) throw Error("the text is empty: nothing to intervene on");
  if (io.h_layer < 0 || io.h_layer >= cfg.n_layer)
    throw Error("layer " + std::to_string(io.h_layer) + " does not exist (the model has " +
                std::to_string(cfg.n_layer) + " layers)");
  for (const DeltaOverride& o : io.overrides) {
    if (o.layer < -1 || o.layer >= cfg.n_layer)
      throw Error("intervention layer " + std::to_string(o.layer) + " does not exist (-1 = every layer)");
    if (!(o.value >= 0) || !std::isfinite(o.value))
      throw Error("Δ must be a finite value >= 0 (0 ignores the token, large resets the state)");
  }
  progress(0, "original");
  const Pass a = run_pass(backend, cfg, ids, io, false, progress);
  progress.check();
  progress(0.5, "with the intervention");
  const Pass b = run_pass(backend, cfg, ids, io, true, progress);

  InterventionResult r;
  r.L = L;
  r.n_layer = cfg.n_layer;
  const int64_t V = cfg.vocab_size, d = cfg.d_inner, dN = d * cfg.d_state;
  r.identical = a.logits == b.logits;
  r.logits_change.resize(size_t(L));
  r.kl.resize(size_t(L));
  r.top_original.resize(size_t(L));
  r.top_intervened.resize(size_t(L));
  std::vector<double> pa, pb;
  for (int64_t t = 0; t < L; ++t) {
    const float* la = &a.logits[size_t(t * V)];
    const float* lb = &b.logits[size_t(t * V)];
    double m = 0;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, std::fabs(double(la[v]) - lb[v]));
    r.logits_change[size_t(t)] = float(m);
    detail::log_softmax_row(la, V, pa);
    detail::log_softmax_row(lb, V, pb);
    double kl = 0;
    for (int64_t v = 0; v < V; ++v) kl += std::exp(pa[size_t(v)]) * (pa[size_t(v)] - pb[size_t(v)]);
    r.kl[size_t(t)] = float(std::max(0.0, kl));
    r.top_original[size_t(t)] = detail::argmax(la, V);
    r.top_intervened[size_t(t)] = detail::argmax(lb, V);
  }
  r.y_change.resize(size_t(cfg.n_layer * L));
  for (int64_t l = 0; l < cfg.n_layer; ++l)
    for (int64_t t = 0; t < L; ++t) {
      const size_t off = size_t((l * L + t) * d);
      r.y_change[size_t(l * L + t)] = float(rel_change(&a.y[off], &b.y[off], d));
    }
  r.h_change.resize(size_t(L));
  for (int64_t t = 0; t < L; ++t) r.h_change[size_t(t)] = float(rel_change(&a.h[size_t(t * dN)], &b.h[size_t(t * dN)], dN));
  r.state_change.resize(size_t(cfg.n_layer));
  for (int64_t l = 0; l < cfg.n_layer; ++l)
    r.state_change[size_t(l)] =
        float(rel_change(&a.final_state.ssm[size_t(l * dN)], &b.final_state.ssm[size_t(l * dN)], dN));
  r.continuation_original = a.continuation;
  r.continuation_intervened = b.continuation;
  progress(1, "done");
  return r;
}

}  // namespace mambascope::lab
