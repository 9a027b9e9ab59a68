// The whole CUDA backend against Hugging Face transformers' golden logits, against the CPU
// backend (logits, final state, probes, SSM outputs, residuals) on random checkpoints in every
// dtype, across its own modes (scan vs recurrent, in pieces vs at once), and its GPU decoding
// (greedy equals transformers' greedy; sampling stays inside top-k and is seeded).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "cuda_test_util.hpp"
#include "engine/hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/random_checkpoint.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cuda/cuda_backend.hpp"

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

// A small random model, written once per dtype into the test's temp folder.
const Checkpoint& random_model(DType dt, bool lti = false) {
  static std::map<std::pair<int, bool>, std::unique_ptr<Checkpoint>> cache;
  auto& slot = cache[{int(dt), lti}];
  if (!slot) {
    ModelConfig c;
    c.d_model = 64; c.n_layer = 3; c.vocab_size = 300; c.d_state = 16; c.d_conv = 4;
    c.expand = 2; c.d_inner = 136;  // not a multiple of the scan's channel block
    c.dt_rank = 4; c.use_bias = false; c.use_conv_bias = true; c.tie_embeddings = true;
    c.lti = lti;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("mambascope_cuda_test_" + std::string(dtype_name(dt)) + (lti ? "_lti" : ""));
    write_random_checkpoint(dir, c, dt, 42);
    slot = Checkpoint::open(dir);
  }
  return *slot;
}

std::vector<int32_t> some_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

class GpuVsCpu : public ::testing::TestWithParam<std::tuple<DType, bool>> {};

TEST_P(GpuVsCpu, LogitsStateSsmOutputsResidualsAndProbesAgree) {
  SKIP_WITHOUT_GPU();
  auto [dt, lti] = GetParam();
  const Checkpoint& ck = random_model(dt, lti);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto ids = some_tokens(77, 300, 3);
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
    ASSERT_EQ(pg.tokens().size(), pc.tokens().size());
    for (size_t i = 0; i < pc.tokens().size(); i += 19) {
      const TokenProbe& a = pg.tokens()[i];
      const TokenProbe& b = pc.tokens()[i];
      ASSERT_EQ(a.position, b.position);
      ASSERT_EQ(a.layers.size(), b.layers.size());
      for (size_t l = 0; l < a.layers.size(); ++l) {
        EXPECT_LT(rel_error(a.layers[l].delta, b.layers[l].delta), tol);
        EXPECT_LT(rel_error(a.layers[l].h_norm, b.layers[l].h_norm), tol);
        EXPECT_LT(rel_error(a.layers[l].gate, b.layers[l].gate), tol);
        EXPECT_LT(rel_error(a.layers[l].B, b.layers[l].B), tol);
        EXPECT_LT(rel_error(a.layers[l].C, b.layers[l].C), tol);
        EXPECT_LT(rel_error(a.layers[l].h, b.layers[l].h), tol);
        EXPECT_NEAR(a.layers[l].write_strength, b.layers[l].write_strength,
                    tol * 10 * std::max(1.f, b.layers[l].write_strength));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GpuVsCpu,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Bool()));

TEST(GpuBackend, PrefillInPiecesAndClonedStatesContinueIdentically) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = random_model(DType::F32);
  auto be = make_cuda_backend(ck);
  const auto ids = some_tokens(150, 300, 5);
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

// With a fresh model's small weights C·h is a tiny part of y, so the state is where an
// intervention shows: Δ = 5 at token 30 of layer 1 resets and rewrites that layer's h.
TEST(GpuBackend, DeltaInterventionsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = random_model(DType::F32);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto ids = some_tokens(40, 300, 9);
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
