// The CUDA twins of the CPU reference ops (engine/src/cpu/cpu_ops.hpp): same names, token-major
// layouts, fp32 math. Activations are stored as `dt` (bf16 / fp16 / fp32) where noted; the
// residual stream, the recurrent state and the norms' weights are fp32. All run on `stream`.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

// residual {n, d} (fp32, row stride d) += x {n, d} (fp32, if not null); out {n, d} (dt, row
// stride ldo) = rms_norm(residual) * w.
void add_rms_norm(float* residual, const float* x, const float* w, float eps, int64_t n,
                  int64_t d, void* out, DType dt, int64_t ldo, cudaStream_t stream);
// out {n, d} (fp32) = table[ids[i]] (table {vocab, d} in dt).
void embedding(const int32_t* ids, const void* table, DType dt, int64_t n, int64_t d,
               float* out, cudaStream_t stream);
// Causal depthwise conv over L tokens continuing from conv_state {d, k-1} (fp32, oldest first),
// then SiLU. x {L, d} (dt, row stride ldx); out {L, d} (dt); w {d, k}, b {d} or null (fp32).
// conv_state is updated to the last k-1 inputs.
void conv1d_causal_silu(const void* x, int64_t ldx, float* conv_state, const float* w,
                        const float* b, int64_t L, int64_t d, int64_t k, void* out, DType dt,
                        cudaStream_t stream);
// y {n, out_f} (ydt, row stride ldy) = beta·y + x {n, in_f} (dt, row stride ldx) · W^T
// (W {out_f, in_f} in dt). cuBLAS, fp32 accumulation. ydt is dt or F32. Shapes the GEMM
// table covers (gemm_table.hpp) run its fixed cuBLASLt algorithm, the rest cublasGemmEx.
void linear(cublasHandle_t h, const void* x, int64_t ldx, const void* W, DType dt, int64_t n,
            int64_t in_f, int64_t out_f, void* y, DType ydt, int64_t ldy, float beta,
            cudaStream_t stream);
// y {n, d} (ydt, row stride ldy) += bias {d} (fp32).
void add_bias(void* y, DType ydt, int64_t ldy, const float* bias, int64_t n, int64_t d,
              cudaStream_t stream);
// out {n, d} (fp32) = x {n, d} (dt, row stride ldx): copies of activations for probes.
void to_f32(const void* x, DType dt, int64_t ldx, int64_t n, int64_t d, float* out,
            cudaStream_t stream);

}  // namespace mambascope::cuda
