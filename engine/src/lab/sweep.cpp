// (b) The complexity sweep: time each way of running the SSM over growing L, either one layer's
// SSM op alone (the CPU ops on the model's d_inner × d_state and A, inputs synthesised) or the
// whole model through the backend. A method stops before a point predicted to exceed the time or
// memory budget (the O(L²) convolution is meant to), or when it fails; the rest go on.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <new>
#include <sstream>

#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"
#include "lab/lab_internal.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab {
namespace {

// Cheap deterministic pseudo-random numbers in [-1, 1): the values do not matter for timing,
// only that they are ordinary (no denormals, no zeros everywhere).
struct Noise {
  uint64_t s;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return float(int64_t(s >> 40) - (int64_t(1) << 23)) / float(1 << 23);
  }
  void fill(std::vector<float>& v, float scale) {
    for (float& x : v) x = scale * next();
  }
};

const char* method_label(ScanMode m) {
  switch (m) {
    case ScanMode::Recurrent: return "recurrent (token by token)";
    case ScanMode::Scan: return "parallel scan";
    case ScanMode::Convolution: return "selective kernel convolution";
    case ScanMode::LtiFft: return "LTI FFT convolution";
  }
  return "?";
}

double theory_exponent(ScanMode m) { return m == ScanMode::Convolution ? 2.0 : 1.0; }

// One layer's SSM op on synthetic inputs of the layer's real shapes.
class LayerBench {
 public:
  LayerBench(const Checkpoint& ckpt, int layer, uint64_t seed) : cfg_(ckpt.config()), noise_{seed} {
    if (layer < 0 || layer >= cfg_.n_layer)
      throw Error("layer " + std::to_string(layer) + " does not exist (the model has " +
                  std::to_string(cfg_.n_layer) + ")");
    A_ = detail::layer_A(ckpt, layer);
    D_ = detail::tensor_f32(ckpt, detail::layer_tensor(layer, "D"));
    const std::string bias_name = detail::layer_tensor(layer, cfg_.lti ? "dt_lti" : "dt_proj.bias");
    if (ckpt.find(bias_name)) dt_bias_ = detail::tensor_f32(ckpt, bias_name);
    dt_bias_.resize(size_t(cfg_.d_inner), -4.6f);  // softplus(-4.6) ≈ 0.01 where none is stored
  }

  size_t bytes(ScanMode m, int64_t L) const {
    const double d = double(cfg_.d_inner), N = double(cfg_.d_state), Ld = double(L), f = sizeof(float);
    const double T = cpu::num_threads();
    double b = (3 * Ld * d + 2 * Ld * N + 3 * d * N) * f;  // u, delta, y; B, C; h, lti B, C
    if (m == ScanMode::Scan) b += T * (Ld * N + (Ld / 64 + 1) * N) * f;
    if (m == ScanMode::Convolution) b += T * (Ld * Ld * f + Ld * N * 8);
    if (m == ScanMode::LtiFft) {
      double M = 1;
      while (M < 2 * Ld) M *= 2;
      b += T * 4 * M * f;
    }
    return size_t(b);
  }

  void prepare(int64_t L) {
    const int64_t d = cfg_.d_inner, N = cfg_.d_state;
    L_ = L;
    u_.resize(size_t(L * d));
    noise_.fill(u_, 1.0f);
    B_.resize(size_t(L * N));
    noise_.fill(B_, 1.0f);
    C_.resize(size_t(L * N));
    noise_.fill(C_, 1.0f);
    delta_.resize(size_t(L * d));
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < d; ++c) {
        const float x = dt_bias_[size_t(c)] + 0.5f * noise_.next();
        delta_[size_t(t * d + c)] = x > 20.0f ? x : std::log1p(std::exp(x));
      }
    y_.assign(size_t(L * d), 0.0f);
    lti_B_.resize(size_t(d * N));
    noise_.fill(lti_B_, 1.0f);
    lti_C_.resize(size_t(d * N));
    noise_.fill(lti_C_, 1.0f);
  }

  void release() {
    for (auto* v : {&u_, &B_, &C_, &delta_, &y_}) {
      v->clear();
      v->shrink_to_fit();
    }
  }

  // Returns false if cancelled part way.
  bool run(ScanMode m, const Progress& progress) {
    const int64_t d = cfg_.d_inner, N = cfg_.d_state, L = L_;
    h_.assign(size_t(d * N), 0.0f);
    cpu::SsmArgs a{u_.data(), delta_.data(), A_.data(), B_.data(), N, C_.data(), N, D_.data(), L, d, N,
                   h_.data(), y_.data()};
    switch (m) {
      case ScanMode::Recurrent:
        // Decoding: the op is called once per token with L = 1, carrying h.
        for (int64_t t = 0; t < L; ++t) {
          if ((t & 255) == 0 && progress.cancelled()) return false;
          cpu::SsmArgs s = a;
          s.u += t * d;
          s.delta += t * d;
          s.B += t * N;
          s.C += t * N;
          s.y += t * d;
          s.L = 1;
          cpu::ssm_scan_recurrent(s);
        }
        break;
      case ScanMode::Scan: cpu::ssm_scan_chunked(a); break;
      case ScanMode::Convolution: cpu::ssm_conv_selective(a); break;
      case ScanMode::LtiFft: {
        // Δ frozen at the first token's values, B, C per channel: the S4-style LTI layer.
        cpu::LtiArgs l{u_.data(), delta_.data(), A_.data(), lti_B_.data(), lti_C_.data(), D_.data(), L, d, N,
                       h_.data(), y_.data()};
        cpu::ssm_lti_fft(l);
        break;
      }
    }
    return true;
  }

 private:
  ModelConfig cfg_;
  Noise noise_;
  int64_t L_ = 0;
  std::vector<float> A_, D_, dt_bias_;            // {d, N}, {d}, {d}
  std::vector<float> u_, delta_, y_;              // {L, d}
  std::vector<float> B_, C_;                      // {L, N}
  std::vector<float> lti_B_, lti_C_, h_;          // {d, N}
};

// The whole model through Backend::forward, on pseudo-random token ids.
class ModelBench {
 public:
  ModelBench(const ModelConfig& cfg, Backend& b, uint64_t seed) : cfg_(cfg), b_(b), noise_{seed} {}

  size_t bytes(ScanMode m, int64_t L) const {
    // The recurrence holds one token at a time.
    return detail::backend_mode_peak_bytes(b_, cfg_, m, m == ScanMode::Recurrent ? 1 : L, false);
  }

  void prepare(int64_t L) {
    ids_.resize(size_t(L));
    for (int32_t& id : ids_)
      id = int32_t(std::fabs(noise_.next()) * float(cfg_.vocab_size - 1));
  }
  void release() { ids_.clear(); }

  bool run(ScanMode m, const Progress& progress) {
    auto state = b_.new_state();
    ForwardOptions o;
    o.mode = m;
    if (m == ScanMode::Recurrent) {
      for (size_t t = 0; t < ids_.size(); ++t) {
        if ((t & 15) == 0 && progress.cancelled()) return false;
        b_.forward(std::span(ids_).subspan(t, 1), *state, o, logits_);
      }
    } else {
      b_.forward(ids_, *state, o, logits_);
    }
    return true;
  }

 private:
  ModelConfig cfg_;
  Backend& b_;
  Noise noise_;
  std::vector<int32_t> ids_;
  std::vector<float> logits_;
};

template <class Bench>
void run_sweep(Bench& bench, const SweepOptions& opts, const Progress& progress, SweepResult& res,
               const std::function<void(const SweepSeries&, const SweepPoint&)>& on_point,
               const Backend* backend) {
  for (ScanMode m : opts.methods) {
    SweepSeries s;
    s.method = m;
    s.label = method_label(m);
    std::string why;
    if (backend && !backend->supports(m, &why))
      s.stopped = "not run: " + (why.empty() ? "the " + backend->name() + " backend does not run this mode" : why);
    res.series.push_back(s);
  }
  const double total = double(opts.lengths.size() * opts.methods.size());
  double done = 0;
  for (size_t li = 0; li < opts.lengths.size(); ++li) {
    const int64_t L = opts.lengths[li];
    bool prepared = false;
    for (SweepSeries& s : res.series) {
      done += 1;
      if (!s.stopped.empty()) continue;
      if (progress.cancelled()) {
        res.cancelled = true;
        return;
      }
      const size_t need = bench.bytes(s.method, L);
      if (double(need) > opts.memory_budget_bytes) {
        s.stopped = "stopped before L = " + std::to_string(L) + ": it would need about " +
                    detail::format_bytes(double(need)) + ", over the memory budget of " +
                    detail::format_bytes(opts.memory_budget_bytes);
        continue;
      }
      if (!s.points.empty()) {
        // Predict from the last point with the larger of the theoretical and the observed exponent.
        const SweepPoint& last = s.points.back();
        double p = theory_exponent(s.method);
        if (s.points.size() >= 2) {
          const SweepPoint& prev = s.points[s.points.size() - 2];
          if (prev.seconds > 0 && last.seconds > 0)
            p = std::max(p, std::log(last.seconds / prev.seconds) / std::log(double(last.L) / double(prev.L)));
        }
        p = std::min(p, 3.0);
        const double predicted = last.seconds * std::pow(double(L) / double(last.L), p);
        if (predicted > opts.point_budget_seconds) {
          s.stopped = "stopped before L = " + std::to_string(L) + ": predicted " +
                      detail::format_seconds(predicted) + " (L^" + std::to_string(p).substr(0, 4) +
                      " from the last point), over the budget of " +
                      detail::format_seconds(opts.point_budget_seconds) + " per point";
          continue;
        }
      }
      progress(done / total, s.label + " at L = " + std::to_string(L));
      SweepPoint pt;
      pt.L = L;
      pt.peak_bytes_estimate = need;
      pt.seconds = std::numeric_limits<double>::infinity();
      try {
        if (!prepared) {
          bench.prepare(L);
          prepared = true;
        }
        double spent = 0;
        while (pt.repeats < std::max(1, opts.max_repeats)) {
          detail::Stopwatch sw;
          if (!bench.run(s.method, progress)) {
            res.cancelled = true;
            return;
          }
          const double t = sw.seconds();
          pt.seconds = std::min(pt.seconds, t);
          spent += t;
          ++pt.repeats;
          // The first run at a new length pays one-time costs (the GPU's FFT plans and kernels,
          // buffers growing): a point under half the budget runs at least twice (both stay within it).
          const bool once_more = pt.repeats == 1 && t < opts.point_budget_seconds / 2;
          if (spent >= opts.min_seconds && !once_more) break;
        }
      } catch (const std::bad_alloc&) {
        s.stopped = "stopped at L = " + std::to_string(L) + ": out of memory";
        continue;
      } catch (const std::exception& e) {
        s.stopped = "stopped at L = " + std::to_string(L) + ": " + e.what();
        continue;
      }
      s.points.push_back(pt);
      const size_t from = s.points.size() > 4 ? s.points.size() - 4 : 0;
      s.slope = loglog_slope(std::span(s.points).subspan(from));
      if (on_point) on_point(s, pt);
    }
    if (prepared) bench.release();
  }
  progress(1, "done");
}

}  // namespace

double loglog_slope(std::span<const SweepPoint> pts) {
  if (pts.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = double(pts.size());
  for (const SweepPoint& p : pts) {
    const double x = std::log(double(p.L)), y = std::log(std::max(p.seconds, 1e-12));
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double den = n * sxx - sx * sx;
  return den > 0 ? (n * sxy - sx * sy) / den : std::numeric_limits<double>::quiet_NaN();
}

double sweep_memory_budget(const Backend* backend, SweepScope scope) {
  const double cpu = 4.0 * double(1ull << 30);
  if (scope == SweepScope::Layer || !backend || backend->name() != "cuda") return cpu;
  const DeviceInfo dev = backend->device();
  return dev.memory_free > 0 ? 0.8 * double(dev.memory_free) : cpu;
}

SweepResult sweep(const Checkpoint& ckpt, Backend* backend, const SweepOptions& given, const Progress& progress,
                  const std::function<void(const SweepSeries&, const SweepPoint&)>& on_point) {
  SweepOptions opts = given;
  if (opts.memory_budget_bytes <= 0) opts.memory_budget_bytes = sweep_memory_budget(backend, opts.scope);
  if (opts.lengths.empty()) throw Error("the sweep needs at least one sequence length");
  for (size_t i = 0; i < opts.lengths.size(); ++i)
    if (opts.lengths[i] < 1 || (i > 0 && opts.lengths[i] <= opts.lengths[i - 1]))
      throw Error("sweep lengths must be positive and ascending");
  const ModelConfig& cfg = ckpt.config();
  SweepResult res;
  res.scope = opts.scope;
  res.memory_budget_bytes = opts.memory_budget_bytes;
  char what[256];
  if (opts.scope == SweepScope::Layer) {
    std::snprintf(what, sizeof what,
                  "one layer's SSM (layer %d: d_inner %lld x d_state %lld, its A and Δ bias; synthetic "
                  "inputs), CPU ops on %d threads, no projections",
                  opts.layer, (long long)cfg.d_inner, (long long)cfg.d_state, cpu::num_threads());
    res.what = what;
    res.device = "cpu";
    LayerBench bench(ckpt, opts.layer, opts.seed);
    run_sweep(bench, opts, progress, res, on_point, nullptr);
  } else {
    if (!backend) throw Error("the whole-model sweep needs a backend");
    const DeviceInfo dev = backend->device();
    std::snprintf(what, sizeof what,
                  "the whole model (%lld layers, d_model %lld) through the %s backend, random tokens",
                  (long long)cfg.n_layer, (long long)cfg.d_model, backend->name().c_str());
    res.what = what;
    res.device = dev.kind + ": " + dev.name;
    ModelBench bench(cfg, *backend, opts.seed);
    run_sweep(bench, opts, progress, res, on_point, backend);
  }
  return res;
}

std::string sweep_csv(const SweepResult& r) {
  std::ostringstream o;
  o << "method,L,seconds,repeats,peak_bytes_estimate\n";
  for (const SweepSeries& s : r.series)
    for (const SweepPoint& p : s.points) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", p.seconds);
      o << mode_name(s.method) << "," << p.L << "," << buf << "," << p.repeats << "," << p.peak_bytes_estimate
        << "\n";
    }
  return o.str();
}

}  // namespace mambascope::lab
