// The prefill's projections through cuBLASLt with a FIXED algorithm per (GPU architecture,
// dtypes, shape): a small table of configurations measured on the H200 (`mambascope-bench
// --models 2.8b:ops` times each of cuBLASLt's heuristic candidates and prints its full
// configuration). An entry is set up with cublasLtMatmulAlgoInit and
// cublasLtMatmulAlgoConfigSetAttribute and checked once per shape with cublasLtMatmulAlgoCheck,
// so a given GPU and library always run the same kernel and compute the same bits; an algorithm
// picked by timing at run time could differ between runs. Where no entry covers a projection,
// or cuBLASLt rejects an entry on this GPU or library version, linear() (ops.hpp) runs
// cublasGemmEx as before. Included by ops.cu: C++17.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

// One cuBLASLt algorithm configuration (cublasLtMatmulAlgoConfigAttributes_t). -1 leaves an
// attribute at what cublasLtMatmulAlgoInit sets; on the H200 the check rejected algorithm 66
// with the stages and cluster shape left so: table entries give every attribute.
struct LtAlgoConfig {
  int algo = -1;           // CUBLASLT_ALGO_CONFIG_ID
  int tile = -1;           // cublasLtMatmulTile_t
  int stages = -1;         // cublasLtMatmulStages_t
  int splitk = 1;          // 1: no split of K, so no reduction order to vary
  int reduction = 0;       // cublasLtReductionScheme_t
  int swizzle = 0;         // CTA swizzling, 0 or 1
  int custom = 0;          // the algorithm's custom option
  int inner_shape = -1;    // cublasLtMatmulInnerShape_t
  int cluster_shape = -1;  // cublasLtClusterShape_t
};
std::string to_string(const LtAlgoConfig& c);
// What cuBLASLt filled in for `algo` (from its heuristic, say).
LtAlgoConfig lt_algo_config(const cublasLtMatmulAlgo_t& algo);

// A table row: the projections W {out_f, in_f} it covers, over rows (tokens) n in
// [min_rows, max_rows], and the algorithm it runs them with.
struct GemmTableEntry {
  std::string name;  // what it was measured for, e.g. "2.8b in_proj"
  int sm = 0;        // compute capability, major * 10 + minor
  DType dt = DType::BF16, ydt = DType::BF16;  // x and W; y
  int64_t out_f = 0, in_f = 0;
  int64_t min_rows = 0, max_rows = 0;
  LtAlgoConfig cfg;
};
const std::vector<GemmTableEntry>& builtin_gemm_table();

// y {n, out_f} (ydt, row stride ldy) = beta·y + x {n, in_f} (dt, row stride ldx) · W^T, as
// linear() in ops.hpp.
struct LinearArgs {
  const void* x = nullptr;
  int64_t ldx = 0;
  const void* W = nullptr;
  DType dt = DType::BF16;
  int64_t n = 0, in_f = 0, out_f = 0;
  void* y = nullptr;
  DType ydt = DType::BF16;
  int64_t ldy = 0;
  float beta = 0.f;
};

// cuBLASLt's heuristic candidates for the shape of `a` (at most `count`, none needing more
// workspace than a table algorithm may use), as configurations: what the benchmark times and a
// table entry is made from.
std::vector<LtAlgoConfig> lt_heuristic_configs(const LinearArgs& a, int count);

// Runs `a` with the algorithm `cfg` on `stream` and returns true, or returns false with nothing
// enqueued where cuBLASLt rejects the configuration for these operands on this GPU (the check's
// answer is kept per shape and configuration).
bool linear_lt(const LtAlgoConfig& cfg, const LinearArgs& a, cudaStream_t stream);
// The table's algorithm for `a`, if an entry covers it on the current device and cuBLASLt
// accepts it: true if it ran. linear() calls this first.
bool linear_from_table(const LinearArgs& a, cudaStream_t stream);
// Whether linear_from_table would run `a` (ignoring pointer alignment), and with which entry.
bool gemm_table_covers(const LinearArgs& a, std::string* entry_name = nullptr);

// For tests and benchmarks: the table in use (the built-in one until replaced), and a switch
// that sends every projection to cublasGemmEx. Process-wide.
void set_gemm_table(const std::vector<GemmTableEntry>& entries);
void use_builtin_gemm_table();
void set_gemm_table_enabled(bool on);
bool gemm_table_enabled();

}  // namespace mambascope::cuda
