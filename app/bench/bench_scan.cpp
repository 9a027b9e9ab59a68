// The selective-scan kernel at the anchor shapes (../shared/guide/ANCHORS.md), bf16 I/O, N = 16,
// with z, D, Δ bias and softplus, timed like the anchors: median of CUDA-event timings after
// warm-up, rotating input sets when one set would sit in L2.
#include "bench.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "cuda/cuda_check.hpp"
#include "cuda/fill.hpp"
#include "cuda/scan.hpp"

namespace mambascope::bench {
namespace {

struct Anchor {
  int batch, d;
  int64_t L;
  double official_ms;  // state-spaces/mamba selective_scan_fwd, H200
};
const Anchor kAnchors[] = {
    {1, 4096, 512, 0.0666},   {1, 4096, 2048, 0.1829},  {1, 4096, 8192, 0.739},
    {1, 4096, 32768, 2.956},  {1, 4096, 131072, 11.919}, {1, 5120, 2048, 0.2597},
    {1, 5120, 131072, 15.006}, {1, 1536, 2048, 0.111},  {8, 1536, 2048, 0.4775},
    {8, 4096, 8192, 5.112},
};
// FlashAttention-2 (causal, 32 heads × 64, bf16) at the same L, from the anchors.
double fa2_ms(int64_t L) {
  switch (L) {
    case 512: return 0.0291;
    case 2048: return 0.1084;
    case 8192: return 1.022;
    case 32768: return 14.22;
    case 131072: return 225.4;
    default: return NAN;
  }
}

// exp2f throughput measured on H200 (ANCHORS.md): the exp-bound of the recurrence.
constexpr double kExpPerS = 4.09e12;

struct DeviceMem {
  void* p = nullptr;
  explicit DeviceMem(size_t bytes) { MS_CUDA_CHECK(cudaMalloc(&p, bytes)); }
  ~DeviceMem() { cudaFree(p); }
};

// Device-to-device copy bandwidth (bytes read + written), the bound for a streaming kernel.
double copy_gbps() {
  const size_t bytes = size_t(2) << 30;
  DeviceMem a(bytes), b(bytes);
  MS_CUDA_CHECK(cudaMemset(a.p, 1, bytes));
  cudaEvent_t e0, e1;
  MS_CUDA_CHECK(cudaEventCreate(&e0));
  MS_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<double> ms;
  for (int i = 0; i < 8; ++i) {
    MS_CUDA_CHECK(cudaEventRecord(e0));
    MS_CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice));
    MS_CUDA_CHECK(cudaEventRecord(e1));
    MS_CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    MS_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 2) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 2.0 * bytes / (median(ms) * 1e6);
}

// Median GPU time of `reps` calls enqueued back to back (after 3 unrecorded ones), an event
// pair around each, one wait at the end.
template <typename Call>
double queued_ms(int reps, Call&& call) {
  const int warm = 3, n = warm + reps;
  std::vector<cudaEvent_t> ev(size_t(2 * n));
  for (cudaEvent_t& x : ev) MS_CUDA_CHECK(cudaEventCreate(&x));
  for (int i = 0; i < n; ++i) {
    MS_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i)]));
    call(i);
    MS_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i + 1)]));
  }
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = warm; i < n; ++i) {
    float t = 0;
    MS_CUDA_CHECK(cudaEventElapsedTime(&t, ev[size_t(2 * i)], ev[size_t(2 * i + 1)]));
    ms.push_back(t);
  }
  for (cudaEvent_t x : ev) cudaEventDestroy(x);
  return median(ms);
}

struct InputSet {
  std::unique_ptr<DeviceMem> u, dt, z, bc, y, h, hnorm;
};

}  // namespace

void bench_scan(const Options& o) {
  const double bw = copy_gbps();
  emit({{"bench", "copy"}, {"gbps", bw}});
  const int N = 16;
  DeviceMem A(sizeof(float) * 5120 * N), D(sizeof(float) * 5120), bias(sizeof(float) * 5120);
  {
    std::vector<float> a(5120 * N), dd(5120, 1.f), bb(5120);
    for (int c = 0; c < 5120; ++c) {
      for (int n = 0; n < N; ++n) a[c * N + n] = -float(n + 1);
      const float dt0 = std::exp(std::log(1e-3f) + (std::log(1e-1f) - std::log(1e-3f)) * float(c % 97) / 96.f);
      bb[c] = dt0 + std::log(-std::expm1(-dt0));
    }
    MS_CUDA_CHECK(cudaMemcpy(A.p, a.data(), a.size() * 4, cudaMemcpyHostToDevice));
    MS_CUDA_CHECK(cudaMemcpy(D.p, dd.data(), dd.size() * 4, cudaMemcpyHostToDevice));
    MS_CUDA_CHECK(cudaMemcpy(bias.p, bb.data(), bb.size() * 4, cudaMemcpyHostToDevice));
  }
  cudaEvent_t e0, e1;
  MS_CUDA_CHECK(cudaEventCreate(&e0));
  MS_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<Anchor> anchors(std::begin(kAnchors), std::end(kAnchors));
  // Variants: {states per thread, tile length, chunks of L}, 0 = automatic. Every
  // states-per-thread value at its automatic tile and at each tile length (no chunks), and the
  // automatic choice without chunks and at forced chunk counts, so that it can be checked.
  struct Variant {
    int spt, tile, chunks, spans = 0;
  };
  // The automatic choice is timed last: the first variant timed runs measurably slower (clocks
  // and caches after the input fills), even after the warm-up below.
  // Balanced spans: none, one block per SM at the automatic tile and at 64-token tiles.
  std::vector<Variant> variants = {{0, 0, 1, 1}, {0, 0, 2}, {0, 0, 4}, {0, 0, 8}};
  for (int spt : {1, 2, 4, 8, 16})
    for (int tile : {0, 16, 32, 64, 128}) variants.push_back({spt, tile, 1, 1});
  {
    int sms = 0, dev = 0;
    MS_CUDA_CHECK(cudaGetDevice(&dev));
    MS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    variants.push_back({0, 0, 0, 1});
    variants.push_back({0, 0, 1, sms});
    variants.push_back({0, 64, 1, sms});
  }
  variants.push_back({0, 0, 0});
  // With the probes the scan runs its general variant, one per shape: the automatic choice only.
  if (o.scan_probes) variants = {{0, 0, 0}};
  if (!o.scan_only.empty()) {
    Anchor a{};
    Variant v{};
    const int got = std::sscanf(o.scan_only.c_str(), "%d,%d,%ld,%d,%d,%d,%d", &a.batch, &a.d,
                                &a.L, &v.spt, &v.tile, &v.chunks, &v.spans);
    if (got < 4)
      throw std::runtime_error(
          "--scan-only wants batch,d_inner,L,states_per_thread[,tile_len[,l_chunks[,spans]]]");
    a.official_ms = NAN;
    anchors = {a};
    variants = {v};
  }
  for (const Anchor& an : anchors) {
    const int64_t tok = int64_t(an.batch) * an.L;
    const size_t act = size_t(tok) * an.d * 2;   // one bf16 {batch, L, d} tensor
    const size_t bcb = size_t(tok) * 2 * N * 2;  // B and C {batch, L, 2N}
    const double moved = 4.0 * double(act) + double(bcb);
    const int nsets = int(std::clamp<double>(std::ceil(400e6 / moved), 1, 6));
    std::vector<InputSet> sets(static_cast<size_t>(nsets));
    uint64_t seed = 1;
    for (InputSet& s : sets) {
      s.u = std::make_unique<DeviceMem>(act);
      s.dt = std::make_unique<DeviceMem>(act);
      s.z = std::make_unique<DeviceMem>(act);
      s.y = std::make_unique<DeviceMem>(act);
      s.bc = std::make_unique<DeviceMem>(bcb);
      s.h = std::make_unique<DeviceMem>(sizeof(float) * an.batch * an.d * N);
      if (o.scan_probes) s.hnorm = std::make_unique<DeviceMem>(sizeof(float) * size_t(tok) * an.d);
      cuda::fill_random(s.u->p, DType::BF16, act / 2, seed++, 0.f, 1.f, nullptr);
      cuda::fill_random(s.dt->p, DType::BF16, act / 2, seed++, 0.f, 0.5f, nullptr);
      cuda::fill_random(s.z->p, DType::BF16, act / 2, seed++, 0.f, 1.f, nullptr);
      cuda::fill_random(s.bc->p, DType::BF16, bcb / 2, seed++, 0.f, 1.f, nullptr);
    }
    auto params = [&](const InputSet& s, Variant v) {
      cuda::ScanParams p;
      p.dtype = DType::BF16;
      p.batch = an.batch; p.L = an.L; p.d = an.d; p.N = N;
      p.u = s.u->p; p.ldu = an.d; p.bsu = an.L * an.d;
      p.dt = s.dt->p; p.lddt = an.d; p.bsdt = an.L * an.d;
      p.z = s.z->p; p.ldz = an.d; p.bsz = an.L * an.d;
      p.B = s.bc->p; p.ldb = 2 * N; p.bsb = an.L * 2 * N;
      p.C = static_cast<char*>(s.bc->p) + N * 2; p.ldc = 2 * N; p.bsc = an.L * 2 * N;
      p.A = static_cast<const float*>(A.p);
      p.D = static_cast<const float*>(D.p);
      p.dt_bias = static_cast<const float*>(bias.p);
      p.h = static_cast<float*>(s.h->p);
      p.y = s.y->p; p.ldy = an.d; p.bsy = an.L * an.d;
      p.states_per_thread = v.spt;
      p.tile_len = v.tile;
      p.l_chunks = v.chunks;
      p.spans = v.spans;
      if (s.hnorm) p.hnorm_out = static_cast<float*>(s.hnorm->p);
      return p;
    };
    const int reps = an.L >= 32768 ? std::min(o.reps, 5) : o.reps;
    const double exps = double(tok) * an.d * N;
    const double exp_bound_ms = exps / kExpPerS * 1e3;
    double best_ms = INFINITY, auto_ms = NAN, auto_queued_ms = NAN;
    std::string best_name;
    std::vector<std::tuple<int, int, int, int>> seen;  // (spt, tile, chunks, spans) launched
    // The clocks drop while the inputs are filled: launch the automatic choice for ~30 ms first,
    // so that the first variant timed is not the slowest (it was, by up to 15%).
    {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 400 && std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(30); ++i) {
        cuda::selective_scan(params(sets[size_t(i % nsets)], Variant{0, 0, 0}), nullptr);
        MS_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      }
    }
    for (const Variant v : variants) {
      if (an.L >= 32768 && v.tile != 0 && o.scan_only.empty()) continue;  // long: automatic tiles only
      cuda::ScanConfig cfg{};
      try {
        cfg = cuda::scan_config(params(sets[0], v));
      } catch (const Error&) {
        continue;  // this tile length does not fit in shared memory
      }
      const std::tuple<int, int, int, int> key{cfg.states_per_thread, cfg.tile_len, cfg.l_chunks,
                                               cfg.spans};
      const bool is_auto = v.spt == 0 && v.chunks == 0 && v.spans == 0;
      if (!is_auto && std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
      if (!is_auto) seen.push_back(key);
      std::vector<double> ms;
      for (int i = 0; i < reps + 3; ++i) {
        const cuda::ScanParams p = params(sets[size_t(i % nsets)], v);
        MS_CUDA_CHECK(cudaEventRecord(e0));
        cuda::selective_scan(p, nullptr);
        MS_CUDA_CHECK(cudaEventRecord(e1));
        MS_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        MS_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (i >= 3) ms.push_back(t);
      }
      const double m = median(ms);
      // The same calls queued back to back with an event pair around each and one wait at the
      // end (as triton's do_bench and a PyTorch loop of event pairs time): the host's launch
      // path then runs ahead of the GPU and stays out of the timed windows, which hold the
      // GPU's time for the call. The isolated figure above also holds the launch latency of an
      // idle GPU (~5 µs): it is the one the targets are judged on.
      const double mq = queued_ms(reps, [&](int i) {
        cuda::selective_scan(params(sets[size_t(i % nsets)], v), nullptr);
      });
      const std::string name = is_auto ? "auto"
                               : "spt" + std::to_string(cfg.states_per_thread) + "_tt" +
                                     std::to_string(cfg.tile_len) + "_k" +
                                     std::to_string(cfg.l_chunks) + "_s" +
                                     std::to_string(cfg.spans);
      if (is_auto) auto_ms = m, auto_queued_ms = mq;
      if (m < best_ms) best_ms = m, best_name = name;
      emit({{"bench", "scan"}, {"batch", an.batch}, {"d_inner", an.d}, {"L", an.L}, {"N", N},
            {"dtype", "bf16"}, {"variant", name}, {"probes", o.scan_probes ? "hnorm" : "none"},
            {"states_per_thread", cfg.states_per_thread},
            {"channels_per_block", cfg.channels_per_block}, {"tile_len", cfg.tile_len},
            {"l_chunks", cfg.l_chunks}, {"spans", cfg.spans},
            {"ms", m}, {"queued_ms", mq}, {"gbps", moved / (m * 1e6)}, {"bandwidth_fraction", moved / (m * 1e6) / bw},
            {"bandwidth_bound_ms", moved / (bw * 1e6)}, {"exp_per_s", exps / (m * 1e-3)},
            {"exp_bound_ms", exp_bound_ms}, {"exp_bound_fraction", exp_bound_ms / m},
            {"official_ms", an.official_ms}, {"speedup_vs_official", an.official_ms / m},
            {"fa2_ms", fa2_ms(an.L)}, {"faster_than_fa2", m < fa2_ms(an.L)}});
    }
    emit({{"bench", "scan_summary"}, {"batch", an.batch}, {"d_inner", an.d}, {"L", an.L},
          {"auto_ms", auto_ms}, {"auto_queued_ms", auto_queued_ms}, {"best_ms", best_ms}, {"best", best_name},
          {"official_ms", an.official_ms}, {"auto_vs_official", an.official_ms / auto_ms},
          {"fa2_ms", fa2_ms(an.L)}, {"auto_vs_fa2", fa2_ms(an.L) / auto_ms},
          {"auto_queued_vs_official", an.official_ms / auto_queued_ms},
          {"auto_queued_vs_fa2", fa2_ms(an.L) / auto_queued_ms},
          {"exp_bound_ms", exp_bound_ms}, {"auto_exp_bound_fraction", exp_bound_ms / auto_ms}});
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

}  // namespace mambascope::bench

#else
#include <stdexcept>
namespace mambascope::bench {
void bench_scan(const Options&) { throw std::runtime_error("this build has no CUDA backend"); }
}  // namespace mambascope::bench
#endif
