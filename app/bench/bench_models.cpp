// Decode tokens/s and prefill ms at the real Mamba-1 shapes with random bf16 weights (GPU), and
// the CPU backend on the 130m shape, next to the official mamba_ssm numbers (ANCHORS.md).
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "bench.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/random_checkpoint.hpp"
#include "mambascope/sampler.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdlib>
#include <cstring>

#include "cuda/cuda_backend.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/fill.hpp"
#include "cuda/ops.hpp"
#include "cuda/scan.hpp"
#endif

namespace mambascope::bench {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Official {
  double decode_tok_s, prefill_2048_ms, prefill_8192_ms;
};
Official official(const std::string& m) {
  if (m == "130m") return {713, 22.1, 22.5};
  if (m == "1.4b") return {360, 28.9, 69.1};
  if (m == "2.8b") return {254, 37.1, 124.1};
  return {NAN, NAN, NAN};
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab) {
  std::mt19937 rng(123);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

}  // namespace

std::unique_ptr<Checkpoint> checkpoint_for(const Options& o, const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(o.dir) / (name + "-bf16");
  if (!std::filesystem::exists(dir / "model.safetensors")) {
    const auto t0 = Clock::now();
    write_random_checkpoint(dir, mamba_shape(name), DType::BF16, 1);
    emit({{"bench", "write_checkpoint"}, {"model", name}, {"ms", ms_since(t0)}});
  }
  return Checkpoint::open(dir);
}

namespace {

// Median wall time of a Scan-mode forward over L tokens from a fresh state (the forward call
// returns after the last token's logits are on the host).
double prefill_ms(Backend& be, int64_t L, int64_t vocab, int reps, int warmup = 2) {
  const auto ids = random_tokens(L, vocab);
  std::vector<double> ms;
  std::vector<float> logits;
  ForwardOptions o;
  for (int i = 0; i < reps + warmup; ++i) {
    auto st = be.new_state();
    const auto t0 = Clock::now();
    be.forward(ids, *st, o, logits);
    if (i >= warmup) ms.push_back(ms_since(t0));
  }
  return median(ms);
}

#if MAMBASCOPE_HAVE_CUDA
// `--models 2.8b:ops`: one L = 8192 prefill of the shape between cudaProfilerStart/Stop (for
// `ncu --profile-from-start off`; with MAMBASCOPE_OPS_PROFILE_ONLY set it stops there), then
// each of a layer's ops on random bf16 data timed alone with CUDA events (median of 10),
// out_proj with a bf16 output too (what the fp32 residual epilogue costs), and each projection
// under each of cuBLASLt's heuristic candidates (whether another tile or split beats
// cublasGemmEx's own choice, above all for the thin x_proj and dt_proj).
void bench_prefill_ops(const Options& o, const std::string& name) {
  using namespace mambascope::cuda;
  const int64_t L = 8192;
  {
    auto ck = checkpoint_for(o, name);
    auto be = make_cuda_backend(*ck);
    const auto ids = random_tokens(L, ck->config().vocab_size);
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
                K = c.d_conv;
  const DType bf = DType::BF16;
  std::vector<void*> bufs;
  auto alloc = [&](DType dt, int64_t n, float mean, float sd) {
    void* p = nullptr;
    MS_CUDA_CHECK(cudaMalloc(&p, size_t(n) * dtype_size(dt)));
    fill_random(p, dt, size_t(n), bufs.size() + 7, mean, sd, nullptr);
    bufs.push_back(p);
    return p;
  };
  float* resid = static_cast<float*>(alloc(DType::F32, L * dm, 0, 1));  // {L, d_model}
  void* hidden = alloc(bf, L * dm, 0, 1);                                 // {L, d_model}
  char* xz = static_cast<char*>(alloc(bf, L * 2 * di, 0, 1));            // {L, 2 d_inner}
  void* x = alloc(bf, L * di, 0, 1);                                      // {L, d_inner}
  char* xdbl = static_cast<char*>(alloc(bf, L * xr, 0, 1));              // {L, R + 2N}
  void* dtb = alloc(bf, L * di, 0, 1);                                    // {L, d_inner}
  void* y = alloc(bf, L * di, 0, 1);                                      // {L, d_inner}
  void* yb = alloc(bf, L * dm, 0, 1);                                     // {L, d_model}
  // weights {out_f, in_f}; norm, conv {d_inner, K}, A {d_inner, N} etc. as in the checkpoint
  void* w_in = alloc(bf, 2 * di * dm, 0, 0.02f);
  void* w_x = alloc(bf, xr * di, 0, 0.02f);
  void* w_dt = alloc(bf, di * R, 0, 0.02f);
  void* w_out = alloc(bf, dm * di, 0, 0.02f);
  float* norm_w = static_cast<float*>(alloc(DType::F32, dm, 1, 0.1f));
  float* conv_w = static_cast<float*>(alloc(DType::F32, di * K, 0, 0.3f));
  float* conv_b = static_cast<float*>(alloc(DType::F32, di, 0, 0.1f));
  float* conv_s = static_cast<float*>(alloc(DType::F32, di * (K - 1), 0, 1));
  float* A = static_cast<float*>(alloc(DType::F32, di * N, -2, 0.3f));
  float* D = static_cast<float*>(alloc(DType::F32, di, 1, 0.1f));
  float* dt_bias = static_cast<float*>(alloc(DType::F32, di, -4, 0.5f));
  float* h = static_cast<float*>(alloc(DType::F32, di * N, 0, 0));
  cublasHandle_t blas;
  MS_CUDA_CHECK(cublasCreate(&blas));
  cudaStream_t s;
  MS_CUDA_CHECK(cudaStreamCreate(&s));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  auto timed = [&](auto&& f) {
    for (int i = 0; i < 3; ++i) f();
    std::vector<double> ms;
    for (int i = 0; i < 10; ++i) {
      cudaEventRecord(e0, s);
      f();
      cudaEventRecord(e1, s);
      cudaEventSynchronize(e1);
      float m = 0;
      cudaEventElapsedTime(&m, e0, e1);
      ms.push_back(m);
    }
    MS_CUDA_CHECK(cudaStreamSynchronize(s));
    return median(ms);
  };
  auto report = [&](const std::string& op, double ms, double flop) {
    emit({{"bench", "prefill_op"}, {"model", name}, {"L", L}, {"op", op}, {"ms", ms},
          {"tflop_s", flop > 0 ? flop / (ms * 1e9) : 0.0}});
  };
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
  p.dt_bias = dt_bias;
  p.A = A;
  p.D = D;
  p.h = h;
  p.y = y; p.ldy = di;
  struct Gemm {
    std::string op;
    const void* x; int64_t ldx; const void* W; int64_t in_f, out_f; void* y; DType ydt; int64_t ldy;
    float beta;
  };
  const std::vector<Gemm> gemms = {
      {"in_proj", hidden, dm, w_in, dm, 2 * di, xz, bf, 2 * di, 0.f},
      {"x_proj", x, di, w_x, di, xr, xdbl, bf, xr, 0.f},
      {"dt_proj", xdbl, xr, w_dt, R, di, dtb, bf, di, 0.f},
      {"out_proj", y, di, w_out, di, dm, resid, DType::F32, dm, 1.f},
      {"out_proj_bf16_out", y, di, w_out, di, dm, yb, bf, dm, 0.f},
  };
  report("add_rms_norm", timed([&] { add_rms_norm(resid, nullptr, norm_w, 1e-5f, L, dm, hidden, bf, dm, s); }), 0);
  report("conv1d_silu", timed([&] { conv1d_causal_silu(xz, 2 * di, conv_s, conv_w, conv_b, L, di, K, x, bf, s); }), 0);
  report("selective_scan", timed([&] { selective_scan(p, s); }), 0);
  for (const Gemm& g : gemms) {
    const double flop = 2.0 * double(L) * double(g.in_f) * double(g.out_f);
    report(g.op, timed([&] {
             linear(blas, g.x, g.ldx, g.W, bf, L, g.in_f, g.out_f, g.y, g.ydt, g.ldy, g.beta, s);
           }), flop);
  }
  cublasLtHandle_t lt;
  MS_CUDA_CHECK(cublasLtCreate(&lt));
  const size_t ws_bytes = size_t(32) << 20;
  void* ws = alloc(DType::F32, int64_t(ws_bytes / 4), 0, 0);
  for (const Gemm& g : gemms) {
    if (g.op == "out_proj_bf16_out") continue;
    // Row-major y {L, out_f} = x W^T is column-major y^T = (W^T)^T x^T, as in cuda::linear.
    cublasLtMatmulDesc_t desc;
    MS_CUDA_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    MS_CUDA_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    MS_CUDA_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtMatrixLayout_t la, lb, lc;
    MS_CUDA_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, uint64_t(g.in_f), uint64_t(g.out_f), g.in_f));
    MS_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, uint64_t(g.in_f), uint64_t(L), g.ldx));
    MS_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lc, g.ydt == DType::F32 ? CUDA_R_32F : CUDA_R_16BF,
                                             uint64_t(g.out_f), uint64_t(L), g.ldy));
    cublasLtMatmulPreference_t pref;
    MS_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    MS_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &ws_bytes, sizeof ws_bytes));
    cublasLtMatmulHeuristicResult_t res[16];
    int n = 0;
    MS_CUDA_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 16, res, &n));
    const float one = 1.f;
    const double flop = 2.0 * double(L) * double(g.in_f) * double(g.out_f);
    for (int i = 0; i < n; ++i) {
      int tile = 0, splitk = 0, algo = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, nullptr);
      cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, nullptr);
      cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_ID, &algo, sizeof algo, nullptr);
      const double ms = timed([&] {
        MS_CUDA_CHECK(cublasLtMatmul(lt, desc, &one, g.W, la, g.x, lb, &g.beta, g.y, lc, g.y, lc,
                                     &res[i].algo, ws, ws_bytes, s));
      });
      emit({{"bench", "prefill_op_lt"}, {"model", name}, {"L", L}, {"op", g.op}, {"candidate", i},
            {"algo", algo}, {"tile", tile}, {"splitk", splitk}, {"workspace", double(res[i].workspaceSize)},
            {"ms", ms}, {"tflop_s", flop / (ms * 1e9)}});
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
  }
  cublasLtDestroy(lt);
  report("layer (the ops above in order)", timed([&] {
           add_rms_norm(resid, nullptr, norm_w, 1e-5f, L, dm, hidden, bf, dm, s);
           linear(blas, hidden, dm, w_in, bf, L, dm, 2 * di, xz, bf, 2 * di, 0.f, s);
           conv1d_causal_silu(xz, 2 * di, conv_s, conv_w, conv_b, L, di, K, x, bf, s);
           linear(blas, x, di, w_x, bf, L, di, xr, xdbl, bf, xr, 0.f, s);
           linear(blas, xdbl, xr, w_dt, bf, L, R, di, dtb, bf, di, 0.f, s);
           selective_scan(p, s);
           linear(blas, y, di, w_out, bf, L, di, dm, resid, DType::F32, dm, 1.f, s);
         }), 0);
  for (void* b : bufs) cudaFree(b);
  cublasDestroy(blas);
  cudaStreamDestroy(s);
}
#endif

void bench_gpu(const Options& o, const std::string& name) {
#if MAMBASCOPE_HAVE_CUDA
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ":ops") == 0)
    return bench_prefill_ops(o, name.substr(0, name.size() - 4));
  auto ck = checkpoint_for(o, name);
  const ModelConfig& c = ck->config();
  auto t0 = Clock::now();
  auto be = make_cuda_backend(*ck);
  emit({{"bench", "load"}, {"model", name}, {"backend", "cuda"}, {"ms", ms_since(t0)},
        {"params", ck->parameter_count()}});
  const Official off = official(name);
  for (int64_t L : {int64_t(2048), int64_t(8192)}) {
    if (o.decode_only) break;
    const double ms = prefill_ms(*be, L, c.vocab_size, std::max(3, o.reps / 2));
    const double offm = L == 2048 ? off.prefill_2048_ms : off.prefill_8192_ms;
    emit({{"bench", "prefill"}, {"model", name}, {"backend", "cuda"}, {"L", L}, {"ms", ms},
          {"official_ms", offm}, {"speedup_vs_official", offm / ms}});
  }
  if (o.long_prefill && name == "2.8b") {
    const int64_t L = 131072;
    size_t f0 = 0, tot = 0;
    cudaMemGetInfo(&f0, &tot);
    const double ms = prefill_ms(*be, L, c.vocab_size, 1, 0);
    size_t f1 = 0;
    cudaMemGetInfo(&f1, &tot);
    emit({{"bench", "prefill"}, {"model", name}, {"backend", "cuda"}, {"L", L}, {"ms", ms},
          {"activation_bytes", double(f0) - double(f1)}, {"gpu_memory_total", double(tot)}});
  }
  if (std::getenv("MAMBASCOPE_BENCH_PREFILL_ONLY")) return;  // prefill tuning runs
  // Decode: sampling and the alternatives on the GPU, one graph replay per token; the fused
  // step (where it runs) and the per-layer kernels, greedy, then sampling over the vocabulary.
  auto st = be->new_state();
  std::vector<float> logits;
  const auto prompt = random_tokens(16, c.vocab_size);
  be->forward(prompt, *st, ForwardOptions{}, logits);
  int32_t last = prompt.back();
  auto count = [&](const cuda::GpuToken& t) { last = t.id; return true; };
  auto rate = [&](const SamplingParams& sp) {
    cuda::generate_on_gpu(*be, *st, last, 16, sp, count);  // warm-up: graph capture
    std::vector<double> rates;
    for (int r = 0; r < 3; ++r) {
      const auto t1 = Clock::now();
      cuda::generate_on_gpu(*be, *st, last, o.decode_tokens, sp, count);
      rates.push_back(o.decode_tokens / (ms_since(t1) * 1e-3));
    }
    return median(rates);
  };
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.n_alternatives = 5;
  const std::string path = cuda::decode_path(*be);
  const double tps = rate(greedy);
  emit({{"bench", "decode"}, {"model", name}, {"backend", "cuda"}, {"path", path},
        {"tokens", o.decode_tokens}, {"tok_per_s", tps}, {"us_per_token", 1e6 / tps},
        {"official_tok_per_s", off.decode_tok_s}, {"speedup_vs_official", tps / off.decode_tok_s},
        {"sampling", "greedy + top-5 alternatives on GPU"}});
  auto profile = [&] {
    const auto prof = cuda::profile_decode(*be, *st, last, 64);
    if (prof.empty()) return;
    nlohmann::json phases = nlohmann::json::object();
    for (const auto& p : prof) phases[p.name] = p.us_per_token;
    emit({{"bench", "decode_profile"}, {"model", name}, {"us_per_token_block0", phases}});
  };
  // MAMBASCOPE_BENCH_QUICK: the greedy rate and the profile only (tuning sweeps of the fused step).
  if (std::getenv("MAMBASCOPE_BENCH_QUICK")) return profile();
  SamplingParams full;  // temperature over the whole vocabulary: top-p with no top-k
  full.temperature = 0.8f;
  full.top_k = 0;
  full.top_p = 0.95f;
  full.repetition_penalty = 1.1f;
  full.n_alternatives = 5;
  const double tps_full = rate(full);
  emit({{"bench", "decode"}, {"model", name}, {"backend", "cuda"}, {"path", path},
        {"tok_per_s", tps_full}, {"us_per_token", 1e6 / tps_full},
        {"sampling", "T 0.8, top-p 0.95 over the whole vocabulary, penalty 1.1, top-5 alternatives"}});
  profile();
  if (path == "fused") {
    cuda::use_fused_decode(*be, false);
    const double tk = rate(greedy);
    emit({{"bench", "decode"}, {"model", name}, {"backend", "cuda"}, {"path", "kernels"},
          {"tok_per_s", tk}, {"us_per_token", 1e6 / tk}, {"sampling", "greedy + top-5 alternatives on GPU"}});
    cuda::use_fused_decode(*be, true);
  }
#else
  (void)o;
  throw std::runtime_error("this build has no CUDA backend; only --cpu runs (model " + name + ")");
#endif
}

void bench_cpu(const Options& o) {
  auto ck = checkpoint_for(o, "130m");
  const ModelConfig& c = ck->config();
  auto t0 = Clock::now();
  auto be = make_cpu_backend(*ck);
  emit({{"bench", "load"}, {"model", "130m"}, {"backend", "cpu"}, {"ms", ms_since(t0)},
        {"threads", be->device().threads}, {"cpu", be->device().name}});
  // 512 tokens: issue 2's CPU goal (>= 150 tok/s); 2048: beside the transformers anchor.
  for (int64_t L : {int64_t(512), int64_t(2048)}) {
    const double ms = prefill_ms(*be, L, c.vocab_size, L == 512 ? 3 : 1, L == 512 ? 1 : 0);
    emit({{"bench", "prefill"}, {"model", "130m"}, {"backend", "cpu"}, {"L", L}, {"ms", ms},
          {"tok_per_s", double(L) / (ms * 1e-3)}, {"hf_pytorch_gpu_ms_at_2048", 2779}});
  }
  auto st = be->new_state();
  std::vector<float> logits;
  const auto prompt = random_tokens(16, c.vocab_size);
  ForwardOptions fo;
  be->forward(prompt, *st, fo, logits);
  Sampler sampler(SamplingParams{0.f, 0, 1.f, 0.f, 1.f, 64, 0, 5});
  std::vector<int32_t> hist(prompt);
  fo.mode = ScanMode::Recurrent;
  const int n = 64;
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const int32_t id = sampler.sample(logits, hist);
    hist.push_back(id);
    be->forward(std::span<const int32_t>(&hist.back(), 1), *st, fo, logits);
  }
  const double tps = n / (ms_since(t0) * 1e-3);
  emit({{"bench", "decode"}, {"model", "130m"}, {"backend", "cpu"}, {"tokens", n},
        {"tok_per_s", tps}, {"hf_pytorch_gpu_tok_per_s", 52.7}});
}

}  // namespace

void bench_models(const Options& o) {
  for (const std::string& m : o.models) bench_gpu(o, m);
  if (o.cpu) bench_cpu(o);
}

}  // namespace mambascope::bench
