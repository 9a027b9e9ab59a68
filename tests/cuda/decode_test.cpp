// The GPU decode step and GPU sampling. fused_plan's geometry for the real shapes; the fused step
// (one kernel per token) against the CPU backend and against the per-layer kernels (logits and
// final state, every dtype, three shapes),
// its CUDA graph following the state object, greedy generation against the CPU Sampler on its
// own logits (with and without the repetition penalty, whose window includes the prompt). The sampler kernel on crafted logits against the CPU
// Sampler's semantics: greedy ties, the alternatives, the top-p cut with ties at the boundary,
// draws beyond the 64 most likely tokens, and empirical frequencies over many seeded draws.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <string>

#include "cuda_test_util.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/random_checkpoint.hpp"
#include "mambascope/sampler.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "checkpoint/safetensors.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/decode.hpp"
#include "cuda/decode_fused.hpp"

namespace mambascope::test {
namespace {

// Three shapes: the tiny one (d_inner not a multiple of 16, fewer channels than SMs), one with
// several weight tiles per block, and one layer of the 2.8b shape, whose rows are long enough
// that a ring slot holds fewer than 8 of them (in_proj 4 and out_proj 2 rows per tile in 16-bit,
// 2 and 1 in fp32: the GEMV's warp groups over several tiles).
enum Shape { kTiny, kMedium, kWide };
const Checkpoint& decode_model(DType dt, int shape) {
  static std::map<std::pair<int, int>, std::unique_ptr<Checkpoint>> cache;
  auto& slot = cache[{int(dt), shape}];
  if (!slot) {
    ModelConfig c;
    c.d_state = 16; c.d_conv = 4; c.expand = 2; c.use_bias = false; c.use_conv_bias = true;
    c.tie_embeddings = true;
    if (shape == kTiny) c.d_model = 64, c.n_layer = 3, c.vocab_size = 300, c.d_inner = 136, c.dt_rank = 4;
    if (shape == kMedium) c.d_model = 256, c.n_layer = 3, c.vocab_size = 2000, c.d_inner = 512, c.dt_rank = 16;
    if (shape == kWide) c.d_model = 2560, c.n_layer = 1, c.vocab_size = 1000, c.d_inner = 5120, c.dt_rank = 160;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("mambascope_decode_test_" + std::string(dtype_name(dt)) + "_" + std::to_string(shape));
    write_random_checkpoint(dir, c, dt, 17);
    slot = Checkpoint::open(dir);
  }
  return *slot;
}

std::vector<int32_t> tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

std::vector<float> recurrent_logits(Backend& be, BackendState& st, std::span<const int32_t> ids) {
  ForwardOptions o;
  o.mode = ScanMode::Recurrent;
  o.all_logits = true;
  std::vector<float> logits;
  be.forward(ids, st, o, logits);
  return logits;
}

bool device_is_hopper() {
  cudaDeviceProp p{};
  return cudaGetDeviceProperties(&p, 0) == cudaSuccess && p.major >= 9;
}

class FusedStep : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(FusedStep, LogitsAndStateMatchTheCpuAndThePerLayerKernels) {
  SKIP_WITHOUT_GPU();
  auto [dt, shape] = GetParam();
  const Checkpoint& ck = decode_model(dt, shape);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  if (device_is_hopper()) EXPECT_EQ(cuda::decode_path(*gpu), "fused");
  const int V = int(ck.config().vocab_size);
  const auto ids = tokens(40, V, 11);
  auto sc = cpu->new_state();
  ForwardOptions oc;
  oc.all_logits = true;
  std::vector<float> ref;
  cpu->forward(ids, *sc, oc, ref);
  const double tol = dt == DType::F32 ? 2e-4 : 3e-2;
  auto sf = gpu->new_state();
  const auto fused = recurrent_logits(*gpu, *sf, ids);
  cuda::use_fused_decode(*gpu, false);
  EXPECT_NE(cuda::decode_path(*gpu), "fused");
  auto sk = gpu->new_state();
  const auto kernels = recurrent_logits(*gpu, *sk, ids);
  cuda::use_fused_decode(*gpu, true);
  EXPECT_LT(rel_error(fused, ref), tol);
  EXPECT_LT(rel_error(kernels, ref), tol);
  EXPECT_LT(rel_error(fused, kernels), 1e-4);  // same weights, fp32 activations, other sum order
  const HostState hf = sf->to_host(), hk = sk->to_host(), hc = sc->to_host();
  EXPECT_EQ(hf.position, hc.position);
  EXPECT_LT(rel_error(hf.ssm, hc.ssm), tol);
  EXPECT_LT(rel_error(hf.conv, hc.conv), tol);
  EXPECT_LT(rel_error(hf.ssm, hk.ssm), 1e-4);
  EXPECT_LT(rel_error(hf.conv, hk.conv), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedStep,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Values(kTiny, kMedium, kWide)));

// Grids other than one block per SM, the x_proj sums folded into every block, the L2
// prefetches and thread-block clusters (MAMBASCOPE_FUSED_BLOCKS / _FOLD / _PREFETCH / _CLUSTER,
// read when a backend first decodes): G that divides neither d_inner nor d_model, G·8 warps
// fewer than the x_proj outputs (X loops), the 2.8b-wide layer at 21 blocks (244 channels per
// block), clusters of 2, 4 and 8 blocks, one with a G (10) that the cluster size (4) does not
// divide (G becomes 8); out_proj by columns (MAMBASCOPE_FUSED_OUTCOL=1) with clusters of 16 and
// 8, four / two / one row groups per block (tiny, medium, wide bf16) and three column chunks per
// thread (wide fp32); a ring of three slots (MAMBASCOPE_FUSED_SLOTS=3: every slot reused most
// often) without and with clusters; C's tiles held to one and two tiles ahead of the compute
// warps (MAMBASCOPE_FUSED_CAHEAD; B's tiles, which B waits for in pairs, only at two: one
// deadlocked before a9b3ba7). (By default the tiny and medium shapes take clusters
// of 16 with out_proj by rows and the wide layer clusters of 16 by columns, so FusedStep covers
// both as chosen.)
struct Geometry {
  DType dt;
  int shape, blocks, fold, prefetch, cluster = 1, outcol = 0, slots = 0, c_ahead = -1;
};
class FusedGeometry : public ::testing::TestWithParam<Geometry> {};

TEST_P(FusedGeometry, LogitsAndStateMatchTheCpuAndThePerLayerKernels) {
  SKIP_WITHOUT_GPU();
  const Geometry g = GetParam();
  const Checkpoint& ck = decode_model(g.dt, g.shape);
  struct Env {
    explicit Env(const Geometry& g) {
      setenv("MAMBASCOPE_FUSED_BLOCKS", std::to_string(g.blocks).c_str(), 1);
      setenv("MAMBASCOPE_FUSED_FOLD", std::to_string(g.fold).c_str(), 1);
      setenv("MAMBASCOPE_FUSED_PREFETCH", std::to_string(g.prefetch).c_str(), 1);
      setenv("MAMBASCOPE_FUSED_CLUSTER", std::to_string(g.cluster).c_str(), 1);
      setenv("MAMBASCOPE_FUSED_OUTCOL", std::to_string(g.outcol).c_str(), 1);
      setenv("MAMBASCOPE_FUSED_SLOTS", std::to_string(g.slots).c_str(), 1);
      setenv("MAMBASCOPE_FUSED_CAHEAD", std::to_string(g.c_ahead).c_str(), 1);
    }
    ~Env() {
      for (const char* v : {"MAMBASCOPE_FUSED_BLOCKS", "MAMBASCOPE_FUSED_FOLD", "MAMBASCOPE_FUSED_PREFETCH",
                            "MAMBASCOPE_FUSED_CLUSTER", "MAMBASCOPE_FUSED_OUTCOL", "MAMBASCOPE_FUSED_SLOTS",
                            "MAMBASCOPE_FUSED_CAHEAD"})
        unsetenv(v);
    }
  } env(g);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  if (device_is_hopper()) EXPECT_EQ(cuda::decode_path(*gpu), "fused");
  const auto ids = tokens(24, int(ck.config().vocab_size), 5);
  auto sc = cpu->new_state();
  ForwardOptions oc;
  oc.all_logits = true;
  std::vector<float> ref;
  cpu->forward(ids, *sc, oc, ref);
  const double tol = g.dt == DType::F32 ? 2e-4 : 3e-2;
  auto sf = gpu->new_state();
  const auto fused = recurrent_logits(*gpu, *sf, ids);
  cuda::use_fused_decode(*gpu, false);
  auto sk = gpu->new_state();
  const auto kernels = recurrent_logits(*gpu, *sk, ids);
  EXPECT_LT(rel_error(fused, ref), tol);
  EXPECT_LT(rel_error(fused, kernels), 1e-4);
  const HostState hf = sf->to_host(), hk = sk->to_host();
  EXPECT_LT(rel_error(hf.ssm, hk.ssm), 1e-4);
  EXPECT_LT(rel_error(hf.conv, hk.conv), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Grids, FusedGeometry,
                         ::testing::Values(Geometry{DType::BF16, kTiny, 5, 0, 0}, Geometry{DType::F32, kMedium, 5, 0, 1},
                                           Geometry{DType::BF16, kMedium, 7, 1, 31}, Geometry{DType::F16, kTiny, 1000, 1, 6},
                                           Geometry{DType::BF16, kWide, 21, 1, 9}, Geometry{DType::F32, kWide, 21, 0, 3},
                                           Geometry{DType::BF16, kMedium, 10, 0, 0, 4}, Geometry{DType::F32, kTiny, 1000, 0, 0, 8},
                                           Geometry{DType::BF16, kWide, 1000, 0, 0, 8}, Geometry{DType::F16, kMedium, 1000, 0, 0, 2},
                                           Geometry{DType::BF16, kTiny, 1000, 0, 0, 16, 1}, Geometry{DType::F16, kMedium, 1000, 0, 0, 16, 1},
                                           Geometry{DType::F32, kMedium, 64, 0, 0, 8, 1}, Geometry{DType::BF16, kWide, 1000, 0, 0, 16, 1},
                                           Geometry{DType::F32, kWide, 1000, 0, 0, 16, 1},
                                           Geometry{DType::F16, kMedium, 5, 0, 0, 1, 0, 3},
                                           Geometry{DType::BF16, kWide, 1000, 0, 0, 16, 1, 3},
                                           Geometry{DType::BF16, kWide, 1000, 0, 0, 16, 1, 0, 1},
                                           Geometry{DType::F32, kMedium, 64, 0, 0, 8, 1, 3, 2}));

// The weight stream's L2 priorities (FusedArgs::l2, MAMBASCOPE_FUSED_L2, read when a backend
// first decodes) change which lines L2 keeps, never what a copy delivers: logits and state are the
// same bits with none, each bit alone and both (the by-rows kernels of the tiny and medium
// shapes; the wide layer's by-columns kernels ignore them and must come out the same too).
size_t bits_differing(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}
class FusedL2 : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(FusedL2, PrioritiesLeaveEveryBitAsItWas) {
  SKIP_WITHOUT_GPU();
  const auto [dt, shape] = GetParam();
  const Checkpoint& ck = decode_model(dt, shape);
  const auto ids = tokens(20, int(ck.config().vocab_size), 9);
  std::vector<float> logits0, ssm0, conv0;
  for (const int bits : {0, 1, 2, 3}) {
    SCOPED_TRACE("MAMBASCOPE_FUSED_L2=" + std::to_string(bits));
    setenv("MAMBASCOPE_FUSED_L2", std::to_string(bits).c_str(), 1);
    auto gpu = make_cuda_backend(ck);
    auto st = gpu->new_state();
    const auto logits = recurrent_logits(*gpu, *st, ids);  // the first decode reads the variable
    unsetenv("MAMBASCOPE_FUSED_L2");
    if (device_is_hopper()) EXPECT_EQ(cuda::decode_path(*gpu), "fused");
    const HostState h = st->to_host();
    if (bits == 0) {
      logits0 = logits, ssm0 = h.ssm, conv0 = h.conv;
      ASSERT_FALSE(logits0.empty());
      continue;
    }
    EXPECT_EQ(bits_differing(logits, logits0), 0u);
    EXPECT_EQ(bits_differing(h.ssm, ssm0), 0u);
    EXPECT_EQ(bits_differing(h.conv, conv0), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedL2,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(kTiny, kMedium, kWide)));

// A wait inside the fused step that can never finish traps and says where, instead of hanging
// the GPU (before session 12 the weight ring's waits had no watchdog: the plan bug of a9b3ba7
// hung the device). MAMBASCOPE_FUSED_FAULT=1 makes the producer leave out the lm_head's tiles,
// so the compute warps wait for a tile that never comes; =2 makes it wait for the release of the
// lm_head's first tile before sending it, so both sides wait for each other. The block's
// watchdog warp must trap either. A trap ends the CUDA context, so each case runs in a child
// process, with MAMBASCOPE_FUSED_WATCHDOG_MS=300 (the block traps after twice that). Through
// forward() (the stream's wait) and through generate_on_gpu (the host waits for the token's
// fields in mapped memory, and the trap must still come back as an error, not as a hang).
void decode_with_fault(const char* fault, bool generating) {
  setenv("MAMBASCOPE_FUSED_FAULT", fault, 1);
  setenv("MAMBASCOPE_FUSED_WATCHDOG_MS", "300", 1);
  const Checkpoint& ck = decode_model(DType::BF16, kTiny);
  auto gpu = make_cuda_backend(ck);
  if (cuda::decode_path(*gpu) != "fused") std::exit(2);
  auto st = gpu->new_state();
  try {
    if (generating) {
      SamplingParams sp;
      sp.temperature = 0;
      sp.n_alternatives = 3;
      cuda::generate_on_gpu(*gpu, *st, 1, 4, sp, [](const cuda::GpuToken&) { return true; });
    } else {
      recurrent_logits(*gpu, *st, tokens(2, 300, 3));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::exit(0);
  }
  std::exit(1);
}

TEST(FusedWatchdog, AWeightTileThatNeverComesTrapsAndSaysWhere) {
  SKIP_WITHOUT_GPU();
  if (!device_is_hopper()) GTEST_SKIP() << "the fused step needs sm_90";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (bool generating : {false, true})
    for (const char* fault : {"1", "2"})
      EXPECT_EXIT(decode_with_fault(fault, generating), ::testing::ExitedWithCode(0),
                  "block [0-9]+ of the fused decode step did not finish within 600 ms: its compute warps and "
                  "its weight ring's producer wait for each other")
          << "MAMBASCOPE_FUSED_FAULT=" << fault << (generating ? ", generating" : "");
}

// fused_plan's geometry for the real shapes (bf16): clusters of 16 below 100 MB of in_proj +
// out_proj per layer (130m, 1.4b, 2.8b), none above (a 7b-class layer, 200 MB); with clusters, G
// is whole clusters and one cluster fewer would give a block more in_proj tiles (the fewest
// blocks for that tile count); out_proj by columns by default on 1.4b and 2.8b, and where asked
// on 130m too.
TEST(FusedPlan, ClustersForSmallLayersWithTheFewestBlocksPerTileCount) {
  SKIP_WITHOUT_GPU();
  if (!device_is_hopper()) GTEST_SKIP() << "the fused step needs sm_90";
  struct Shape { int dm, D, R, cluster; };
  for (const Shape& sh : {Shape{768, 1536, 48, 16}, Shape{2048, 4096, 128, 16}, Shape{2560, 5120, 160, 16},
                          Shape{4096, 8192, 256, 1}}) {
    cuda::FusedArgs a;
    a.n_layer = 2, a.dm = sh.dm, a.D = sh.D, a.N = 16, a.R = sh.R, a.xr = sh.R + 32, a.k = 4, a.V = 50280;
    ASSERT_EQ(cuda::fused_plan(a, DType::BF16, 0), "") << sh.dm;
    EXPECT_EQ(a.cluster, sh.cluster) << sh.dm;
    if (a.cluster == 1) continue;
    EXPECT_EQ(a.G % a.cluster, 0) << sh.dm;
    EXPECT_TRUE(a.fold_x) << sh.dm;  // always with clusters: the by-rows cluster kernels have no X phase
    EXPECT_EQ(a.outcol > 0, sh.dm > 768) << sh.dm;  // by columns by default from 16 MB per layer
    EXPECT_EQ(a.c_ahead, a.outcol > 0 ? cuda::kFusedCAhead : 0) << sh.dm;
    if (a.outcol == 0) EXPECT_EQ(a.n_slots, cuda::kFusedRowsSlots) << sh.dm;  // by rows: a short ring
    const int rpt = std::min(cuda::kFusedTileRows, a.slot_bytes / (2 * a.dm));
    auto tiles = [&](int G) { return (2 * cuda::fused_ncmax(a.D, G) + rpt - 1) / rpt; };
    if (a.G > a.cluster) EXPECT_GT(tiles(a.G - a.cluster), tiles(a.G)) << sh.dm;
    cuda::FusedRequest no_fold;  // MAMBASCOPE_FUSED_FOLD=0 cannot turn it off with clusters
    no_fold.fold = 0;
    ASSERT_EQ(cuda::fused_plan(a, DType::BF16, 0, no_fold), "") << sh.dm;
    EXPECT_TRUE(a.cluster == 1 || a.fold_x) << sh.dm;
    // out_proj by columns where asked: row groups that fill the compute threads with d_model's
    // 16-byte chunks (130m: 96 chunks, 2 groups), each cluster's slice of d_model whole quads.
    cuda::FusedRequest by_cols;
    by_cols.outcol = 1;
    ASSERT_EQ(cuda::fused_plan(a, DType::BF16, 0, by_cols), "") << sh.dm;
    EXPECT_EQ(a.outcol, sh.dm == 768 ? 2 : 1) << sh.dm;
    EXPECT_EQ(a.dm % (4 * a.cluster), 0) << sh.dm;
    EXPECT_EQ(cuda::fused_r_words(a), int64_t(a.dm) * (a.G / a.cluster)) << sh.dm;
    // A cap on the ring (MAMBASCOPE_FUSED_SLOTS) is taken as asked; below three it is ignored.
    ASSERT_EQ(cuda::fused_plan(a, DType::BF16, 0), "") << sh.dm;
    const int slots = a.n_slots;
    EXPECT_GE(slots, 3) << sh.dm;
    cuda::FusedRequest capped;
    capped.slots = 3;
    ASSERT_EQ(cuda::fused_plan(a, DType::BF16, 0, capped), "") << sh.dm;
    EXPECT_EQ(a.n_slots, 3) << sh.dm;
    EXPECT_EQ(a.c_ahead, 0) << sh.dm;  // C tiles a whole ring ahead or more: no limit
    capped.slots = 2;
    ASSERT_EQ(cuda::fused_plan(a, DType::BF16, 0, capped), "") << sh.dm;
    EXPECT_EQ(a.n_slots, slots) << sh.dm;
  }
}

// The by-columns kernels' xs never holds the gated y {d_inner}: their layout sizes it for the
// normed input {d_model} and the folded x_proj partials, the others' as before. On the 2.8b
// shape that leaves room for a 9th 20 KB ring slot in sm_90's 227 KB (less the kernels' 1152
// bytes of static shared memory). Host arithmetic only: runs without a GPU.
TEST(FusedSmem, ByColumnsLayoutSizesXsForTheNormedInputAndPartials) {
  cuda::FusedArgs a;
  a.n_layer = 64, a.dm = 2560, a.D = 5120, a.N = 16, a.R = 160, a.xr = 192, a.k = 4, a.V = 50280;
  a.G = 112, a.cluster = 16, a.fold_x = true, a.outcol = 1, a.n_slots = 9, a.slot_bytes = 20480;
  const cuda::FusedSmem cols = cuda::fused_smem_layout(a, true), rows = cuda::fused_smem_layout(a, false);
  EXPECT_EQ(cols.acc - cols.xs, 4 * std::max(a.dm, a.xr * a.G / a.cluster));
  EXPECT_EQ(rows.acc - rows.xs, 4 * a.D);
  EXPECT_EQ(cuda::fused_smem(a).total, cols.total);  // the host takes the layout from a.outcol
  EXPECT_LE(cols.total, 227 * 1024 - 1152);
  EXPECT_GT(rows.total, 227 * 1024 - 1152);
}

// The graph is captured for one state object; alternating states must re-capture, not reuse.
TEST(FusedStepGraph, FollowsTheStateObject) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = decode_model(DType::F32, kMedium);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 2);
  const auto a = tokens(24, 2000, 1), b = tokens(24, 2000, 2);
  auto ga = gpu->new_state(), gb = gpu->new_state(), ca = cpu->new_state(), cb = cpu->new_state();
  std::vector<float> la, lb, ra, rb;
  ForwardOptions o;
  for (int i = 0; i < 24; i += 8) {
    la = recurrent_logits(*gpu, *ga, std::span(a).subspan(size_t(i), 8));
    lb = recurrent_logits(*gpu, *gb, std::span(b).subspan(size_t(i), 8));
    cpu->forward(std::span(a).subspan(size_t(i), 8), *ca, o, ra);
    cpu->forward(std::span(b).subspan(size_t(i), 8), *cb, o, rb);
    EXPECT_LT(rel_error(std::vector<float>(la.end() - 2000, la.end()), ra), 2e-4) << i;
    EXPECT_LT(rel_error(std::vector<float>(lb.end() - 2000, lb.end()), rb), 2e-4) << i;
  }
}

// Greedy tokens and their alternatives (fused in-kernel sampling for up to 8 alternatives, the
// sampler kernel for more) against the CPU Sampler on the logits of the same step taken through
// forward(), with the history the Sampler sees: the history handed over, feed and the tokens
// sampled since. The history (which only the penalty reads) ends with the 7 tokens the first
// step likes best after feed, so a penalty window without it (the GPU before generate_on_gpu
// took `history`) chooses differently at once; the test checks that it would.
TEST(FusedStepGraph, GreedyGenerationMatchesTheCpuSamplerOnItsOwnLogits) {
  SKIP_WITHOUT_GPU();
  const Checkpoint& ck = decode_model(DType::BF16, kMedium);
  auto gpu = make_cuda_backend(ck);
  const int V = 2000, kWindow = 8;
  const auto prompt = tokens(12, V, 5);
  const int32_t feed = tokens(1, V, 6)[0];
  std::vector<int32_t> given(prompt.begin(), prompt.begin() + 5);  // the history handed over
  {
    auto probe = gpu->new_state();
    std::vector<float> l;
    gpu->forward(prompt, *probe, ForwardOptions{}, l);
    l = recurrent_logits(*gpu, *probe, std::span(&feed, 1));
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
    for (int32_t id : order)
      if (id != feed && given.size() < 12) given.push_back(id);
  }
  for (float penalty : {1.f, 50.f}) {
    for (int n_alt : {0, 5, 10}) {
      auto st = gpu->new_state();
      std::vector<float> logits;
      gpu->forward(prompt, *st, ForwardOptions{}, logits);
      auto ref = st->clone();
      SamplingParams sp;
      sp.temperature = 0;
      sp.n_alternatives = n_alt;
      sp.repetition_penalty = penalty;
      sp.repetition_window = kWindow;
      std::vector<cuda::GpuToken> got;
      cuda::generate_on_gpu(
          *gpu, *st, feed, 16, sp,
          [&](const cuda::GpuToken& t) {
            got.push_back(t);
            return true;
          },
          given);
      ASSERT_EQ(got.size(), 16u);
      std::vector<int32_t> history(given), blind_history{feed};
      history.push_back(feed);
      Sampler cpu(sp);
      bool blind_differs = false;
      for (const auto& t : got) {
        const auto l = recurrent_logits(*gpu, *ref, std::span(&history.back(), 1));
        std::vector<Alternative> alts;
        const int32_t want = cpu.sample(l, history, &alts);
        blind_differs |= cpu.sample(l, blind_history) != want;
        ASSERT_EQ(t.id, want) << "penalty " << penalty << ", alternatives " << n_alt << ", step " << history.size();
        ASSERT_EQ(t.alternatives.size(), alts.size());
        for (size_t j = 0; j < alts.size(); ++j) {
          EXPECT_EQ(t.alternatives[j].id, alts[j].id) << j;
          EXPECT_NEAR(t.alternatives[j].prob, alts[j].prob, 1e-5) << j;
        }
        history.push_back(t.id);
        blind_history.push_back(t.id);
      }
      if (penalty != 1.f) EXPECT_TRUE(blind_differs) << "the history never mattered to the penalty: the test lost its point";
    }
  }
}

// A copy of the bf16 medium model whose embedding row `row` (tied: also the lm_head's) is NaN,
// so that every step's logit `row` is NaN while the others stay finite (the row is never fed).
std::unique_ptr<Checkpoint> nan_row_model(int row) {
  const auto dir = std::filesystem::temp_directory_path() / "mambascope_decode_test_nan_row";
  write_random_checkpoint(dir, decode_model(DType::BF16, kMedium).config(), DType::BF16, 17);
  const auto file = dir / "model.safetensors";
  std::vector<std::byte> bytes(std::filesystem::file_size(file));
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
  for (const SafetensorsEntry& t : parse_safetensors(bytes.data(), bytes.size(), file.string()))
    if (t.name == "backbone.embeddings.weight") {
      const std::vector<uint16_t> nan(size_t(t.shape[1]), 0x7fc0);  // bf16 quiet NaN
      f.seekp(std::streamoff(t.begin + size_t(row) * nan.size() * 2));
      f.write(reinterpret_cast<const char*>(nan.data()), std::streamsize(nan.size() * 2));
    }
  f.close();
  return Checkpoint::open(dir);
}

// The CPU Sampler refuses a NaN or +inf logit; the GPU paths must too, with its message, instead
// of handing back a token id outside the vocabulary (whose embedding the next step would read out
// of bounds). Greedy with alternatives runs inside the fused step (sm_90), temperature sampling in
// the sampler kernel. The device stays usable afterwards.
TEST(FusedStepGraph, NonFiniteLogitsAreAnErrorNotACrash) {
  SKIP_WITHOUT_GPU();
  const int kNanRow = 7;
  const auto ck = nan_row_model(kNanRow);
  auto gpu = make_cuda_backend(*ck);
  auto prompt = tokens(10, 2000, 5);
  std::replace(prompt.begin(), prompt.end(), kNanRow, kNanRow + 1);  // a NaN input would poison every logit
  for (float temperature : {0.f, 0.8f}) {
    auto st = gpu->new_state();
    std::vector<float> logits;
    gpu->forward(prompt, *st, ForwardOptions{}, logits);
    ASSERT_TRUE(std::isnan(logits[kNanRow]));
    ASSERT_TRUE(std::isfinite(logits[kNanRow + 1]));
    SamplingParams sp;
    sp.temperature = temperature;
    sp.n_alternatives = 3;
    int seen = 0;
    try {
      cuda::generate_on_gpu(*gpu, *st, 11, 8, sp, [&](const cuda::GpuToken&) { return ++seen > 0; }, prompt);
      ADD_FAILURE() << "generation went on over NaN logits (temperature " << temperature << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("non-finite logit"), std::string::npos) << e.what();
    }
    EXPECT_EQ(seen, 0) << "a token was reported from NaN logits";
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    auto fresh = gpu->new_state();
    EXPECT_NO_THROW(gpu->forward(prompt, *fresh, ForwardOptions{}, logits));
    EXPECT_TRUE(std::isfinite(logits[kNanRow + 1]));
  }
}

// ---- the sampler kernel on crafted logits ----------------------------------------------------

int draws_wanted() {
  const char* e = std::getenv("MAMBASCOPE_TEST_DRAWS");
  return e ? std::max(200, std::atoi(e)) : 20000;
}

class GpuSampler {
 public:
  explicit GpuSampler(const std::vector<float>& logits)
      : V_(int(logits.size())), logits_(logits), work_(logits.size()), counters_(4), out_(4) {
    MS_CUDA_CHECK(cudaHostAlloc(&host_, sizeof(cuda::SampleOut), cudaHostAllocMapped));
    MS_CUDA_CHECK(cudaHostGetDevicePointer(&host_dev_, host_, 0));
  }
  ~GpuSampler() { cudaFreeHost(host_); }

  // One draw after `history` (the ring holds it; the penalty window is its length).
  cuda::GpuToken draw(const SamplingParams& sp, const std::vector<int32_t>& history, int64_t step) {
    if (!ring_ || ring_->size() < history.size() + 1) ring_ = std::make_unique<DeviceBuffer>(history.size() + 1);
    MS_CUDA_CHECK(cudaMemcpy(ring_->get(), history.data(), history.size() * 4, cudaMemcpyHostToDevice));
    const int64_t c[2] = {int64_t(history.size()), step};
    MS_CUDA_CHECK(cudaMemcpy(counters_.get(), c, sizeof(c), cudaMemcpyHostToDevice));
    cuda::sample(args(sp, int(history.size())), nullptr);
    MS_CUDA_CHECK(cudaDeviceSynchronize());
    cuda::GpuToken t;
    t.id = host_->ids[0];
    for (int j = 0; j < sp.n_alternatives; ++j) t.alternatives.push_back({host_->ids[1 + j], host_->prob[j]});
    return t;
  }
  // n draws without a penalty, launched back to back; the ring collects the tokens.
  std::vector<int32_t> draws(SamplingParams sp, int n) {
    sp.repetition_penalty = 1.f;
    if (!ring_ || ring_->size() < size_t(n)) ring_ = std::make_unique<DeviceBuffer>(size_t(n));
    MS_CUDA_CHECK(cudaMemset(counters_.get(), 0, 16));
    const cuda::SampleArgs a = args(sp, n);
    for (int i = 0; i < n; ++i) cuda::sample(a, nullptr);
    MS_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int32_t> out(static_cast<size_t>(n));
    MS_CUDA_CHECK(cudaMemcpy(out.data(), ring_->get(), size_t(n) * 4, cudaMemcpyDeviceToHost));
    return out;
  }

 private:
  cuda::SampleArgs args(const SamplingParams& sp, int window) {
    cuda::SampleArgs a;
    a.logits = logits_.f32();
    a.vocab = V_;
    a.temperature = sp.temperature;
    a.top_k = sp.top_k;
    a.top_p = sp.top_p;
    a.min_p = sp.min_p;
    a.repetition_penalty = sp.repetition_penalty;
    a.window = window;
    a.ring = static_cast<int32_t*>(ring_->get());
    a.counters = static_cast<int64_t*>(counters_.get());
    a.seed = sp.seed;
    a.n_alt = sp.n_alternatives;
    a.work = work_.f32();
    a.out = static_cast<int32_t*>(out_.get());
    a.host = static_cast<cuda::SampleOut*>(host_dev_);
    return a;
  }
  int V_;
  DeviceBuffer logits_, work_, counters_, out_;
  std::unique_ptr<DeviceBuffer> ring_;
  cuda::SampleOut* host_ = nullptr;
  void* host_dev_ = nullptr;
};

// The distribution the CPU Sampler draws from (sampler.cpp, step by step, in double).
std::vector<double> expected(const std::vector<float>& logits, const SamplingParams& sp,
                             const std::vector<int32_t>& history) {
  const int n = int(logits.size());
  std::vector<float> s(logits);
  std::vector<bool> seen(static_cast<size_t>(n), false);
  const size_t w = std::min(history.size(), size_t(sp.repetition_window));
  if (sp.repetition_penalty != 1.f)
    for (size_t i = history.size() - w; i < history.size(); ++i) {
      const int32_t id = history[i];
      if (seen[size_t(id)]) continue;
      seen[size_t(id)] = true;
      s[size_t(id)] = s[size_t(id)] > 0 ? s[size_t(id)] / sp.repetition_penalty : s[size_t(id)] * sp.repetition_penalty;
    }
  const float inv_t = 1.0f / sp.temperature;
  for (float& v : s) v *= inv_t;
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[size_t(a)] > s[size_t(b)]; });
  const double m = s[size_t(order[0])];
  if (sp.top_k > 0 && sp.top_k < n) order.resize(size_t(sp.top_k));
  if (sp.top_p < 1.f) {
    double zc = 0, cum = 0;
    for (int id : order) zc += std::exp(double(s[size_t(id)]) - m);
    for (size_t i = 0; i < order.size(); ++i) {
      cum += std::exp(double(s[size_t(order[i])]) - m) / zc;
      if (cum >= sp.top_p) {
        order.resize(i + 1);
        break;
      }
    }
  }
  if (sp.min_p > 0) std::erase_if(order, [&](int id) { return double(s[size_t(id)]) < m + std::log(double(sp.min_p)); });
  std::vector<double> p(static_cast<size_t>(n), 0.0);
  double zf = 0;
  for (int id : order) zf += std::exp(double(s[size_t(id)]) - m);
  for (int id : order) p[size_t(id)] = std::exp(double(s[size_t(id)]) - m) / zf;
  return p;
}

// Empirical frequencies of `draws` against p: never outside the support, within 5 sigma.
void expect_frequencies(const std::vector<int32_t>& draws, const std::vector<double>& p, const char* what) {
  std::vector<double> f(p.size(), 0.0);
  for (int32_t t : draws) {
    ASSERT_GE(t, 0);
    ASSERT_LT(size_t(t), p.size());
    f[size_t(t)] += 1.0 / double(draws.size());
  }
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0.0) {
      EXPECT_EQ(f[i], 0.0) << what << ": token " << i << " is outside the kept set";
      continue;
    }
    // 5 sigma, plus a few draws for the rare tokens where the normal approximation is poor.
    const double n = double(draws.size()), sigma = std::sqrt(p[i] * (1 - p[i]) / n);
    EXPECT_NEAR(f[i], p[i], 5 * sigma + 4.0 / n) << what << ": token " << i;
  }
}

SamplingParams sampling(float temperature, int top_k, float top_p, float min_p = 0.f, uint64_t seed = 0) {
  SamplingParams sp;
  sp.temperature = temperature;
  sp.top_k = top_k;
  sp.top_p = top_p;
  sp.min_p = min_p;
  sp.seed = seed;
  return sp;
}

std::vector<float> random_logits(int n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  return randn(size_t(n), rng, scale);
}

TEST(GpuSampling, GreedyIsTheArgmaxWithTiesToTheLowerId) {
  SKIP_WITHOUT_GPU();
  std::vector<float> l = random_logits(50280, 3, 2.f);
  l[777] = l[4242] = l[31000] = 30.f;  // a three-way tie at the top
  GpuSampler g(l);
  SamplingParams sp;
  sp.temperature = 0;
  sp.n_alternatives = 4;
  const auto t = g.draw(sp, {}, 0);
  EXPECT_EQ(t.id, 777);
  Sampler cpu(sp);
  std::vector<Alternative> alts;
  EXPECT_EQ(cpu.sample(l, {}, &alts), 777);
  ASSERT_EQ(alts.size(), 4u);
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_EQ(t.alternatives[j].id, alts[j].id) << j;
    EXPECT_NEAR(t.alternatives[j].prob, alts[j].prob, 1e-6) << j;
  }
}

TEST(GpuSampling, NonFiniteLogitsGiveTheMarkerAsTheCpuSamplerThrows) {
  SKIP_WITHOUT_GPU();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> cases(4, random_logits(5000, 8, 2.f));
  cases[0][123] = nan;
  cases[1][4999] = inf;
  std::fill(cases[2].begin(), cases[2].end(), -inf);
  for (size_t c = 0; c < cases.size(); ++c) {
    GpuSampler g(cases[c]);
    for (float temperature : {0.f, 0.8f}) {
      SamplingParams sp;
      sp.temperature = temperature;
      sp.top_k = temperature > 0 ? 10 : 0;
      sp.n_alternatives = 2;
      const int32_t id = g.draw(sp, {}, 0).id;
      Sampler cpu(sp);
      if (c < 3) {
        EXPECT_EQ(id, cuda::kNonFiniteToken) << "case " << c << ", temperature " << temperature;
        EXPECT_THROW(cpu.sample(cases[c], {}), Error) << "case " << c;
      } else {
        EXPECT_GE(id, 0) << "finite logits, temperature " << temperature;
      }
    }
  }
}

TEST(GpuSampling, SixtyFourAlternativesMatchTheCpuSampler) {
  SKIP_WITHOUT_GPU();
  const auto l = random_logits(50280, 4, 3.f);
  GpuSampler g(l);
  SamplingParams sp = sampling(0.7f, 0, 1.f);
  sp.n_alternatives = 64;
  const auto t = g.draw(sp, {}, 0);
  Sampler cpu(sp);
  std::vector<Alternative> alts;
  cpu.sample(l, {}, &alts);
  ASSERT_EQ(t.alternatives.size(), alts.size());
  for (size_t j = 0; j < alts.size(); ++j) {
    EXPECT_EQ(t.alternatives[j].id, alts[j].id) << j;
    EXPECT_NEAR(t.alternatives[j].prob, alts[j].prob, 1e-6) << j;
  }
}

// 100 tokens at 0, 1900 at -1, top-p 0.5: the nucleus ends inside the tied tail (~815 of its
// lowest ids), far past the 64 most likely tokens.
TEST(GpuSampling, TopPCutEqualsTheCpuSetWithTiesAtTheBoundary) {
  SKIP_WITHOUT_GPU();
  std::vector<float> l(2000, -1.f);
  std::mt19937 rng(9);
  std::vector<int> ids(2000);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  for (int i = 0; i < 100; ++i) l[size_t(ids[size_t(i)])] = 0.f;
  const SamplingParams sp = sampling(1.f, 0, 0.5f, 0.f, 3);
  const auto p = expected(l, sp, {});
  const int kept = int(std::count_if(p.begin(), p.end(), [](double q) { return q > 0; }));
  EXPECT_GT(kept, 800);
  EXPECT_LT(kept, 1000);
  Sampler cpu(sp);
  for (int i = 0; i < 2000; ++i) EXPECT_GT(p[size_t(cpu.sample(l, {}))], 0.0);  // the reading agrees
  GpuSampler g(l);
  expect_frequencies(g.draws(sp, draws_wanted()), p, "top-p 0.5 with ties");
}

// No top-k, no top-p: every token can be drawn. Almost all the mass is outside the top 64.
TEST(GpuSampling, DrawsFromTheWholeVocabulary) {
  SKIP_WITHOUT_GPU();
  auto l = random_logits(4096, 5, 0.3f);
  const SamplingParams sp = sampling(1.f, 0, 1.f, 0.f, 4);
  GpuSampler g(l);
  const auto d = g.draws(sp, draws_wanted());
  const auto p = expected(l, sp, {});
  std::vector<int> order(4096);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
  std::vector<bool> top(4096, false);
  for (int i = 0; i < 64; ++i) top[size_t(order[size_t(i)])] = true;
  double p_out = 0, f_out = 0;
  for (int i = 0; i < 4096; ++i) p_out += top[size_t(i)] ? 0 : p[size_t(i)];
  for (int32_t t : d) f_out += top[size_t(t)] ? 0 : 1.0 / double(d.size());
  EXPECT_GT(p_out, 0.9);
  EXPECT_NEAR(f_out, p_out, 5 * std::sqrt(p_out * (1 - p_out) / double(d.size())));
  // Buckets of 256 ids: frequencies against the expected mass.
  for (int b = 0; b < 16; ++b) {
    double pb = 0, fb = 0;
    for (int i = 256 * b; i < 256 * (b + 1); ++i) pb += p[size_t(i)];
    for (int32_t t : d) fb += t / 256 == b ? 1.0 / double(d.size()) : 0;
    EXPECT_NEAR(fb, pb, 5 * std::sqrt(pb * (1 - pb) / double(d.size()))) << "bucket " << b;
  }
}

struct Case {
  const char* what;
  float temperature;
  int top_k;
  float top_p, min_p;
};

class GpuSamplingCases : public ::testing::TestWithParam<Case> {};

TEST_P(GpuSamplingCases, FrequenciesMatchTheCpuSemantics) {
  SKIP_WITHOUT_GPU();
  const Case c = GetParam();
  const auto l = random_logits(300, 6, 2.f);
  const SamplingParams sp = sampling(c.temperature, c.top_k, c.top_p, c.min_p, 12);
  const auto p = expected(l, sp, {});
  Sampler cpu(sp);
  std::vector<int32_t> cd;
  for (int i = 0; i < 20000; ++i) cd.push_back(cpu.sample(l, {}));
  expect_frequencies(cd, p, "CPU sampler vs the expected distribution");
  GpuSampler g(l);
  expect_frequencies(g.draws(sp, draws_wanted()), p, c.what);
}

INSTANTIATE_TEST_SUITE_P(
    Params, GpuSamplingCases,
    ::testing::Values(Case{"temperature only", 1.3f, 0, 1.f, 0.f},
                      Case{"top-p 0.9 + min-p 0.05", 0.9f, 0, 0.9f, 0.05f},
                      Case{"top-k 10 + top-p 0.8", 1.2f, 10, 0.8f, 0.f},
                      Case{"top-k 100 (beyond the sorted list) + top-p 0.95", 1.5f, 100, 0.95f, 0.f},
                      Case{"top-k 100 + min-p 0.1", 1.f, 100, 1.f, 0.1f}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

// The penalty over a history, once per distinct id, one draw at a time.
TEST(GpuSampling, RepetitionPenaltyFrequencies) {
  SKIP_WITHOUT_GPU();
  auto l = random_logits(40, 7, 1.f);
  const std::vector<int32_t> history{3, 5, 3, 7, 11, 5, 2};
  for (int32_t id : history) l[size_t(id)] = std::abs(l[size_t(id)]) + 1.f;  // make the penalty matter
  l[2] = -2.f;  // a negative logit: multiplied, not divided
  SamplingParams sp = sampling(1.f, 0, 1.f);
  sp.repetition_penalty = 1.8f;
  sp.repetition_window = int(history.size());
  const auto p = expected(l, sp, history);
  GpuSampler g(l);
  const int n = std::min(draws_wanted(), 5000);
  std::vector<int32_t> d;
  for (int i = 0; i < n; ++i) d.push_back(g.draw(sp, history, i).id);
  expect_frequencies(d, p, "repetition penalty");
}

TEST(GpuSampling, SeedsAreReproducible) {
  SKIP_WITHOUT_GPU();
  const auto l = random_logits(50280, 8, 2.f);
  GpuSampler g(l);
  SamplingParams sp = sampling(1.f, 0, 0.9f, 0.f, 21);
  const auto a = g.draws(sp, 64), b = g.draws(sp, 64);
  EXPECT_EQ(a, b);
  sp.seed = 22;
  EXPECT_NE(g.draws(sp, 64), a);
}

}  // namespace
}  // namespace mambascope::test

#else
TEST(GpuDecode, NeedsACudaBuild) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
