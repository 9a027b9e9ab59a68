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
#include <cuda_runtime.h>

#include "cuda/cuda_backend.hpp"
#include "cuda/cuda_check.hpp"
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

// `--models 2.8b:ops` (bench_prefill_ops.cpp).
void bench_prefill_ops(const Options& o, const std::string& name);

std::unique_ptr<Checkpoint> checkpoint_for(const Options& o, const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(o.dir) / (name + "-bf16");
  if (!std::filesystem::exists(dir / "model.safetensors")) {
    const auto t0 = Clock::now();
    write_random_checkpoint(dir, mamba_shape(name), DType::BF16, 1);
    emit({{"bench", "write_checkpoint"}, {"model", name}, {"ms", ms_since(t0)}});
  }
  return Checkpoint::open(dir);
}

// Median wall time of a Scan-mode forward over L tokens from a fresh state (the forward call
// returns after the last token's logits are on the host). Also bench_prefill_ops.cpp's.
double prefill_ms(Backend& be, int64_t L, int64_t vocab, int reps, int warmup) {
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

namespace {

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
    const double ms = prefill_ms(*be, L, c.vocab_size, std::max(3, o.reps / 2), 2);
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
