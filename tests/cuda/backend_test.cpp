// The whole CUDA backend against Hugging Face transformers' golden logits, against the CPU
// backend (logits, final state, probes, SSM outputs, residuals) on random checkpoints in every
// dtype, across its own modes (scan vs recurrent, in pieces vs at once), and its GPU decoding
// (greedy equals transformers' greedy; sampling stays inside top-k and is seeded).
#include <gtest/gtest.h>

#include <algorithm>
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

// A small random model (written once per dtype).
const Checkpoint& random_model(DType dt, bool lti = false) {
  ModelConfig c;
  c.d_model = 64; c.n_layer = 3; c.vocab_size = 300; c.d_state = 16; c.d_conv = 4;
  c.expand = 2; c.d_inner = 136;  // not a multiple of the scan's channel block
  c.dt_rank = 4; c.use_bias = false; c.use_conv_bias = true; c.tie_embeddings = true;
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

// Probes over many layers and tokens, a long prefill in pieces of every kind (one token, shorter
// and longer than the recorder's bound): the frames the GPU copies back through its staging ring
// equal the CPU's, with the ring holding every recorded layer (the default) or only two (each
// layer after the second waits for the oldest to land); at once or in pieces, scan or recurrent.
TEST(GpuBackend, ProbesOfALongPrefillInPiecesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  ModelConfig c;
  c.d_model = 64; c.n_layer = 6; c.vocab_size = 300; c.d_state = 16; c.d_conv = 4;
  c.expand = 2; c.d_inner = 136; c.dt_rank = 4; c.use_bias = true; c.use_conv_bias = true;
  c.tie_embeddings = true;
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
