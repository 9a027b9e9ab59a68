// The fused CUDA selective scan against the CPU reference ops (softplus_bias, ssm_scan_recurrent,
// gate_silu) over dtypes, every states-per-thread variant and tile length, and awkward shapes:
// L = 1, odd L, L not a multiple of the tile, long L, d_state 4..64 (odd too), d_inner not a
// multiple of the block or odd, batch > 1, strided B/C, y written over u, Δ overrides, probe
// outputs, LTI (constant B, C), chunks of L and balanced spans, y rows of any stride and alignment.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <tuple>

#include "cpu/cpu_ops.hpp"
#include "cuda_test_util.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cuda/scan.hpp"

namespace mambascope::test {
namespace {

using cuda::ScanParams;
using cuda::selective_scan;

struct Shape {
  int batch;
  int64_t L;
  int d, N;
};

// Tolerances on ‖gpu − cpu‖/‖cpu‖: the GPU rounds its output to the storage type; the state and
// probes stay fp32 (exp2.approx differs from std::exp by ~1e-7 relative).
double out_tol(DType dt) { return dt == DType::F32 ? 2e-5 : dt == DType::F16 ? 2e-3 : 1e-2; }
constexpr double kStateTol = 5e-5;

struct ScanCase {
  Shape s;
  DType dt;
  int ldbc;  // row stride of the B/C buffer (x_dbl layout: [dt_rank | B | C])
  std::vector<float> u, dtr, z, bc, A, D, bias, h0;
};

ScanCase make_case(Shape s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  ScanCase c{s, dt, 8 + 2 * s.N, {}, {}, {}, {}, {}, {}, {}, {}};
  const size_t nt = size_t(s.batch * s.L);
  c.u = randn(nt * s.d, rng);
  c.dtr = randn(nt * s.d, rng, 0.5f);
  c.z = randn(nt * s.d, rng);
  c.bc = randn(nt * c.ldbc, rng);
  std::uniform_real_distribution<float> log_dt(std::log(1e-3f), std::log(1e-1f));
  for (int ch = 0; ch < s.d; ++ch) {
    const float dt0 = std::exp(log_dt(rng));
    c.bias.push_back(dt0 + std::log(-std::expm1(-dt0)));  // inverse softplus
    c.D.push_back(1.0f + 0.1f * randn(1, rng)[0]);
    for (int n = 0; n < s.N; ++n) c.A.push_back(-float(n + 1) * (0.5f + float(ch % 3) * 0.25f));
  }
  c.h0 = randn(size_t(s.batch) * s.d * s.N, rng, 0.5f);
  for (auto* v : {&c.u, &c.dtr, &c.z, &c.bc}) round_all(dt, *v);
  return c;
}

struct Reference {
  std::vector<float> y, ypre, delta, h, h_all, hnorm;
};

Reference reference(const ScanCase& c, const std::vector<std::pair<int64_t, float>>& overrides = {}) {
  const auto& s = c.s;
  Reference r;
  const size_t per = size_t(s.L * s.d);
  r.y.resize(s.batch * per);
  r.ypre.resize(s.batch * per);
  r.delta.resize(s.batch * per);
  r.h = c.h0;
  r.h_all.resize(s.batch * per * s.N);
  r.hnorm.resize(s.batch * per);
  for (int b = 0; b < s.batch; ++b) {
    float* delta = r.delta.data() + b * per;
    cpu::softplus_bias(c.dtr.data() + b * per, c.bias.data(), s.L, s.d, delta);
    for (auto [t, v] : overrides)
      for (int ch = 0; ch < s.d; ++ch) delta[t * s.d + ch] = v;
    const float* bc = c.bc.data() + size_t(b) * s.L * c.ldbc;
    cpu::SsmArgs a{c.u.data() + b * per, delta, c.A.data(), bc + 8, c.ldbc, bc + 8 + s.N, c.ldbc,
                   c.D.data(), s.L, s.d, s.N, r.h.data() + size_t(b) * s.d * s.N,
                   r.ypre.data() + b * per, r.h_all.data() + b * per * s.N};
    cpu::ssm_scan_recurrent(a);
  }
  for (size_t i = 0; i < r.hnorm.size(); ++i) {
    double q = 0;
    for (int n = 0; n < s.N; ++n) q += double(r.h_all[i * s.N + n]) * r.h_all[i * s.N + n];
    r.hnorm[i] = float(std::sqrt(q));
  }
  r.y = r.ypre;
  cpu::gate_silu(r.y.data(), c.z.data(), s.d, int64_t(s.batch) * s.L, s.d);
  return r;
}

// Device copies of a case, and the ScanParams that point at them.
struct DeviceCase {
  DeviceBuffer u, dtr, z, bc, A, D, bias, h, y;
  ScanParams p;
  DeviceCase(const ScanCase& c, bool y_over_u = false)
      : u(c.u, c.dt), dtr(c.dtr, c.dt), z(c.z, c.dt), bc(c.bc, c.dt), A(c.A), D(c.D),
        bias(c.bias), h(c.h0), y(y_over_u ? 1 : c.u.size(), c.dt) {
    const auto& s = c.s;
    const int64_t esz = int64_t(dtype_size(c.dt));
    p.dtype = c.dt;
    p.batch = s.batch;
    p.L = s.L;
    p.d = s.d;
    p.N = s.N;
    p.u = u.get(); p.ldu = s.d; p.bsu = s.L * s.d;
    p.dt = dtr.get(); p.lddt = s.d; p.bsdt = s.L * s.d;
    p.z = z.get(); p.ldz = s.d; p.bsz = s.L * s.d;
    p.B = static_cast<char*>(bc.get()) + 8 * esz; p.ldb = c.ldbc; p.bsb = s.L * c.ldbc;
    p.C = static_cast<char*>(bc.get()) + (8 + s.N) * esz; p.ldc = c.ldbc; p.bsc = s.L * c.ldbc;
    p.A = A.f32();
    p.D = D.f32();
    p.dt_bias = bias.f32();
    p.h = h.f32();
    p.y = y_over_u ? u.get() : y.get(); p.ldy = s.d; p.bsy = s.L * s.d;
    if (!y_over_u) y.poison();
  }
  std::vector<float> output(const ScanCase& c) const {
    if (p.y == u.get()) return u.download();
    return y.download();
  }
};

class ScanVsCpu : public ::testing::TestWithParam<std::tuple<Shape, DType, int>> {};

TEST_P(ScanVsCpu, OutputAndFinalStateMatchTheRecurrence) {
  SKIP_WITHOUT_GPU();
  auto [s, dt, spt] = GetParam();
  const ScanCase c = make_case(s, dt, 1234 + uint32_t(s.L));
  const Reference r = reference(c);
  DeviceCase g(c);
  g.p.states_per_thread = spt;
  selective_scan(g.p, nullptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_LT(rel_error(g.output(c), r.y), out_tol(dt));
  EXPECT_LT(rel_error(g.h.download(), r.h), kStateTol);
}

const Shape kShapes[] = {
    {1, 1, 64, 16},     // one token
    {1, 7, 40, 4},      // odd L, d not a multiple of the block or the 16-byte vector
    {1, 100, 136, 16},  // L not a multiple of the 64-token tile
    {2, 129, 48, 8},    // batch, tile + 1
    {1, 333, 72, 5},    // odd d_state (padded states)
    {1, 257, 32, 64},   // the largest d_state (states_per_thread >= 2)
    {1, 5000, 24, 16},  // long L: the state crosses many tiles
    {1, 77, 37, 16},    // odd d: element-wise copies instead of 16-byte ones
};
INSTANTIATE_TEST_SUITE_P(Shapes, ScanVsCpu,
                         ::testing::Combine(::testing::ValuesIn(kShapes),
                                            ::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Values(1, 2, 4, 8, 16)));

// Every tile length: the state and the three-stage copy pipeline cross many tile boundaries.
class ScanTiles : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(ScanTiles, EveryTileLengthMatchesTheRecurrence) {
  SKIP_WITHOUT_GPU();
  auto [spt, tile] = GetParam();
  const ScanCase c = make_case({2, 1001, 136, 16}, DType::BF16, 21);
  const Reference r = reference(c);
  DeviceCase g(c);
  g.p.states_per_thread = spt;
  g.p.tile_len = tile;
  selective_scan(g.p, nullptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_LT(rel_error(g.output(c), r.y), out_tol(DType::BF16));
  EXPECT_LT(rel_error(g.h.download(), r.h), kStateTol);
}
// (16 states per lane at 64-token tiles, and 8 at 128, need more shared memory than an SM has.)
INSTANTIATE_TEST_SUITE_P(Tiles, ScanTiles,
                         ::testing::Values(std::make_tuple(1, 16), std::make_tuple(1, 32),
                                           std::make_tuple(1, 64), std::make_tuple(1, 128),
                                           std::make_tuple(2, 128), std::make_tuple(4, 16),
                                           std::make_tuple(4, 32), std::make_tuple(4, 64),
                                           std::make_tuple(4, 128), std::make_tuple(8, 32),
                                           std::make_tuple(8, 64), std::make_tuple(16, 16),
                                           std::make_tuple(16, 32)));

// A group's state handed from block to block through global memory, against the recurrence:
// - L in chunks run one after another by separate blocks: chunk boundaries inside and between
//   tiles, a last chunk shorter than the others, more chunks asked for than L has tiles
//   (L = 1), batch > 1, a long L with many hand-overs;
// - balanced spans: blocks take equal shares of the (batch entry, group, token) work, running a
//   span's pieces last to first, a group cut between two spans handing its state on: cuts
//   inside and between tiles, spans of two to six pieces, batch > 1 (a span crossing batch
//   entries), L = 1, one group per span, every tile length, spans of whole tiles where L is
//   whole tiles.
// Each with the returned state (p.h) and with the launch's own carry buffer (p.h null: zero
// initial state), launched twice: the second launch must find the ticket counter and flags zero
// again (each launch leaves them so; no memset runs in between).
class ScanChunks : public ::testing::TestWithParam<std::tuple<Shape, int, int, int, int>> {};

TEST_P(ScanChunks, StateHandedOnMatchesTheRecurrence) {
  SKIP_WITHOUT_GPU();
  auto [s, chunks, spans, spt, tile] = GetParam();
  for (bool with_state : {true, false}) {
    ScanCase c = make_case(s, DType::BF16, 31 + uint32_t(s.L));
    if (!with_state) std::fill(c.h0.begin(), c.h0.end(), 0.f);
    const Reference r = reference(c);
    DeviceCase g(c);
    if (!with_state) g.p.h = nullptr;
    g.p.l_chunks = chunks;
    g.p.spans = spans;
    g.p.states_per_thread = spt;
    g.p.tile_len = tile;
    const cuda::ScanConfig cfg = cuda::scan_config(g.p);
    EXPECT_LE(cfg.l_chunks, chunks);
    if (chunks > 1 && s.L >= int64_t(2) * cfg.tile_len) EXPECT_GT(cfg.l_chunks, 1);
    const int groups = (s.d + cfg.channels_per_block - 1) / cfg.channels_per_block;
    // Spans of equal length; of whole tiles where L is whole tiles (cuts on tile boundaries),
    // which may leave fewer spans than asked for.
    int64_t want_spans = spans > 1 ? std::min(spans, s.batch * groups) : 0;
    if (want_spans > 0 && s.L % cfg.tile_len == 0) {
      const int64_t total = int64_t(s.batch) * groups * s.L;
      const int64_t span = ((total + want_spans - 1) / want_spans + cfg.tile_len - 1) /
                           cfg.tile_len * cfg.tile_len;
      want_spans = (total + span - 1) / span;
    }
    EXPECT_EQ(cfg.spans, want_spans);
    // Per chunk of batch entry 0, for the failure message: where it goes wrong.
    const int64_t len = cfg.l_chunks > 1 ? ((s.L + chunks - 1) / chunks + cfg.tile_len - 1) /
                                               cfg.tile_len * cfg.tile_len
                                         : s.L;
    auto per_chunk = [&](const std::vector<float>& y) {
      std::string out;
      for (int64_t t0 = 0; t0 < s.L; t0 += len) {
        const int64_t t1 = std::min<int64_t>(s.L, t0 + len);
        const std::vector<float> a(y.begin() + t0 * s.d, y.begin() + t1 * s.d),
            b(r.y.begin() + t0 * s.d, r.y.begin() + t1 * s.d);
        out += " " + std::to_string(rel_error(a, b));
      }
      return out;
    };
    for (int rep = 0; rep < 2; ++rep) {
      if (with_state) g.h.upload(c.h0);
      selective_scan(g.p, nullptr);
      MS_CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<float> y = g.output(c);
      EXPECT_LT(rel_error(y, r.y), out_tol(DType::BF16))
          << "state " << with_state << " rep " << rep << " chunks " << cfg.l_chunks << " spans "
          << cfg.spans << ", error per chunk:" << per_chunk(y);
      if (with_state) EXPECT_LT(rel_error(g.h.download(), r.h), kStateTol);
    }
  }
}
// (Shape, l_chunks, spans, states per lane, tile)
INSTANTIATE_TEST_SUITE_P(
    Chunks, ScanChunks,
    ::testing::Values(std::make_tuple(Shape{1, 1001, 136, 16}, 2, 1, 0, 0),
                      std::make_tuple(Shape{1, 1001, 136, 16}, 3, 1, 4, 64),  // last chunk short
                      std::make_tuple(Shape{2, 777, 72, 16}, 5, 1, 2, 32),    // batch, odd L
                      std::make_tuple(Shape{1, 1, 64, 16}, 4, 1, 0, 0),       // one token: no chunks
                      std::make_tuple(Shape{1, 40, 40, 16}, 4, 1, 8, 16),     // L < chunks · tile
                      std::make_tuple(Shape{1, 5000, 24, 16}, 16, 1, 4, 128),  // long, many hand-overs
                      std::make_tuple(Shape{1, 333, 37, 5}, 3, 1, 1, 16),     // odd d and d_state
                      std::make_tuple(Shape{3, 2100, 200, 16}, 7, 1, 16, 32),
                      // The same launch shapes without chunks, and with 4 states per lane.
                      std::make_tuple(Shape{2, 777, 72, 16}, 1, 1, 2, 32),
                      std::make_tuple(Shape{1, 333, 37, 5}, 1, 1, 1, 16),
                      std::make_tuple(Shape{3, 2100, 200, 16}, 1, 1, 16, 32),
                      std::make_tuple(Shape{2, 777, 72, 16}, 5, 1, 4, 32),
                      std::make_tuple(Shape{1, 333, 37, 5}, 3, 1, 4, 16)));
INSTANTIATE_TEST_SUITE_P(
    Spans, ScanChunks,
    ::testing::Values(std::make_tuple(Shape{1, 1000, 256, 16}, 1, 3, 4, 0),    // 8 groups, cuts mid-tile
                      std::make_tuple(Shape{1, 1000, 256, 16}, 1, 5, 4, 64),
                      std::make_tuple(Shape{2, 333, 96, 16}, 1, 4, 4, 32),     // batch, odd L
                      std::make_tuple(Shape{1, 1, 256, 16}, 1, 3, 4, 16),      // one token
                      std::make_tuple(Shape{3, 700, 200, 16}, 1, 5, 0, 16),    // spans across batch entries
                      std::make_tuple(Shape{1, 777, 72, 5}, 1, 2, 4, 32),      // odd d_state, last group short
                      std::make_tuple(Shape{1, 2000, 640, 16}, 1, 7, 4, 128),  // up to four pieces
                      std::make_tuple(Shape{1, 300, 77, 16}, 1, 2, 4, 64),     // odd d: element-wise copies
                      // L whole tiles: spans of whole tiles (33 asked for, 32 run) ...
                      std::make_tuple(Shape{1, 256, 1280, 16}, 1, 33, 4, 64),
                      std::make_tuple(Shape{2, 512, 192, 16}, 1, 5, 4, 128),   // ... across batch entries
                      // a group each (span = L)
                      std::make_tuple(Shape{1, 100, 64, 16}, 1, 2, 0, 16)));

TEST(Scan, SpansNeedFourStatesPerLane) {
  SKIP_WITHOUT_GPU();
  const ScanCase c = make_case({1, 64, 256, 16}, DType::BF16, 3);
  DeviceCase g(c);
  g.p.spans = 3;
  g.p.states_per_thread = 2;
  EXPECT_THROW(selective_scan(g.p, nullptr), Error);
}

// Enough channel groups for more than one wave of blocks: 4 states per lane then run the
// variant compiled for two blocks per SM (the small shapes above take the wide-register one),
// also with fp32 storage and an odd d_state (the raw stage that holds one lane's C·h partials
// is then larger than its dt, B and C).
TEST(Scan, FourStatesOverSeveralWavesMatchTheRecurrence) {
  SKIP_WITHOUT_GPU();
  for (const auto& [dt, n, tile] : {std::make_tuple(DType::BF16, 16, 64), std::make_tuple(DType::F32, 5, 32)}) {
    const ScanCase c = make_case({2, 100, 4224, n}, dt, 17);
    const Reference r = reference(c);
    DeviceCase g(c);
    g.p.states_per_thread = 4;
    g.p.tile_len = tile;
    g.p.l_chunks = 1;  // neither chunks nor spans (which run the wide variant)
    g.p.spans = 1;
    selective_scan(g.p, nullptr);
    MS_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_LT(rel_error(g.output(c), r.y), out_tol(dt)) << dtype_name(dt) << " N " << n;
    EXPECT_LT(rel_error(g.h.download(), r.h), kStateTol) << dtype_name(dt) << " N " << n;
  }
}

TEST(Scan, ChunksOfLRefuseProbes) {
  SKIP_WITHOUT_GPU();
  const ScanCase c = make_case({1, 64, 32, 16}, DType::BF16, 3);
  DeviceCase g(c);
  DeviceBuffer delta(size_t(64 * 32));
  g.p.delta_out = delta.f32();
  g.p.l_chunks = 2;
  EXPECT_THROW(selective_scan(g.p, nullptr), Error);
  g.p.l_chunks = 0;
  g.p.spans = 2;
  EXPECT_THROW(selective_scan(g.p, nullptr), Error);
  g.p.delta_out = nullptr;
  g.p.l_chunks = 2;
  EXPECT_THROW(selective_scan(g.p, nullptr), Error);  // not both
}

TEST(Scan, ProbeOutputsMatchTheReference) {
  SKIP_WITHOUT_GPU();
  const Shape s{2, 90, 40, 16};
  const ScanCase c = make_case(s, DType::BF16, 7);
  const Reference r = reference(c);
  DeviceCase g(c);
  const int64_t from = 70;
  DeviceBuffer delta(size_t(s.batch * s.L * s.d)), ypre(delta.size()), hnorm(delta.size()),
      hout(size_t(s.batch * (s.L - from) * s.d * s.N));
  for (auto* b : {&delta, &ypre, &hnorm, &hout}) b->poison();
  g.p.delta_out = delta.f32();
  g.p.ypre_out = ypre.f32();
  g.p.hnorm_out = hnorm.f32();
  g.p.h_out = hout.f32();
  g.p.h_out_from = from;
  selective_scan(g.p, nullptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_LT(rel_error(delta.download(), r.delta), 1e-5);
  EXPECT_LT(rel_error(ypre.download(), r.ypre), kStateTol);
  EXPECT_LT(rel_error(hnorm.download(), r.hnorm), kStateTol);
  std::vector<float> want;
  const size_t per = size_t(s.L * s.d * s.N);
  for (int b = 0; b < s.batch; ++b)
    want.insert(want.end(), r.h_all.begin() + b * per + from * s.d * s.N, r.h_all.begin() + (b + 1) * per);
  EXPECT_LT(rel_error(hout.download(), want), kStateTol);
  EXPECT_LT(rel_error(g.output(c), r.y), out_tol(DType::BF16));
}

TEST(Scan, OutputMayOverwriteTheInput) {
  SKIP_WITHOUT_GPU();
  const ScanCase c = make_case({1, 300, 64, 16}, DType::BF16, 9);
  const Reference r = reference(c);
  DeviceCase g(c, /*y_over_u=*/true);
  selective_scan(g.p, nullptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_LT(rel_error(g.output(c), r.y), out_tol(DType::BF16));
}

// The prep warps of the two-blocks-per-SM variants (8 states per lane here) store two channels'
// outputs at once where y's rows allow it (even stride and base): every other y layout takes the
// per-channel stores. Rows with a gap past d (the gap must stay untouched), an odd base, an odd
// stride; d = 66 leaves one channel pair in the last block of 64 channels. Also the automatic
// variant.
TEST(Scan, OutputRowsOfAnyStrideAndAlignment) {
  SKIP_WITHOUT_GPU();
  const Shape s{2, 300, 66, 16};
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    const ScanCase c = make_case(s, dt, 19);
    const Reference r = reference(c);
    const std::pair<int, int> layouts[] = {{0, 68}, {1, 68}, {1, 67}, {0, 67}};  // (offset, ldy)
    for (int spt : {8, 0})
      for (auto [offset, ldy] : layouts) {
        DeviceCase g(c);
        DeviceBuffer y(size_t(offset + s.batch * s.L * ldy), dt);
        y.poison();
        g.p.y = static_cast<char*>(y.get()) + offset * dtype_size(dt);
        g.p.ldy = ldy;
        g.p.bsy = s.L * ldy;
        g.p.states_per_thread = spt;
        selective_scan(g.p, nullptr);
        MS_CUDA_CHECK(cudaDeviceSynchronize());
        const std::vector<float> all = y.download();
        std::vector<float> out;
        int untouched = 0;
        for (int64_t row = 0; row < s.batch * s.L; ++row)
          for (int col = 0; col < ldy; ++col) {
            const float v = all[offset + row * ldy + col];
            if (col < s.d) out.push_back(v);
            else untouched += std::isnan(v);
          }
        const std::string where = std::string(dtype_name(dt)) + " states " + std::to_string(spt) +
                                  " offset " + std::to_string(offset) + " ldy " + std::to_string(ldy);
        EXPECT_LT(rel_error(out, r.y), out_tol(dt)) << where;
        EXPECT_EQ(untouched, s.batch * s.L * (ldy - s.d)) << where;
        if (offset) EXPECT_TRUE(std::isnan(all[0])) << where;
      }
  }
}

TEST(Scan, DeltaOverridesReplaceDeltaAtTheirTokens) {
  SKIP_WITHOUT_GPU();
  const ScanCase c = make_case({1, 50, 32, 16}, DType::F32, 11);
  const Reference r = reference(c, {{3, 0.f}, {20, 8.f}});
  const Reference plain = reference(c);
  DeviceCase g(c);
  g.p.n_overrides = 2;
  g.p.override_t[0] = 3;
  g.p.override_value[0] = 0.f;
  g.p.override_t[1] = 20;
  g.p.override_value[1] = 8.f;
  selective_scan(g.p, nullptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_LT(rel_error(g.output(c), r.y), out_tol(DType::F32));
  EXPECT_GT(rel_error(plain.y, r.y), 1e-2);  // the override matters, so the check can fail
}

TEST(Scan, ConstantDeltaBAndCMatchTheLtiRecurrence) {
  SKIP_WITHOUT_GPU();
  const Shape s{1, 200, 48, 16};
  ScanCase c = make_case(s, DType::F32, 13);
  std::mt19937 rng(5);
  std::vector<float> dt_const = randn(s.d, rng, 0.3f, -3.f), Bk = randn(size_t(s.d) * s.N, rng),
                     Ck = randn(size_t(s.d) * s.N, rng);
  std::vector<float> delta(s.d), h = c.h0, y(size_t(s.L * s.d));
  for (int ch = 0; ch < s.d; ++ch) delta[ch] = std::log1p(std::exp(dt_const[ch]));
  cpu::LtiArgs a{c.u.data(), delta.data(), c.A.data(), Bk.data(), Ck.data(), c.D.data(),
                 s.L, s.d, s.N, h.data(), y.data()};
  cpu::ssm_lti_recurrent(a);
  DeviceCase g(c);
  DeviceBuffer dtk(dt_const), Bd(Bk), Cd(Ck);
  g.p.dt_const = dtk.f32();
  g.p.dt_bias = nullptr;
  g.p.B_const = Bd.f32();
  g.p.C_const = Cd.f32();
  g.p.z = nullptr;
  selective_scan(g.p, nullptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_LT(rel_error(g.output(c), y), out_tol(DType::F32));
  EXPECT_LT(rel_error(g.h.download(), h), kStateTol);
}

TEST(Scan, RejectsATooLargeStateWithAMessage) {
  SKIP_WITHOUT_GPU();
  ScanParams p;
  p.batch = 1; p.L = 4; p.d = 8; p.N = 300;
  int dummy[4];
  p.u = p.dt = p.B = p.C = p.y = dummy;
  p.A = reinterpret_cast<const float*>(dummy);
  EXPECT_THROW(selective_scan(p, nullptr), Error);
}

}  // namespace
}  // namespace mambascope::test

#else
TEST(Scan, NeedsACudaBuild) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
