// Recurrent decoding that records (the explorer's path, cuda_decode_extras.cpp): the captured
// step records only the policy's layers (h only where kept), follows the state object it runs
// on and the policy it records with, and matches the CPU token by token; where the fused step
// runs (sm_90) it records, and what it records is the per-layer kernels'.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "cuda_test_util.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cuda/cuda_backend.hpp"
#endif

namespace mambascope::test {

namespace {

const Checkpoint& four_layer_model(DType dt = DType::F32) {
  ModelConfig c;
  c.d_model = 64; c.n_layer = 4; c.vocab_size = 300; c.d_state = 16; c.d_conv = 4;
  c.expand = 2; c.d_inner = 136;
  c.dt_rank = 4; c.use_bias = false; c.use_conv_bias = true; c.tie_embeddings = true;
  return random_checkpoint(dt == DType::F32 ? "cuda_recurrent_probes" : "cuda_recurrent_probes_bf16", c, dt, 7);
}

ProbePolicy policy(std::vector<int> layers, std::vector<int> h_layers) {
  ProbePolicy p;
  p.enabled = true;
  p.layers = std::move(layers);
  p.capture_h = !h_layers.empty();
  p.h_layers = std::move(h_layers);
  return p;
}

// Runs ids one forward call at a time in recurrent mode, recording into rec; returns all logits.
std::vector<float> decode(Backend& be, BackendState& st, std::span<const int32_t> ids,
                          ProbeRecorder& rec, std::vector<float>* ssm_outputs = nullptr) {
  ForwardOptions o;
  o.mode = ScanMode::Recurrent;
  o.all_logits = true;
  o.probes = &rec;
  o.ssm_outputs = ssm_outputs;
  std::vector<float> logits;
  be.forward(ids, st, o, logits);
  return logits;
}

}  // namespace

TEST(RecurrentProbes, ChosenLayersFollowTheStateAndThePolicyAndMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = four_layer_model();
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto ids = random_tokens(30, 300, 5);
  const std::span<const int32_t> a(ids.data(), 12), b(ids.data() + 12, 18);
  const ProbePolicy p1 = policy({0, 2, 3}, {3}), p2 = policy({1}, {});
  constexpr double kTol = 2e-4;

  // State 1 records layers 0, 2, 3 (h of 3); its clone records layer 1 only, then state 1 goes
  // on: each call must run on its own state's buffers and record its own policy's layers.
  ProbeRecorder g1(p1), c1(p1), g2(p2), c2(p2);
  auto sg1 = gpu->new_state(), sc1 = cpu->new_state();
  EXPECT_LT(rel_error(decode(*gpu, *sg1, a, g1), decode(*cpu, *sc1, a, c1)), kTol);
  auto sg2 = sg1->clone(), sc2 = sc1->clone();
  EXPECT_LT(rel_error(decode(*gpu, *sg2, b, g2), decode(*cpu, *sc2, b, c2)), kTol);
  EXPECT_LT(rel_error(decode(*gpu, *sg1, b, g1), decode(*cpu, *sc1, b, c1)), kTol);
  EXPECT_LT(rel_error(sg1->to_host().ssm, sc1->to_host().ssm), kTol);
  EXPECT_LT(rel_error(sg2->to_host().ssm, sc2->to_host().ssm), kTol);

  expect_probes_match(g1, c1, kTol);
  expect_probes_match(g2, c2, kTol);
  ASSERT_EQ(g1.tokens().size(), ids.size());
  for (const TokenProbe& t : g1.tokens()) {
    ASSERT_EQ(t.layers.size(), 3u);
    EXPECT_TRUE(t.layers[0].h.empty());
    EXPECT_EQ(t.layers[2].h.size(), 136u * 16u);  // h kept for layer 3 only
  }
  ASSERT_EQ(g2.tokens().size(), b.size());
  EXPECT_EQ(g2.tokens().front().layers.size(), 1u);
  EXPECT_EQ(g2.tokens().front().layers[0].layer, 1);

  // SSM outputs asked for as well: every layer gets a slot, the probes still only theirs.
  std::vector<float> so_g, so_c;
  ProbeRecorder g3(p2), c3(p2);
  auto sg3 = gpu->new_state(), sc3 = cpu->new_state();
  EXPECT_LT(rel_error(decode(*gpu, *sg3, ids, g3, &so_g), decode(*cpu, *sc3, ids, c3, &so_c)), kTol);
  EXPECT_LT(rel_error(so_g, so_c), kTol);
  expect_probes_match(g3, c3, kTol);
}

#if MAMBASCOPE_HAVE_CUDA
TEST(RecurrentProbes, TheFusedStepRecordsWhatThePerLayerKernelsRecord) {
  SKIP_WITHOUT_GPU();
  for (const DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dt == DType::F32 ? "fp32" : "bf16");
    const Checkpoint& ck = four_layer_model(dt);
    auto fused = make_cuda_backend(ck), kernels = make_cuda_backend(ck);
    if (cuda::decode_path(*fused) != "fused") GTEST_SKIP() << cuda::decode_path(*fused);
    cuda::use_fused_decode(*kernels, false);
    const auto ids = random_tokens(20, 300, 9);
    const ProbePolicy p = policy({0, 2, 3}, {0, 3});
    ProbeRecorder rf(p), rk(p);
    std::vector<float> so_f, so_k, res_f, res_k;
    auto run = [&](Backend& be, ProbeRecorder& rec, std::vector<float>& so, std::vector<float>& res) {
      auto st = be.new_state();
      ForwardOptions o;
      o.mode = ScanMode::Recurrent;
      o.all_logits = true;
      o.probes = &rec;
      o.ssm_outputs = &so;
      o.residuals = &res;
      std::vector<float> logits;
      be.forward(ids, *st, o, logits);
      return std::make_pair(logits, st->to_host().ssm);
    };
    const auto [lf, hf] = run(*fused, rf, so_f, res_f);
    const auto [lk, hk] = run(*kernels, rk, so_k, res_k);
    // The same arithmetic in another order (the fused step's x_proj sums are per block).
    const double tol = dt == DType::F32 ? 1e-5 : 2e-3;
    EXPECT_LT(rel_error(lf, lk), tol);
    EXPECT_LT(rel_error(hf, hk), tol);
    EXPECT_LT(rel_error(so_f, so_k), tol);
    EXPECT_LT(rel_error(res_f, res_k), tol);
    expect_probes_match(rf, rk, tol);
    ASSERT_EQ(rf.tokens().size(), ids.size());
    EXPECT_EQ(rf.tokens().front().layers[0].h.size(), 136u * 16u);
  }
}
#endif

}  // namespace mambascope::test
