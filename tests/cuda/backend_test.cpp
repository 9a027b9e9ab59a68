// The whole CUDA backend against Hugging Face transformers' golden logits, against the CPU
// backend (logits, final state, probes, SSM outputs, residuals) on random checkpoints in every
// dtype, across its own modes (scan vs recurrent, in pieces vs at once), and its GPU decoding
// (greedy equals transformers' greedy; sampling stays inside top-k and is seeded). The prefill's
// memory-bound ops (add + RMSNorm, conv1d + SiLU) against their CPU twins on their own, over the
// shapes that pick each kernel form.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "cuda_test_util.hpp"
#include "engine/hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/random_checkpoint.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cpu/cpu_ops.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/ops.hpp"

namespace mambascope::test {
namespace {

using testing::hf_fixture_cases;
using testing::load_hf_fixture;

std::vector<float> run(Backend& be, BackendState& st, std::span<const int32_t> ids, ScanMode mode,
                       ForwardOptions o = {}) {
  o.mode = mode;
  o.all_logits = true;
  std::vector<float> logits;
  be.forward(ids, st, o, logits);
  return logits;
}

// fp32 checkpoints are compared tightly; bf16/fp16 ones carry the GPU's rounding of activations
// to the storage type (transformers computes in fp32 from the rounded weights).
double logit_tol(DType dt) { return dt == DType::F32 ? 2e-4 : 3e-2; }

class HfGoldenOnGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(HfGoldenOnGpu, ScanAndRecurrentLogitsMatchTransformers) {
  SKIP_WITHOUT_GPU();
  const auto fx = load_hf_fixture(GetParam());
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cuda_backend(*ckpt);
  const double tol = logit_tol(ckpt->storage_dtype());
  for (ScanMode mode : {ScanMode::Scan, ScanMode::Recurrent}) {
    auto st = be->new_state();
    EXPECT_LT(rel_error(run(*be, *st, fx.input_ids, mode), fx.logits), tol) << mode_name(mode);
    EXPECT_EQ(st->position(), int64_t(fx.input_ids.size()));
  }
}

TEST_P(HfGoldenOnGpu, GreedyDecodingOnTheGpuMatchesTransformers) {
  SKIP_WITHOUT_GPU();
  const auto fx = load_hf_fixture(GetParam());
  auto ckpt = Checkpoint::open(fx.dir);
  if (ckpt->storage_dtype() != DType::F32 && fx.min_top2_margin < 0.05f)
    GTEST_SKIP() << "greedy margin too small for reduced precision";
  auto be = make_cuda_backend(*ckpt);
  auto st = be->new_state();
  std::span<const int32_t> ids(fx.input_ids);
  std::vector<float> logits;
  ForwardOptions o;
  be->forward(ids.first(ids.size() - 1), *st, o, logits);
  SamplingParams sp;
  sp.temperature = 0;
  sp.n_alternatives = 3;
  std::vector<int32_t> got;
  cuda::generate_on_gpu(*be, *st, ids.back(), int(fx.greedy.size()), sp, [&](const cuda::GpuToken& t) {
    got.push_back(t.id);
    EXPECT_EQ(t.alternatives.size(), 3u);
    EXPECT_EQ(t.alternatives[0].id, t.id);
    EXPECT_GE(t.alternatives[0].prob, t.alternatives[1].prob);
    EXPECT_GE(t.alternatives[1].prob, t.alternatives[2].prob);
    return true;
  });
  EXPECT_EQ(got, fx.greedy);
}

INSTANTIATE_TEST_SUITE_P(Cases, HfGoldenOnGpu, ::testing::ValuesIn(hf_fixture_cases()));

// Storage-type outputs against an fp32 reference rounded the same way: fp32 differs by the fast
// exp / rsqrt, 16-bit types by a rounding flip here and there.
double op_tol(DType dt) { return dt == DType::F32 ? 1e-5 : 5e-3; }

// residual += x; out = rms_norm(residual) · w, rows of d with out's row stride ldo: the vector
// kernel (d % 4 == 0, aligned rows of up to 16384) and the general one (odd d, ldo not a
// multiple of 4), one row and many, with and without the added x.
TEST(GpuOps, AddRmsNormMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(17);
  struct Case { int64_t n, d, ldo; };
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (Case c : {Case{1, 2560, 2560}, Case{37, 2560, 2564}, Case{5, 768, 768}, Case{3, 4, 4},
                   Case{9, 4100, 4100}, Case{7, 130, 130}, Case{4, 64, 65}, Case{2, 20000, 20000}})
      for (bool with_x : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " n " + std::to_string(c.n) + " d " +
                     std::to_string(c.d) + " ldo " + std::to_string(c.ldo) + (with_x ? " +x" : ""));
        auto resid = randn(size_t(c.n * c.d), rng, 2.f), x = randn(resid.size(), rng);
        const auto w = randn(size_t(c.d), rng, 0.1f, 1.f);
        DeviceBuffer g_resid(resid), g_x(x), g_w(w), g_out(size_t(c.n * c.ldo), dt);
        g_out.poison();
        cuda::add_rms_norm(g_resid.f32(), with_x ? g_x.f32() : nullptr, g_w.f32(), 1e-5f, c.n, c.d,
                           g_out.get(), dt, c.ldo, nullptr);
        MS_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> ref(resid.size());
        cpu::add_rms_norm(resid.data(), with_x ? x.data() : nullptr, w.data(), 1e-5f, c.n, c.d, ref.data());
        round_all(dt, ref);
        const auto all = g_out.download();
        std::vector<float> got(ref.size());
        for (int64_t i = 0; i < c.n; ++i)
          std::copy_n(all.begin() + i * c.ldo, c.d, got.begin() + i * c.d);
        EXPECT_LT(rel_error(got, ref), op_tol(dt));
        EXPECT_LT(rel_error(g_resid.download(), resid), 1e-7);
      }
}

// The causal conv + SiLU in pieces of every size (one token, fewer than k-1, not a multiple of
// any tile), each piece continuing from the state the last one left: the streaming form (rows
// of 16-byte multiples, x with the model's row stride 2d; 136 channels leave a partial chunk),
// the register form with 4 channels a thread (16-bit rows of 24 bytes) and with one (odd d; x
// one element off alignment), widths 2, 4 and 6 (the 9-slot window), bias or none.
TEST(GpuOps, Conv1dSiluInPiecesMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(23);
  struct Case { int64_t d, k, ldx, offset; bool bias; };
  const std::vector<int64_t> pieces = {1, 2, 8, 13, 1, 33, 200};
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (Case c : {Case{136, 4, 272, 0, true}, Case{136, 4, 136, 1, true}, Case{7, 4, 14, 0, true},
                   Case{12, 4, 24, 0, true}, Case{12, 6, 12, 0, true}, Case{136, 2, 272, 0, false},
                   Case{24, 6, 48, 0, true}, Case{5120, 4, 10240, 0, true}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " d " + std::to_string(c.d) + " k " +
                   std::to_string(c.k) + " ldx " + std::to_string(c.ldx) + " offset " +
                   std::to_string(c.offset));
      const int64_t Lmax = 200;
      auto x = randn(size_t(c.offset + Lmax * c.ldx), rng);
      round_all(dt, x);
      const auto w = randn(size_t(c.d * c.k), rng, 0.4f), b = randn(size_t(c.d), rng, 0.1f);
      auto state = randn(size_t(c.d * (c.k - 1)), rng);  // fp32, as decode leaves it
      DeviceBuffer g_x(x, dt), g_w(w), g_b(b), g_state(state), g_out(size_t(Lmax * c.d), dt);
      const void* gx = static_cast<const char*>(g_x.get()) + c.offset * dtype_size(dt);
      for (int64_t L : pieces) {
        SCOPED_TRACE("L " + std::to_string(L));
        g_out.poison();
        cuda::conv1d_causal_silu(gx, c.ldx, g_state.f32(), g_w.f32(), c.bias ? g_b.f32() : nullptr, L,
                                 c.d, c.k, g_out.get(), dt, nullptr);
        MS_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> ref(size_t(L * c.d));
        cpu::conv1d_causal_silu(x.data() + c.offset, c.ldx, state.data(), w.data(),
                                c.bias ? b.data() : nullptr, L, c.d, c.k, ref.data());
        round_all(dt, ref);
        auto got = g_out.download();
        got.resize(ref.size());
        EXPECT_LT(rel_error(got, ref), op_tol(dt));
        EXPECT_EQ(g_state.download(), state);  // copies of inputs: exact
      }
    }
}

// The model's width over strips of several tiles (the streaming form's copy of the next tile
// under this one's math), the last strip and tile short, then a 3-token piece after it.
TEST(GpuOps, Conv1dSiluLongStripsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(31);
  const int64_t d = 5120, k = 4, ldx = 2 * d, L0 = 4133, L1 = 3;
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    auto x = randn(size_t((L0 + L1) * ldx), rng);
    round_all(dt, x);
    const auto w = randn(size_t(d * k), rng, 0.4f), b = randn(size_t(d), rng, 0.1f);
    auto state = randn(size_t(d * (k - 1)), rng);
    DeviceBuffer g_x(x, dt), g_w(w), g_b(b), g_state(state), g_out(size_t(L0 * d), dt);
    int64_t t = 0;
    for (int64_t L : {L0, L1}) {
      g_out.poison();
      const void* gx = static_cast<const char*>(g_x.get()) + t * ldx * dtype_size(dt);
      cuda::conv1d_causal_silu(gx, ldx, g_state.f32(), g_w.f32(), g_b.f32(), L, d, k, g_out.get(), dt, nullptr);
      std::vector<float> ref(size_t(L * d));
      cpu::conv1d_causal_silu(x.data() + t * ldx, ldx, state.data(), w.data(), b.data(), L, d, k, ref.data());
      round_all(dt, ref);
      auto got = g_out.download();
      got.resize(ref.size());
      EXPECT_LT(rel_error(got, ref), op_tol(dt)) << "L " << L;
      EXPECT_EQ(g_state.download(), state);
      t += L;
    }
  }
}

// More token tiles than the grid holds (65535): the blocks loop over the rest. The register
// form (x one element off alignment) at 8 tokens a tile, the streaming form at 64 (fp32).
TEST(GpuOps, Conv1dSiluOverMoreTilesThanTheGrid) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(29);
  struct Case { int64_t L, d, offset; };
  for (Case c : {Case{530001, 8, 1}, Case{4194500, 4, 0}}) {
    SCOPED_TRACE("L " + std::to_string(c.L) + " d " + std::to_string(c.d));
    const int64_t k = 4;
    const auto x = randn(size_t(c.offset + c.L * c.d), rng), w = randn(size_t(c.d * k), rng, 0.4f),
               b = randn(size_t(c.d), rng, 0.1f);
    auto state = randn(size_t(c.d * (k - 1)), rng);
    DeviceBuffer g_x(x), g_w(w), g_b(b), g_state(state), g_out(size_t(c.L * c.d));
    g_out.poison();
    cuda::conv1d_causal_silu(g_x.f32() + c.offset, c.d, g_state.f32(), g_w.f32(), g_b.f32(), c.L, c.d,
                             k, g_out.get(), DType::F32, nullptr);
    std::vector<float> ref(size_t(c.L * c.d));
    cpu::conv1d_causal_silu(x.data() + c.offset, c.d, state.data(), w.data(), b.data(), c.L, c.d, k,
                            ref.data());
    EXPECT_LT(rel_error(g_out.download(), ref), 1e-5);
    EXPECT_EQ(g_state.download(), state);
  }
}

// The small test shape: d_inner 136 is not a multiple of the scan's channel block.
ModelConfig small_config(int n_layer) {
  ModelConfig c;
  c.d_model = 64; c.n_layer = n_layer; c.vocab_size = 300; c.d_state = 16; c.d_conv = 4;
  c.expand = 2; c.d_inner = 136; c.dt_rank = 4;
  c.use_bias = false; c.use_conv_bias = true; c.tie_embeddings = true;
  return c;
}

// A small random model (written once per dtype).
const Checkpoint& random_model(DType dt, bool lti = false) {
  ModelConfig c = small_config(3);
  c.lti = lti;
  return random_checkpoint(lti ? "cuda_test_lti" : "cuda_test", c, dt, 42);
}

class GpuVsCpu : public ::testing::TestWithParam<std::tuple<DType, bool>> {};

TEST_P(GpuVsCpu, LogitsStateSsmOutputsResidualsAndProbesAgree) {
  SKIP_WITHOUT_GPU();
  auto [dt, lti] = GetParam();
  const Checkpoint& ck = random_model(dt, lti);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto ids = random_tokens(77, 300, 3);
  std::vector<float> so_g, so_c, re_g, re_c;
  ProbePolicy pol;
  pol.enabled = true;
  pol.capture_h = true;
  pol.h_layers = {1};
  ProbeRecorder pg(pol), pc(pol);
  auto sg = gpu->new_state(), sc = cpu->new_state();
  ForwardOptions og, oc;
  og.ssm_outputs = &so_g; og.residuals = &re_g; og.probes = &pg;
  oc.ssm_outputs = &so_c; oc.residuals = &re_c; oc.probes = &pc;
  const double tol = dt == DType::F32 ? 2e-4 : 3e-2;
  for (ScanMode mode : {ScanMode::Scan, ScanMode::Recurrent}) {
    pg.clear(); pc.clear();
    sg = gpu->new_state(); sc = cpu->new_state();
    EXPECT_LT(rel_error(run(*gpu, *sg, ids, mode, og), run(*cpu, *sc, ids, ScanMode::Scan, oc)), tol);
    EXPECT_LT(rel_error(so_g, so_c), tol);
    EXPECT_LT(rel_error(re_g, re_c), tol);
    const HostState hg = sg->to_host(), hc = sc->to_host();
    EXPECT_EQ(hg.position, hc.position);
    EXPECT_LT(rel_error(hg.ssm, hc.ssm), tol);
    EXPECT_LT(rel_error(hg.conv, hc.conv), tol);
    expect_probes_match(pg, pc, tol, 19);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GpuVsCpu,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Bool()));

TEST(GpuBackend, PrefillInPiecesAndClonedStatesContinueIdentically) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = random_model(DType::F32);
  auto be = make_cuda_backend(ck);
  const auto ids = random_tokens(150, 300, 5);
  std::span<const int32_t> all(ids);
  auto whole = be->new_state();
  const auto ref = run(*be, *whole, all, ScanMode::Scan);
  auto st = be->new_state();
  run(*be, *st, all.first(65), ScanMode::Scan);
  auto fork = st->clone();
  auto rest = run(*be, *st, all.subspan(65), ScanMode::Scan);
  auto rest2 = run(*be, *fork, all.subspan(65), ScanMode::Recurrent);
  const std::vector<float> tail(ref.end() - rest.size(), ref.end());
  EXPECT_LT(rel_error(rest, tail), 1e-4);
  EXPECT_LT(rel_error(rest2, tail), 1e-4);
}

// A prefill that wants only the last token's logits runs the last layer's gate half of in_proj
// and its out_proj for that token alone (the other rows' gates and outputs are never read): its
// logits and state equal those of the same prefill asked for every token's logits (the full
// computation), against the CPU too, in every dtype, mode that prefills and a one-layer model
// (whose gate rows start as whatever the buffer held), also after a decode step from that state.
TEST(GpuBackend, LastLogitsOnlyPrefillEqualsTheFullOne) {
  SKIP_WITHOUT_GPU();
  ModelConfig one = small_config(1);
  one.d_inner = 128;
  for (DType dt : {DType::F32, DType::BF16}) {
    // Against the CPU as GpuVsCpu; against the full prefill tighter: only the GEMMs' shapes (and
    // so cuBLAS's summation order) differ, then bf16's rounding of in_proj's outputs.
    const double tol = dt == DType::F32 ? 2e-4 : 3e-2, same = dt == DType::F32 ? 1e-5 : 1e-2;
    for (const Checkpoint* ck : {&random_model(dt), &random_checkpoint("cuda_test_one_layer", one, dt, 7)}) {
      auto gpu = make_cuda_backend(*ck);
      auto cpu = make_cpu_backend(*ck, 2);
      for (ScanMode mode : {ScanMode::Scan, ScanMode::Convolution}) {
        for (int L : {2, 37, 300}) {
          const auto ids = random_tokens(L, 300, uint32_t(L));
          const std::string what = std::string(dtype_name(dt)) + ", " + std::to_string(ck->config().n_layer) +
                                   " layers, " + mode_name(mode) + ", L " + std::to_string(L);
          auto s_last = gpu->new_state(), s_full = gpu->new_state(), s_cpu = cpu->new_state();
          ForwardOptions o;
          o.mode = mode;
          std::vector<float> last, ref_cpu;
          gpu->forward(ids, *s_last, o, last);
          const auto full = run(*gpu, *s_full, ids, mode);
          cpu->forward(ids, *s_cpu, ForwardOptions{}, ref_cpu);
          ASSERT_EQ(last.size(), size_t(300)) << what;
          EXPECT_LT(rel_error(last, std::vector<float>(full.end() - 300, full.end())), same) << what;
          EXPECT_LT(rel_error(last, ref_cpu), tol) << what;
          const HostState hl = s_last->to_host(), hf = s_full->to_host();
          EXPECT_LT(rel_error(hl.ssm, hf.ssm), same) << what;
          EXPECT_LT(rel_error(hl.conv, hf.conv), same) << what;
          const int32_t next = 5;
          EXPECT_LT(rel_error(run(*gpu, *s_last, std::span(&next, 1), ScanMode::Recurrent),
                              run(*gpu, *s_full, std::span(&next, 1), ScanMode::Recurrent)),
                    same)
              << what;
        }
      }
    }
  }
}

// Probes over many layers and tokens, a long prefill in pieces of every kind (one token, shorter
// and longer than the recorder's bound): the frames the GPU copies back through its staging ring
// equal the CPU's, with the ring holding every recorded layer (the default) or only two (each
// layer after the second waits for the oldest to land); at once or in pieces, scan or recurrent.
TEST(GpuBackend, ProbesOfALongPrefillInPiecesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = small_config(6);
  c.use_bias = true;
  const Checkpoint& ck = random_checkpoint("cuda_test_6_layers", c, DType::F32, 11);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto ids = random_tokens(2500, 300, 21);
  ProbePolicy pol;
  pol.enabled = true;
  pol.layers = {0, 1, 2, 3, 5};
  pol.capture_h = true;
  pol.h_layers = {1, 5};
  pol.max_tokens = 700;
  // Feeds the pieces (ending with `last` tokens in recurrent mode) and returns the last logits.
  auto feed = [&](Backend& be, ProbeRecorder& rec, const std::vector<int64_t>& pieces, int64_t last) {
    auto st = be.new_state();
    std::span<const int32_t> rest(ids);
    std::vector<float> logits;
    ForwardOptions o;
    o.probes = &rec;
    for (int64_t n : pieces) {
      be.forward(rest.first(size_t(n)), *st, o, logits);
      rest = rest.subspan(size_t(n));
    }
    o.mode = ScanMode::Recurrent;
    for (int64_t i = 0; i < last; ++i) {
      be.forward(rest.first(1), *st, o, logits);
      rest = rest.subspan(1);
    }
    EXPECT_TRUE(rest.empty());
    EXPECT_EQ(st->position(), int64_t(ids.size()));
    return logits;
  };
  const std::vector<int64_t> in_pieces = {1, 600, 1, 1200, 688}, at_once = {2490};
  ProbeRecorder ref(pol);
  const auto ref_logits = feed(*cpu, ref, in_pieces, 10);
  ASSERT_EQ(ref.tokens().size(), 700u);
  ASSERT_EQ(ref.tokens().front().position, 1800);
  ASSERT_EQ(ref.tokens()[0].layers.size(), 5u);
  ASSERT_EQ(ref.tokens()[0].layers[4].h.size(), size_t(136 * 16));
  for (size_t staging : {size_t(256) << 20, size_t(1)}) {
    cuda::set_probe_staging_bytes(*gpu, staging);
    for (const auto& pieces : {in_pieces, at_once}) {
      SCOPED_TRACE("staging " + std::to_string(staging) + " bytes, " + std::to_string(pieces.size()) + " pieces");
      ProbeRecorder rec(pol);
      EXPECT_LT(rel_error(feed(*gpu, rec, pieces, 10), ref_logits), 2e-4);
      expect_probes_match(rec, ref, 2e-4);
    }
  }
}

// With a fresh model's small weights C·h is a tiny part of y, so the state is where an
// intervention shows: Δ = 5 at token 30 of layer 1 resets and rewrites that layer's h.
TEST(GpuBackend, DeltaInterventionsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = random_model(DType::F32);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto ids = random_tokens(40, 300, 9);
  ForwardOptions o;
  o.delta_overrides = {{-1, 12, 0.f}, {1, 30, 5.f}};
  for (ScanMode mode : {ScanMode::Scan, ScanMode::Recurrent}) {
    auto sg = gpu->new_state(), sc = cpu->new_state(), sp = gpu->new_state();
    EXPECT_LT(rel_error(run(*gpu, *sg, ids, mode, o), run(*cpu, *sc, ids, ScanMode::Scan, o)), 2e-4)
        << mode_name(mode);
    const auto hg = sg->to_host().ssm;
    EXPECT_LT(rel_error(hg, sc->to_host().ssm), 2e-4) << mode_name(mode);
    run(*gpu, *sp, ids, mode);
    EXPECT_GT(rel_error(sp->to_host().ssm, hg), 0.1);  // the interventions rewrote the state
  }
}

TEST(GpuBackend, SamplingIsSeededAndStaysInsideTopK) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = random_model(DType::BF16);
  auto be = make_cuda_backend(ck);
  SamplingParams sp;
  sp.temperature = 1.5f;
  sp.top_k = 5;
  sp.repetition_penalty = 1.3f;
  sp.seed = 7;
  sp.n_alternatives = 5;
  auto draw = [&]() {
    std::vector<int32_t> out;
    auto st = be->new_state();
    cuda::generate_on_gpu(*be, *st, 1, 40, sp, [&](const cuda::GpuToken& t) {
      bool in_top = false;
      for (const auto& a : t.alternatives) in_top |= a.id == t.id;
      EXPECT_TRUE(in_top) << "token " << t.id << " is not among the top 5";
      out.push_back(t.id);
      return true;
    });
    return out;
  };
  const auto a = draw(), b = draw();
  EXPECT_EQ(a, b);
  sp.seed = 8;
  EXPECT_NE(draw(), a);
}

TEST(GpuBackend, OtherModesSayWhereTheyRun) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = random_model(DType::F32);
  auto be = make_cuda_backend(ck);
  std::string why;
  EXPECT_TRUE(be->supports(ScanMode::Scan, &why));
  if (!be->supports(ScanMode::Convolution, &why)) EXPECT_NE(why.find("CPU"), std::string::npos);
  auto st = be->new_state();
  std::vector<float> logits;
  ForwardOptions o;
  const int32_t bad = 300;
  EXPECT_THROW(be->forward(std::span<const int32_t>(&bad, 1), *st, o, logits), Error);
}

}  // namespace
}  // namespace mambascope::test

#else
TEST(GpuBackend, NeedsACudaBuild) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
