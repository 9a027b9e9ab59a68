// Helpers shared by the lab's computations (see lab_internal.hpp), the greedy continuation used
// by the selectivity and intervention views, and the working-set estimate of each mode.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"
#include "lab/lab_internal.hpp"
#include "mambascope/dtype.hpp"
#include "mambascope/error.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab {
namespace detail {

std::vector<float> tensor_f32(const Checkpoint& ckpt, const std::string& name) {
  const TensorView& t = ckpt.get(name);
  std::vector<float> out(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, out.data(), out.size());
  return out;
}

std::vector<float> rows_f32(const Checkpoint& ckpt, const std::string& name, std::span<const int32_t> rows) {
  const TensorView& t = ckpt.get(name);
  if (t.shape.size() != 2) throw Error(name + " is not a matrix");
  const int64_t n_rows = t.shape[0], cols = t.shape[1];
  const size_t esize = dtype_size(t.dtype);
  std::vector<float> out(rows.size() * size_t(cols));  // out {rows, cols}
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= n_rows)
      throw Error("row " + std::to_string(rows[i]) + " is outside " + name + " (" + std::to_string(n_rows) + " rows)");
    convert_to_f32(t.dtype, t.data + size_t(rows[i]) * size_t(cols) * esize, out.data() + i * size_t(cols),
                   size_t(cols));
  }
  return out;
}

std::string layer_tensor(int layer, const std::string& leaf) {
  return "backbone.layers." + std::to_string(layer) + ".mixer." + leaf;
}

std::vector<float> layer_A(const Checkpoint& ckpt, int layer) {
  std::vector<float> A = tensor_f32(ckpt, layer_tensor(layer, "A_log"));
  for (float& a : A) a = -std::exp(a);  // A = -torch.exp(self.A_log.float())
  return A;
}

std::vector<float> ssm_input(const Checkpoint& ckpt, int layer, const float* x, int64_t L) {
  const ModelConfig& cfg = ckpt.config();
  const int64_t D = cfg.d_model, d = cfg.d_inner, k = cfg.d_conv;
  const std::string prefix = "backbone.layers." + std::to_string(layer) + ".";
  const std::vector<float> norm = tensor_f32(ckpt, prefix + "norm.weight");
  const std::vector<float> in_proj = tensor_f32(ckpt, prefix + "mixer.in_proj.weight");
  const std::vector<float> conv_w = tensor_f32(ckpt, prefix + "mixer.conv1d.weight");
  std::vector<float> in_bias, conv_b;
  if (ckpt.find(prefix + "mixer.in_proj.bias")) in_bias = tensor_f32(ckpt, prefix + "mixer.in_proj.bias");
  if (ckpt.find(prefix + "mixer.conv1d.bias")) conv_b = tensor_f32(ckpt, prefix + "mixer.conv1d.bias");
  std::vector<float> xn(size_t(L * D));  // xn {L, d_model}
  cpu::rms_norm(x, norm.data(), float(cfg.norm_eps), L, D, xn.data());
  // Only the x half of in_proj feeds the SSM: its first d_inner rows.
  std::vector<float> xs(size_t(L * d));  // xs {L, d_inner}
  cpu::linear(xn.data(), in_proj.data(), in_bias.empty() ? nullptr : in_bias.data(), L, D, d, xs.data());
  std::vector<float> conv_state(size_t(d * (k - 1)), 0.0f);  // {d_inner, d_conv - 1}: a fresh run
  std::vector<float> u(size_t(L * d));                       // u {L, d_inner}
  cpu::conv1d_causal_silu(xs.data(), d, conv_state.data(), conv_w.data(), conv_b.empty() ? nullptr : conv_b.data(),
                          L, d, k, u.data());
  return u;
}

std::vector<float> layer_input(const Checkpoint& ckpt, std::span<const int32_t> ids,
                               const std::vector<float>& residuals, int layer) {
  const int64_t L = int64_t(ids.size()), D = ckpt.config().d_model;
  if (layer == 0) return rows_f32(ckpt, "backbone.embeddings.weight", ids);
  if (residuals.size() < size_t(layer) * size_t(L * D)) throw Error("residual stream not recorded");
  const auto first = residuals.begin() + (layer - 1) * L * D;
  return std::vector<float>(first, first + L * D);
}

namespace {
int64_t status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(k, 0) == 0) return std::stoll(line.substr(k.size())) ;
  return -1;
}
}  // namespace

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return bool(out);
}

int64_t peak_rss_bytes() {
  const int64_t kib = status_kib("VmHWM");
  return kib < 0 ? -1 : kib * 1024;
}

int64_t current_rss_bytes() {
  const int64_t kib = status_kib("VmRSS");
  return kib < 0 ? -1 : kib * 1024;
}

double max_abs(std::span<const float> v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return int32_t(best);
}

void log_softmax_row(const float* logits, int64_t n, std::vector<double>& out) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double(logits[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(logits[i]) - m);
  const double lse = m + std::log(s);
  out.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(logits[i]) - lse;
}

}  // namespace detail

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.1f µs", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}


std::vector<int32_t> greedy_continue(Backend& backend, BackendState& state, std::vector<float> logits,
                                     const ForwardOptions& base, int n, const Progress& progress) {
  ForwardOptions opts = base;
  opts.mode = ScanMode::Recurrent;  // decoding: one token at a time
  opts.all_logits = false;
  opts.frozen_out = nullptr;
  opts.probes = nullptr;
  opts.residuals = nullptr;
  opts.ssm_outputs = nullptr;
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    progress.check();
    if (logits.empty()) throw Error("greedy continuation needs the logits of the last token");
    const int64_t V = int64_t(logits.size());
    const int32_t next = detail::argmax(logits.data(), V);
    out.push_back(next);
    if (i + 1 == n) break;
    const int32_t tok[1] = {next};
    backend.forward(tok, state, opts, logits);
  }
  return out;
}

size_t mode_peak_bytes(const ModelConfig& cfg, ScanMode mode, int64_t L, int threads, bool all_logits) {
  const double f = sizeof(float);
  const double D = double(cfg.d_model), d = double(cfg.d_inner), N = double(cfg.d_state);
  const double R = double(cfg.dt_rank), Ld = double(L), T = double(std::max(threads, 1));
  // CpuBackend::forward: resid, xn, out {L, d_model}; logits {n_out, vocab}; the state.
  double bytes = 3 * Ld * D * f + (all_logits ? Ld : 1.0) * double(cfg.vocab_size) * f +
                 double(cfg.n_layer) * d * (N + double(cfg.d_conv - 1)) * f;
  // MixerScratch: xz {L, 2d}, xc, delta, y {L, d}, dbc {L, R + 2N}, A {d, N}; conv window.
  bytes += Ld * (5 * d + R + 2 * N) * f + d * N * f + (Ld + double(cfg.d_conv)) * f;
  const bool frozen = cfg.lti || mode == ScanMode::LtiFft;
  switch (mode) {
    case ScanMode::Recurrent: break;
    case ScanMode::Scan:  // per thread: S {L, N}, h_end {L/64, N}
      if (!frozen) bytes += T * (Ld * N + (Ld / 64 + 1) * N) * f;
      break;
    case ScanMode::Convolution:
      if (frozen)  // Toeplitz: K {L}, ku {L} per thread
        bytes += T * 2 * Ld * f;
      else  // K {L, L} floats and P {L, N} doubles per thread
        bytes += T * (Ld * Ld * f + Ld * N * sizeof(double));
      break;
    case ScanMode::LtiFft: {  // per thread: two real {M} and two complex {M/2 + 1} buffers
      double M = 1;
      while (M < 2 * Ld) M *= 2;
      bytes += T * (2 * M * f + 2 * (M / 2 + 1) * 2 * f) + 3 * d * N * f;
      break;
    }
  }
  return size_t(bytes);
}

// The CUDA backend's working set for one forward call (cuda_backend.cpp, cuda_modes.cpp),
// activations counted at 4 bytes (a bf16 model needs less): no mode builds an L × L matrix there,
// so the convolution is stopped by time, not memory.
size_t detail::backend_mode_peak_bytes(const Backend& backend, const ModelConfig& cfg, ScanMode mode,
                                       int64_t L, bool all_logits) {
  if (backend.name() == "cuda") return gpu_mode_peak_bytes(cfg, mode, L, all_logits);
  const int threads = backend.device().threads > 0 ? backend.device().threads : cpu::num_threads();
  return mode_peak_bytes(cfg, mode, L, threads, all_logits);
}

size_t detail::gpu_mode_peak_bytes(const ModelConfig& cfg, ScanMode mode, int64_t L, bool all_logits) {
  const double f = sizeof(float);
  const double D = double(cfg.d_model), d = double(cfg.d_inner), N = double(cfg.d_state), Ld = double(L);
  const double xr = double(cfg.dt_rank) + 2 * N, V = double(cfg.vocab_size);
  const double state = double(cfg.n_layer) * d * (N + double(cfg.d_conv - 1)) * f;
  if (mode == ScanMode::Recurrent)  // the decode step's vectors, one token at a time
    return size_t(state + (D + 4 * d + xr + 2 * V) * f);
  // resid, hidden {L, d_model}; xz {L, 2d}; x, dt, y {L, d}; xdbl {L, R + 2N}; logits
  double bytes = state + Ld * (2 * D + 5 * d + xr) * f + (all_logits ? Ld : 1.0) * V * f;
  const bool frozen = cfg.lti || mode == ScanMode::LtiFft;
  if (mode == ScanMode::Convolution)  // Toeplitz: K, u, out {d, L}; selective: Δ {L, d}, S {L, d} double
    bytes += frozen ? 3 * Ld * d * f : Ld * d * (f + sizeof(double)) + (Ld / 256 + 1) * d * sizeof(double);
  if (mode == ScanMode::LtiFft) {  // K, u {d, M + 2} in place, and about as much for cuFFT's work area
    double M = 2;
    while (M < 2 * Ld) M *= 2;
    bytes += 3 * (M + 2) * d * f;
  }
  return size_t(bytes);
}

}  // namespace mambascope::lab
