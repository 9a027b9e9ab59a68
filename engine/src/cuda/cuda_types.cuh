// Device-side element types: loads and stores of bf16 / fp16 / fp32 as fp32, so that every
// kernel is written once over a template parameter T and instantiated per storage type.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Maps the engine's DType to the device element type.
template <DType D> struct DeviceType;
template <> struct DeviceType<DType::F32> { using type = float; };
template <> struct DeviceType<DType::F16> { using type = __half; };
template <> struct DeviceType<DType::BF16> { using type = __nv_bfloat16; };

// Calls f(T{}) with T the device type of dt: the one place a runtime dtype becomes a template.
template <typename F> void dispatch_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: f(float{}); break;
    case DType::F16: f(__half{}); break;
    case DType::BF16: f(__nv_bfloat16{}); break;
  }
}

__device__ __forceinline__ float silu(float x) { return x / (1.f + __expf(-x)); }
// SiLU of a value that is stored as T: x·σ(x) with σ(x) = (1 + tanh(x/2)) / 2 for bf16, one SFU
// op (tanh.approx: ~5e-4 absolute error on σ, under bf16's rounding of the result) instead of
// two (ex2 and rcp); fp16 and fp32 keep the exact-to-rounding silu(). The scan's gate and the
// prefill's conv use it: both are short of SFU throughput, not of accuracy.
template <typename T>
__device__ __forceinline__ float silu_stored_as(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const float h = 0.5f * x;
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(h));
    return fmaf(h, t, h);
  } else {
    return silu(x);
  }
}
// torch.nn.functional.softplus with its default threshold of 20. log1p(e) by its series where e
// is small (where 1 + e would lose digits), else by the fast log: two MUFU ops, not libm's log1pf.
__device__ __forceinline__ float softplus(float x) {
  if (x > 20.f) return x;
  const float e = __expf(x);
  return e < 1e-2f ? e * (1.f - e * (0.5f - e * (1.f / 3.f))) : __logf(1.f + e);
}

// 16-byte asynchronous global -> shared copy (sm_80+), so the next tile loads while this one
// is computed.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace mambascope::cuda
