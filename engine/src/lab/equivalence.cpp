// (a) Equivalence: the same tokens through every SSM mode on one backend. Each mode's SSM
// outputs y (every layer, before the gate) and logits are compared with the recurrent mode's;
// lti-fft, which freezes Δ, B, C, with the recurrence under the same frozen values. The heatmap
// cell (layer, token) is the largest |Δy| over channels, flagged when above the tolerance
// relative to that layer's largest |y|.
#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "cpu/parallel_for.hpp"
#include "lab/lab_internal.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab {
namespace {

struct Run {
  std::vector<float> y;       // {n_layer, L, d_inner}
  std::vector<float> logits;  // {L, vocab}
  double seconds = 0;
  int64_t peak_measured = -1;
};

Run run_mode(Backend& b, std::span<const int32_t> ids, ScanMode mode, const Freeze& freeze,
             FrozenSsm* frozen_out) {
  Run r;
  ForwardOptions o;
  o.mode = mode;
  o.all_logits = true;
  o.freeze = freeze;
  o.ssm_outputs = &r.y;
  o.frozen_out = frozen_out;
  auto state = b.new_state();
  const bool cpu = b.name() == "cpu";
  const int64_t rss0 = cpu ? detail::current_rss_bytes() : -1;
  const bool reset = cpu && rss0 >= 0 && detail::reset_peak_rss();
  detail::Stopwatch sw;
  b.forward(ids, *state, o, r.logits);
  r.seconds = sw.seconds();
  if (reset) {
    const int64_t peak = detail::peak_rss_bytes();
    if (peak >= 0) r.peak_measured = std::max<int64_t>(0, peak - rss0);
  }
  return r;
}

void compare(const Run& got, const Run& ref, const ModelConfig& cfg, int64_t L, ModeEquivalence& m) {
  const int64_t d = cfg.d_inner, nl = cfg.n_layer;
  if (got.y.size() != ref.y.size() || got.logits.size() != ref.logits.size())
    throw Error("the modes returned outputs of different sizes");
  m.y_max_abs.assign(size_t(nl * L), 0.0f);
  m.y_scale.assign(size_t(nl), 0.0f);
  m.y_rel = 0;
  for (int64_t l = 0; l < nl; ++l) {
    double scale = 0, worst = 0;
    for (int64_t t = 0; t < L; ++t) {
      const float* a = &got.y[size_t((l * L + t) * d)];
      const float* b = &ref.y[size_t((l * L + t) * d)];
      double cell = 0;
      for (int64_t c = 0; c < d; ++c) {
        double diff = std::fabs(double(a[c]) - double(b[c]));
        if (std::isnan(a[c]) != std::isnan(b[c])) diff = INFINITY;
        cell = std::max(cell, diff);
        scale = std::max(scale, double(std::fabs(b[c])));
      }
      m.y_max_abs[size_t(l * L + t)] = float(cell);
      worst = std::max(worst, cell);
    }
    m.y_scale[size_t(l)] = float(scale);
    m.y_rel = std::max(m.y_rel, scale > 0 ? worst / scale : worst);
  }
  const int64_t V = cfg.vocab_size;
  double lscale = 0;
  m.logits_max_abs = 0;
  m.argmax_agree = 0;
  for (int64_t t = 0; t < L; ++t) {
    const float* a = &got.logits[size_t(t * V)];
    const float* b = &ref.logits[size_t(t * V)];
    for (int64_t v = 0; v < V; ++v) {
      double diff = std::fabs(double(a[v]) - double(b[v]));
      if (std::isnan(a[v]) != std::isnan(b[v])) diff = INFINITY;
      m.logits_max_abs = std::max(m.logits_max_abs, diff);
      lscale = std::max(lscale, double(std::fabs(b[v])));
    }
    if (detail::argmax(a, V) == detail::argmax(b, V)) ++m.argmax_agree;
  }
  m.logits_rel = lscale > 0 ? m.logits_max_abs / lscale : m.logits_max_abs;
  m.ok = m.y_rel <= m.tolerance && m.logits_rel <= m.tolerance;
}

}  // namespace

bool ModeEquivalence::flagged(int64_t layer, int64_t token, int64_t L) const {
  if (y_max_abs.empty()) return false;
  const double scale = y_scale[size_t(layer)];
  const double v = y_max_abs[size_t(layer * L + token)];
  return scale > 0 ? v / scale > tolerance : v > tolerance;
}

double mode_tolerance(const Backend& backend) {
  return dtype_size(backend.device().activations) < 4 ? kModeTolerance16 : kModeTolerance;
}

EquivalenceReport equivalence(Backend& backend, const ModelConfig& cfg, std::span<const int32_t> ids,
                              const EquivalenceOptions& opts, const Progress& progress) {
  if (ids.empty()) throw Error("the text is empty: nothing to compare");
  EquivalenceReport rep;
  rep.backend = backend.name();
  rep.n_layer = cfg.n_layer;
  rep.n_tokens = int64_t(ids.size());
  const int64_t L = rep.n_tokens;
  const double steps = double(opts.modes.size()) + 1;
  progress(0, "recurrent (reference)");
  const Run ref = run_mode(backend, ids, ScanMode::Recurrent, {}, nullptr);
  int done = 1;
  for (ScanMode mode : opts.modes) {
    progress.check();
    ModeEquivalence m;
    m.mode = mode;
    m.tolerance = opts.tolerance >= 0 ? opts.tolerance : mode_tolerance(backend);
    m.peak_bytes_estimate = detail::backend_mode_peak_bytes(backend, cfg, mode, L, true);
    std::string why;
    if (!backend.supports(mode, &why)) {
      m.skipped = why.empty() ? "not supported by the " + backend.name() + " backend" : why;
      rep.modes.push_back(std::move(m));
      continue;
    }
    progress(double(done) / steps, mode_name(mode));
    if (mode == ScanMode::Recurrent) {
      m.is_reference = true;
      m.reference = "itself (the reference)";
      m.seconds = ref.seconds;
      m.peak_bytes_measured = ref.peak_measured;
      compare(ref, ref, cfg, L, m);
    } else if (mode == ScanMode::LtiFft && !cfg.lti) {
      // A selective model is LTI only once frozen: compare like with like.
      auto frozen = std::make_shared<FrozenSsm>();
      Freeze mean;
      mean.kind = Freeze::Kind::MeanOverInput;
      const Run got = run_mode(backend, ids, mode, mean, frozen.get());
      Freeze given;
      given.kind = Freeze::Kind::Given;
      given.values = frozen;
      const Run fref = run_mode(backend, ids, ScanMode::Recurrent, given, nullptr);
      m.reference = "recurrent with the same frozen Δ, B, C (their mean over the text)";
      m.seconds = got.seconds;
      m.peak_bytes_measured = got.peak_measured;
      compare(got, fref, cfg, L, m);
      ModeEquivalence vs;
      compare(got, ref, cfg, L, vs);
      rep.frozen_vs_selective_rel = vs.logits_rel;
    } else {
      const Run got = run_mode(backend, ids, mode, {}, nullptr);
      m.reference = "recurrent";
      m.seconds = got.seconds;
      m.peak_bytes_measured = got.peak_measured;
      compare(got, ref, cfg, L, m);
    }
    rep.ok = rep.ok && m.ok;
    rep.modes.push_back(std::move(m));
    ++done;
  }
  progress(1, "done");
  return rep;
}

std::string equivalence_json(const EquivalenceReport& r) {
  nlohmann::json modes = nlohmann::json::array();
  for (const ModeEquivalence& m : r.modes) {
    nlohmann::json j = {{"mode", mode_name(m.mode)}};
    if (!m.skipped.empty()) {
      j["skipped"] = m.skipped;
    } else {
      j["reference"] = m.reference;
      j["seconds"] = m.seconds;
      j["peak_bytes_estimate"] = m.peak_bytes_estimate;
      j["peak_bytes_measured"] = m.peak_bytes_measured;
      j["y_rel"] = m.y_rel;
      j["logits_max_abs"] = m.logits_max_abs;
      j["logits_rel"] = m.logits_rel;
      j["argmax_agree"] = m.argmax_agree;
      j["tolerance"] = m.tolerance;
      j["ok"] = m.ok;
      j["y_max_abs"] = m.y_max_abs;  // {n_layer, n_tokens}
      j["y_scale"] = m.y_scale;
    }
    modes.push_back(j);
  }
  nlohmann::json out = {{"backend", r.backend}, {"n_layer", r.n_layer}, {"n_tokens", r.n_tokens},
                        {"modes", modes}, {"ok", r.ok}};
  if (r.frozen_vs_selective_rel >= 0) out["frozen_vs_selective_logits_rel"] = r.frozen_vs_selective_rel;
  return out.dump(1);
}

}  // namespace mambascope::lab
