// `mambascope-bench --models 2.8b:ops`: one prefill layer's ops at L = 8192 timed alone, the
// projections (at 2048 and 8192 rows) under the GEMM table (gemm_table.hpp) and under
// cublasGemmEx, every cuBLASLt heuristic candidate with its full configuration (what a table
// entry is made from), the scan with the model's operand layout and with contiguous ones, the
// layers in a row with one weight set or their own, and the model's prefill under each GEMM
// choice in turns (the sustained prefill runs at the power cap, so its clocks drift).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/random_checkpoint.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include "cuda/cuda_backend.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/fill.hpp"
#include "cuda/gemm_table.hpp"
#include "cuda/ops.hpp"
#include "cuda/scan.hpp"

namespace mambascope::bench {
namespace {

using namespace mambascope::cuda;

// Device buffers of random values, freed together.
struct Buffers {
  std::vector<void*> all;
  ~Buffers() { release(); }
  void release() {
    for (void* b : all) cudaFree(b);
    all.clear();
  }
  void* alloc(DType dt, int64_t n, float mean, float sd) {
    void* p = nullptr;
    MS_CUDA_CHECK(cudaMalloc(&p, size_t(n) * dtype_size(dt)));
    fill_random(p, dt, size_t(n), all.size() + 7, mean, sd, nullptr);
    all.push_back(p);
    return p;
  }
};

// Median of `reps` CUDA-event timings of f() on s after `warm` untimed calls, in ms.
template <typename F>
double event_ms(cudaStream_t s, F&& f, int reps = 10, int warm = 3) {
  cudaEvent_t e0, e1;
  MS_CUDA_CHECK(cudaEventCreate(&e0));
  MS_CUDA_CHECK(cudaEventCreate(&e1));
  for (int i = 0; i < warm; ++i) f();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    MS_CUDA_CHECK(cudaEventRecord(e0, s));
    f();
    MS_CUDA_CHECK(cudaEventRecord(e1, s));
    MS_CUDA_CHECK(cudaEventSynchronize(e1));
    float m = 0;
    MS_CUDA_CHECK(cudaEventElapsedTime(&m, e0, e1));
    ms.push_back(m);
  }
  MS_CUDA_CHECK(cudaStreamSynchronize(s));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return median(ms);
}

nlohmann::json cfg_json(const LtAlgoConfig& k) {
  return {k.algo, k.tile, k.stages, k.splitk, k.reduction, k.swizzle, k.custom, k.inner_shape, k.cluster_shape};
}

// One layer's weights {out_f, in_f} (bf16) and parameters, as the checkpoint has them.
struct LayerWeights {
  void *in, *x, *dt, *out;
  float *norm, *conv_w, *conv_b, *A, *D, *dt_bias;
};

}  // namespace

// bench_models.cpp: median wall time of a scan-mode prefill of L tokens from a fresh state.
double prefill_ms(Backend& be, int64_t L, int64_t vocab, int reps, int warmup);

void bench_prefill_ops(const Options& o, const std::string& name) {
  const int64_t L = 8192;
  {
    auto ck = checkpoint_for(o, name);
    auto be = make_cuda_backend(*ck);
    std::vector<int32_t> ids(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) ids[size_t(i)] = int32_t((i * 7919) % ck->config().vocab_size);
    std::vector<float> logits;
    for (int i = 0; i < 2; ++i) {
      auto st = be->new_state();
      if (i == 1) cudaProfilerStart();
      be->forward(ids, *st, ForwardOptions{}, logits);
      if (i == 1) cudaProfilerStop();
    }
  }
  if (std::getenv("MAMBASCOPE_OPS_PROFILE_ONLY")) return;
  const ModelConfig c = mamba_shape(name);
  const int64_t dm = c.d_model, di = c.d_inner, N = c.d_state, R = c.dt_rank, xr = c.x_proj_rows(),
                K = c.d_conv, nl = c.n_layer;
  const DType bf = DType::BF16;
  Buffers b;
  float* resid = static_cast<float*>(b.alloc(DType::F32, L * dm, 0, 1));  // {L, d_model}
  void* hidden = b.alloc(bf, L * dm, 0, 1);                                 // {L, d_model}
  char* xz = static_cast<char*>(b.alloc(bf, L * 2 * di, 0, 1));            // {L, 2 d_inner}
  void* x = b.alloc(bf, L * di, 0, 1);                                      // {L, d_inner}
  char* xdbl = static_cast<char*>(b.alloc(bf, L * xr, 0, 1));              // {L, R + 2N}
  void* dtb = b.alloc(bf, L * di, 0, 1);                                    // {L, d_inner}
  void* y = b.alloc(bf, L * di, 0, 1);                                      // {L, d_inner}
  void* zc = b.alloc(bf, L * di, 0, 1);                                     // {L, d_inner}: z alone
  char* bc = static_cast<char*>(b.alloc(bf, L * 2 * N, 0, 1));             // {L, 2N}: B, C alone
  float* h = static_cast<float*>(b.alloc(DType::F32, di * N, 0, 0));       // {d_inner, N}
  float* conv_s = static_cast<float*>(b.alloc(DType::F32, di * (K - 1), 0, 1));
  auto layer_weights = [&] {
    LayerWeights w;
    w.in = b.alloc(bf, 2 * di * dm, 0, 0.02f);
    w.x = b.alloc(bf, xr * di, 0, 0.02f);
    w.dt = b.alloc(bf, di * R, 0, 0.02f);
    w.out = b.alloc(bf, dm * di, 0, 0.02f);
    w.norm = static_cast<float*>(b.alloc(DType::F32, dm, 1, 0.1f));
    w.conv_w = static_cast<float*>(b.alloc(DType::F32, di * K, 0, 0.3f));
    w.conv_b = static_cast<float*>(b.alloc(DType::F32, di, 0, 0.1f));
    w.A = static_cast<float*>(b.alloc(DType::F32, di * N, -2, 0.3f));
    w.D = static_cast<float*>(b.alloc(DType::F32, di, 1, 0.1f));
    w.dt_bias = static_cast<float*>(b.alloc(DType::F32, di, -4, 0.5f));
    return w;
  };
  const LayerWeights w0 = layer_weights();
  cublasHandle_t blas;
  MS_CUDA_CHECK(cublasCreate(&blas));
  cudaStream_t s;
  MS_CUDA_CHECK(cudaStreamCreate(&s));
  auto report = [&](const std::string& op, int64_t rows, double ms, double flop,
                    nlohmann::json extra = nlohmann::json::object()) {
    extra["bench"] = "prefill_op";
    extra["model"] = name;
    extra["L"] = rows;
    extra["op"] = op;
    extra["ms"] = ms;
    extra["tflop_s"] = flop > 0 ? flop / (ms * 1e9) : 0.0;
    emit(extra);
  };
  auto scan_params = [&](const LayerWeights& w) {
    ScanParams p;
    p.dtype = bf;
    p.L = L;
    p.d = int(di);
    p.N = int(N);
    p.u = x; p.ldu = di;
    p.z = xz + di * 2; p.ldz = 2 * di;
    p.dt = dtb; p.lddt = di;
    p.B = xdbl + R * 2; p.ldb = xr;
    p.C = xdbl + (R + N) * 2; p.ldc = xr;
    p.dt_bias = w.dt_bias;
    p.A = w.A;
    p.D = w.D;
    p.h = h;
    p.y = y; p.ldy = di;
    return p;
  };
  const ScanParams p = scan_params(w0);
  report("add_rms_norm", L, event_ms(s, [&] { add_rms_norm(resid, nullptr, w0.norm, 1e-5f, L, dm, hidden, bf, dm, s); }), 0);
  report("conv1d_silu", L, event_ms(s, [&] { conv1d_causal_silu(xz, 2 * di, conv_s, w0.conv_w, w0.conv_b, L, di, K, x, bf, s); }), 0);
  report("selective_scan", L, event_ms(s, [&] { selective_scan(p, s); }), 0);
  // The scan's operands laid out as in the model (z inside xz, B and C inside x_proj's rows)
  // against contiguous ones, as `--scan` has them: what the layout costs.
  {
    ScanParams q = p;
    q.z = zc; q.ldz = di;
    report("selective_scan (z contiguous)", L, event_ms(s, [&] { selective_scan(q, s); }), 0);
    q.B = bc; q.ldb = 2 * N;
    q.C = bc + N * 2; q.ldc = 2 * N;
    report("selective_scan (z, B, C contiguous)", L, event_ms(s, [&] { selective_scan(q, s); }), 0);
    q = p;
    q.B = bc; q.ldb = 2 * N;
    q.C = bc + N * 2; q.ldc = 2 * N;
    report("selective_scan (B, C contiguous)", L, event_ms(s, [&] { selective_scan(q, s); }), 0);
  }
  struct Gemm {
    std::string op;
    const void* x; int64_t ldx; const void* W; int64_t in_f, out_f; void* y; DType ydt; int64_t ldy;
    float beta;
  };
  const std::vector<Gemm> gemms = {
      {"in_proj", hidden, dm, w0.in, dm, 2 * di, xz, bf, 2 * di, 0.f},
      {"x_proj", x, di, w0.x, di, xr, xdbl, bf, xr, 0.f},
      {"dt_proj", xdbl, xr, w0.dt, R, di, dtb, bf, di, 0.f},
      {"out_proj", y, di, w0.out, di, dm, resid, DType::F32, dm, 1.f},
  };
  // The best configuration per projection and row count (2048: an entry for 2048..4095 rows;
  // L: from L rows on), where it beats cublasGemmEx by 2% or more, and what it took.
  std::map<std::pair<std::string, int64_t>, std::pair<GemmTableEntry, double>> best;
  int sm = 0;
  {
    int dev = 0, major = 0, minor = 0;
    MS_CUDA_CHECK(cudaGetDevice(&dev));
    MS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    MS_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    sm = major * 10 + minor;
  }
  auto consider = [&](const std::string& op, const LinearArgs& a, const LtAlgoConfig& cfg, double ms,
                      double gemm_ex_ms) {
    const auto key = std::pair{op, a.n};
    if (ms >= 0.98 * gemm_ex_ms || (best.count(key) && ms >= best[key].second)) return;
    best[key] = {GemmTableEntry{name + " " + op, sm, a.dt, a.ydt, a.out_f, a.in_f, a.n,
                                a.n == L ? int64_t(1) << 40 : 2 * a.n - 1, cfg}, ms};
  };
  for (int64_t rows : {int64_t(2048), L}) {
    for (const Gemm& g : gemms) {
      const double flop = 2.0 * double(rows) * double(g.in_f) * double(g.out_f);
      const LinearArgs args{g.x, g.ldx, g.W, bf, rows, g.in_f, g.out_f, g.y, g.ydt, g.ldy, g.beta};
      std::string entry;
      const bool covered = gemm_table_covers(args, &entry);
      auto lin = [&] { linear(blas, g.x, g.ldx, g.W, bf, rows, g.in_f, g.out_f, g.y, g.ydt, g.ldy, g.beta, s); };
      set_gemm_table_enabled(false);
      const double gemm_ex_ms = event_ms(s, lin);
      report(g.op, rows, gemm_ex_ms, flop, {{"gemm", "cublasGemmEx"}});
      set_gemm_table_enabled(true);
      if (covered) report(g.op, rows, event_ms(s, lin), flop, {{"gemm", "table"}, {"entry", entry}});
      // cuBLASLt's heuristic candidates, each rebuilt from its configuration (what a table entry
      // holds; session 5's first run found every rebuilt candidate as fast as cuBLASLt's own
      // algorithm object, with its bits).
      const std::vector<LtAlgoConfig> cands = lt_heuristic_configs(args, 16);
      for (size_t i = 0; i < cands.size(); ++i) {
        const LtAlgoConfig& cfg = cands[i];
        nlohmann::json j = {{"gemm", "lt_candidate"}, {"candidate", i}, {"config", to_string(cfg)},
                            {"cfg", cfg_json(cfg)}};
        if (!linear_lt(cfg, args, s)) {
          j["rebuilt"] = "rejected";
          report(g.op, rows, 0, 0, j);
          continue;
        }
        const double ms = event_ms(s, [&] { linear_lt(cfg, args, s); });
        report(g.op, rows, ms, flop, j);
        // A candidate for the table: 2% or more under cublasGemmEx.
        consider(g.op, args, cfg, ms, gemm_ex_ms);
      }
    }
  }
  // The layer's ops in order, then the model's layers in a row (one weight set for all, or one
  // per layer as in the model, where no weight is in L2 from the last call), table on and off.
  auto layer = [&](const LayerWeights& w, const ScanParams& q) {
    add_rms_norm(resid, nullptr, w.norm, 1e-5f, L, dm, hidden, bf, dm, s);
    linear(blas, hidden, dm, w.in, bf, L, dm, 2 * di, xz, bf, 2 * di, 0.f, s);
    conv1d_causal_silu(xz, 2 * di, conv_s, w.conv_w, w.conv_b, L, di, K, x, bf, s);
    linear(blas, x, di, w.x, bf, L, di, xr, xdbl, bf, xr, 0.f, s);
    linear(blas, xdbl, xr, w.dt, bf, L, R, di, dtb, bf, di, 0.f, s);
    selective_scan(q, s);
    linear(blas, y, di, w.out, bf, L, di, dm, resid, DType::F32, dm, 1.f, s);
  };
  std::vector<LayerWeights> ws_layers = {w0};
  std::vector<ScanParams> ps = {p};
  for (int64_t l = 1; l < nl; ++l) {
    ws_layers.push_back(layer_weights());
    ps.push_back(scan_params(ws_layers.back()));
  }
  for (bool table : {false, true}) {
    set_gemm_table_enabled(table);
    const std::string gemm = table ? "table" : "cublasGemmEx";
    report("layer (the ops above in order)", L, event_ms(s, [&] { layer(w0, p); }), 0, {{"gemm", gemm}});
    report("all layers, one weight set", L, event_ms(s, [&] { for (int64_t l = 0; l < nl; ++l) layer(w0, p); }, 3, 1),
           0, {{"gemm", gemm}, {"layers", nl}});
    report("all layers, own weights", L,
           event_ms(s, [&] { for (int64_t l = 0; l < nl; ++l) layer(ws_layers[size_t(l)], ps[size_t(l)]); }, 3, 1),
           0, {{"gemm", gemm}, {"layers", nl}});
  }
  set_gemm_table_enabled(true);
  cublasDestroy(blas);
  cudaStreamDestroy(s);
  b.release();
  // The model's prefill (wall time of one forward from a fresh state, as `--models` measures
  // it) under each GEMM choice: cublasGemmEx, the built-in table, the table without its
  // out_proj entries, and a table of the best candidates measured above. The choices take
  // turns forward by forward, so that the clocks' drift under sustained load (several % between
  // runs of the same code) falls on all of them alike; the median of each.
  std::vector<GemmTableEntry> measured, no_out;
  for (const auto& [key, e] : best) {
    measured.push_back(e.first);
    const LtAlgoConfig& k = e.first.cfg;
    emit({{"bench", "gemm_table_suggestion"}, {"model", name}, {"op", key.first}, {"L", key.second},
          {"min_rows", e.first.min_rows}, {"max_rows", e.first.max_rows}, {"ms", e.second},
          {"cfg", cfg_json(k)}, {"sm", sm}, {"ydt", dtype_name(e.first.ydt)},
          {"out_f", e.first.out_f}, {"in_f", e.first.in_f}});
  }
  for (const GemmTableEntry& e : builtin_gemm_table())
    if (e.name.find("out_proj") == std::string::npos) no_out.push_back(e);
  struct Mode {
    std::string name;
    const std::vector<GemmTableEntry>* table;  // null: cublasGemmEx throughout
  };
  const std::vector<Mode> modes = {{"cublasGemmEx", nullptr}, {"table", &builtin_gemm_table()},
                                   {"table, out_proj by cublasGemmEx", &no_out}, {"measured", &measured}};
  auto ck = checkpoint_for(o, name);
  auto be = make_cuda_backend(*ck);
  for (int64_t rows : {int64_t(2048), L, 4 * L}) {
    const int reps = rows > L ? 3 : 8;
    std::vector<std::vector<double>> ms(modes.size());
    for (int r = 0; r < reps + 1; ++r)
      for (size_t m = 0; m < modes.size(); ++m) {
        set_gemm_table_enabled(modes[m].table != nullptr);
        if (modes[m].table) set_gemm_table(*modes[m].table);
        const double t = prefill_ms(*be, rows, c.vocab_size, 1, 0);
        if (r > 0) ms[m].push_back(t);  // the first turn warms each choice up
      }
    for (size_t m = 0; m < modes.size(); ++m)
      emit({{"bench", "prefill_gemm_ab"}, {"model", name}, {"L", rows}, {"gemm", modes[m].name},
            {"ms", median(ms[m])}, {"min_ms", *std::min_element(ms[m].begin(), ms[m].end())},
            {"reps", reps}});
  }
  use_builtin_gemm_table();
  set_gemm_table_enabled(true);
}

}  // namespace mambascope::bench
#else
namespace mambascope::bench {
void bench_prefill_ops(const Options&, const std::string&) {}
}  // namespace mambascope::bench
#endif
