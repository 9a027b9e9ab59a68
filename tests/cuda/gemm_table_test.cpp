// The GEMM table (engine/src/cuda/gemm_table.hpp): each entry for this GPU against cublasGemmEx
// and an fp64 product on the CPU, at the entry's shape, in the model's dtypes and with a row
// stride wider than the row; a configuration rebuilt from cuBLASLt's own heuristic choice runs
// through a table on any GPU; an entry cuBLASLt rejects falls back to cublasGemmEx with its
// exact bits; and a prefill at the 2.8b layer shape (so the table's entries run) against the CPU
// backend.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "cuda_test_util.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include <cublas_v2.h>

#include "cuda/gemm_table.hpp"
#include "cuda/ops.hpp"

namespace mambascope::test {
namespace {

using cuda::GemmTableEntry;
using cuda::LinearArgs;

int device_sm() {
  int dev = 0, major = 0, minor = 0;
  MS_CUDA_CHECK(cudaGetDevice(&dev));
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major * 10 + minor;
}

// Puts the built-in table back and switches it on, however a test ends.
struct TableGuard {
  ~TableGuard() {
    cuda::use_builtin_gemm_table();
    cuda::set_gemm_table_enabled(true);
  }
};

// One projection's operands on the device: x {n, ldx} and W {out_f, in_f} in dt, y {n, out_f} in
// ydt starting from y0, with the host copies (rounded to dt) for the CPU product.
struct Projection {
  int64_t n, in_f, out_f, ldx;
  DType dt, ydt;
  float beta;
  std::vector<float> x, W, y0;
  std::unique_ptr<DeviceBuffer> gx, gW, gy;
  Projection(int64_t n_, int64_t in, int64_t out, int64_t ld, DType dt_, DType ydt_, float beta_,
             std::mt19937& rng)
      : n(n_), in_f(in), out_f(out), ldx(ld), dt(dt_), ydt(ydt_), beta(beta_) {
    x = randn(size_t(n * ldx), rng);
    W = randn(size_t(out_f * in_f), rng, 0.02f);
    y0 = randn(size_t(n * out_f), rng);
    round_all(dt, x);
    round_all(dt, W);
    round_all(ydt, y0);
    gx = std::make_unique<DeviceBuffer>(x, dt);
    gW = std::make_unique<DeviceBuffer>(W, dt);
    gy = std::make_unique<DeviceBuffer>(y0, ydt);
  }
  LinearArgs args() const {
    return LinearArgs{gx->get(), ldx, gW->get(), dt, n, in_f, out_f, gy->get(), ydt, out_f, beta};
  }
  // y = beta·y0 + x W^T through linear() (the table, where it covers the shape), read back.
  std::vector<float> run(cublasHandle_t blas) {
    gy->upload(y0);
    cuda::linear(blas, gx->get(), ldx, gW->get(), dt, n, in_f, out_f, gy->get(), ydt, out_f, beta, nullptr);
    MS_CUDA_CHECK(cudaDeviceSynchronize());
    return gy->download();
  }
  // Row r of the product in fp64.
  std::vector<float> cpu_row(int64_t r) const {
    std::vector<float> out(static_cast<size_t>(out_f));
    for (int64_t o = 0; o < out_f; ++o) {
      double acc = beta * double(y0[size_t(r * out_f + o)]);
      for (int64_t k = 0; k < in_f; ++k) acc += double(x[size_t(r * ldx + k)]) * W[size_t(o * in_f + k)];
      out[size_t(o)] = float(acc);
    }
    return out;
  }
  std::vector<float> row(const std::vector<float>& y, int64_t r) const {
    return std::vector<float>(y.begin() + r * out_f, y.begin() + (r + 1) * out_f);
  }
};

// Different algorithms sum in different orders: fp32 outputs agree to accumulation rounding,
// 16-bit ones flip a last bit here and there.
double gemm_tol(DType ydt) { return ydt == DType::F32 ? 1e-5 : 4e-3; }

class Blas {
 public:
  Blas() { MS_CUDA_CHECK(cublasCreate(&h_)); }
  ~Blas() { cublasDestroy(h_); }
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

TEST(GemmTable, EveryEntryForThisGpuMatchesCublasGemmExAndTheCpu) {
  SKIP_WITHOUT_GPU();
  TableGuard guard;
  Blas blas;
  std::mt19937 rng(5);
  int ran = 0;
  for (const GemmTableEntry& e : cuda::builtin_gemm_table()) {
    if (e.sm != device_sm()) continue;
    SCOPED_TRACE(e.name);
    // A row count off every tile size, and rows wider than in_f, as x_proj's output is for dt_proj.
    Projection pr(e.min_rows + 5, e.in_f, e.out_f, e.in_f + 32, e.dt, e.ydt,
                  e.ydt == DType::F32 ? 1.f : 0.f, rng);
    std::string name;
    ASSERT_TRUE(cuda::gemm_table_covers(pr.args(), &name)) << "cuBLASLt rejects the entry on this GPU";
    EXPECT_EQ(name, e.name);
    const auto table = pr.run(blas.get());
    cuda::set_gemm_table_enabled(false);
    EXPECT_FALSE(cuda::gemm_table_covers(pr.args()));
    const auto gemm_ex = pr.run(blas.get());
    cuda::set_gemm_table_enabled(true);
    EXPECT_LT(rel_error(table, gemm_ex), gemm_tol(e.ydt));
    EXPECT_EQ(pr.run(blas.get()), table);  // the same algorithm: the same bits
    for (int64_t r : {int64_t(0), pr.n / 3, pr.n - 1}) {
      auto ref = pr.cpu_row(r);
      round_all(e.ydt, ref);
      EXPECT_LT(rel_error(pr.row(table, r), ref), gemm_tol(e.ydt)) << "row " << r;
    }
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "the table has no entry for sm_" << device_sm();
}

// cuBLASLt's heuristic choice for a small odd shape, read back as a configuration and put in a
// table: the table runs it on any GPU, with the bits of linear_lt on that configuration, and it
// agrees with cublasGemmEx and the CPU.
TEST(GemmTable, AConfigurationRebuiltFromTheHeuristicRunsThroughTheTable) {
  SKIP_WITHOUT_GPU();
  TableGuard guard;
  Blas blas;
  std::mt19937 rng(6);
  Projection pr(300, 200, 136, 200, DType::BF16, DType::BF16, 0.f, rng);
  const auto cands = cuda::lt_heuristic_configs(pr.args(), 1);
  ASSERT_EQ(cands.size(), 1u);
  const cuda::LtAlgoConfig cfg = cands[0];
  SCOPED_TRACE(cuda::to_string(cfg));
  cuda::set_gemm_table({GemmTableEntry{"heuristic", device_sm(), DType::BF16, DType::BF16, 136, 200, 1, 1 << 30, cfg}});
  ASSERT_TRUE(cuda::gemm_table_covers(pr.args()));
  const auto table = pr.run(blas.get());
  pr.gy->upload(pr.y0);
  ASSERT_TRUE(cuda::linear_lt(cfg, pr.args(), nullptr));
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(pr.gy->download(), table);
  cuda::set_gemm_table_enabled(false);
  EXPECT_LT(rel_error(table, pr.run(blas.get())), gemm_tol(DType::BF16));
  auto ref = pr.cpu_row(299);
  round_all(DType::BF16, ref);
  EXPECT_LT(rel_error(pr.row(table, 299), ref), gemm_tol(DType::BF16));
}

// Entries no GPU accepts (a tile id that names no tile, an algorithm id that does not exist):
// linear_lt says so without running anything, and linear() computes what cublasGemmEx does, bit
// for bit.
TEST(GemmTable, AnEntryCublasLtRejectsFallsBackToCublasGemmEx) {
  SKIP_WITHOUT_GPU();
  TableGuard guard;
  Blas blas;
  std::mt19937 rng(7);
  Projection pr(64, 96, 80, 96, DType::BF16, DType::F32, 1.f, rng);
  cuda::set_gemm_table_enabled(false);
  const auto gemm_ex = pr.run(blas.get());
  cuda::set_gemm_table_enabled(true);
  for (cuda::LtAlgoConfig cfg : {cuda::LtAlgoConfig{66, 65535}, cuda::LtAlgoConfig{1 << 20, 1}}) {
    SCOPED_TRACE(cuda::to_string(cfg));
    cuda::set_gemm_table({GemmTableEntry{"bogus", device_sm(), DType::BF16, DType::F32, 80, 96, 1, 1 << 30, cfg}});
    pr.gy->poison();
    EXPECT_FALSE(cuda::linear_lt(cfg, pr.args(), nullptr));
    MS_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(std::isnan(pr.gy->download()[0])) << "a rejected configuration wrote y";
    EXPECT_FALSE(cuda::gemm_table_covers(pr.args()));
    EXPECT_EQ(pr.run(blas.get()), gemm_ex);
  }
  auto ref = pr.cpu_row(63);
  EXPECT_LT(rel_error(pr.row(gemm_ex, 63), ref), gemm_tol(DType::F32));
}

// One layer of the 2.8b shape (d_model 2560, d_inner 5120, dt_rank 160) over enough tokens for
// the table's entries: logits and final state against the CPU backend, at the tolerance of the
// other bf16 comparisons.
TEST(GemmTable, APrefillAtThe28bLayerShapeMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const GemmTableEntry* in_proj = nullptr;  // the one for the fewest rows (the CPU's work)
  for (const GemmTableEntry& e : cuda::builtin_gemm_table())
    if (e.sm == device_sm() && e.name == "2.8b in_proj" && (!in_proj || e.min_rows < in_proj->min_rows))
      in_proj = &e;
  if (!in_proj) GTEST_SKIP() << "the table has no 2.8b entries for sm_" << device_sm();
  ModelConfig c;
  c.d_model = 2560; c.n_layer = 1; c.vocab_size = 512; c.d_state = 16; c.d_conv = 4;
  c.expand = 2; c.d_inner = 5120; c.dt_rank = 160; c.use_bias = false; c.use_conv_bias = true;
  c.tie_embeddings = true;
  const Checkpoint& ck = random_checkpoint("cuda_test_2.8b_layer", c, DType::BF16, 8);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 0);
  const int64_t L = in_proj->min_rows + 76;
  const auto ids = random_tokens(L, 512, 9);
  std::string name;
  ASSERT_TRUE(cuda::gemm_table_covers(LinearArgs{nullptr, 2560, nullptr, DType::BF16, L, 2560, 10240,
                                                 nullptr, DType::BF16, 10240, 0.f}, &name));
  ForwardOptions o;
  o.all_logits = true;
  std::vector<float> lg, lc;
  auto sg = gpu->new_state(), sc = cpu->new_state();
  gpu->forward(ids, *sg, o, lg);
  cpu->forward(ids, *sc, o, lc);
  EXPECT_LT(rel_error(lg, lc), 3e-2);
  const HostState hg = sg->to_host(), hc = sc->to_host();
  EXPECT_LT(rel_error(hg.ssm, hc.ssm), 3e-2);
  EXPECT_LT(rel_error(hg.conv, hc.conv), 3e-2);
}

}  // namespace
}  // namespace mambascope::test
#else
TEST(GemmTable, NeedsACudaBuild) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
