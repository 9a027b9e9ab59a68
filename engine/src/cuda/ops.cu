// The CUDA twins of the CPU reference ops (ops.hpp): norms, embedding, conv1d, projections.
#include <cub/block/block_reduce.cuh>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/ops.hpp"

namespace mambascope::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void add_rms_norm_kernel(float* residual, const float* x, const float* w, float eps,
                                    int64_t d, T* out, int64_t ldo) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ float inv;
  float* r = residual + blockIdx.x * d;
  const float* xr = x ? x + blockIdx.x * d : nullptr;
  float sq = 0.f;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    float v = r[i];
    if (xr) r[i] = v = v + xr[i];
    sq += v * v;
  }
  const float total = Reduce(tmp).Sum(sq);
  if (threadIdx.x == 0) inv = rsqrtf(total / float(d) + eps);
  __syncthreads();
  T* o = out + blockIdx.x * ldo;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) o[i] = from_f32<T>(r[i] * inv * w[i]);
}

template <typename T>
__global__ void embedding_kernel(const int32_t* ids, const T* table, int64_t d, float* out) {
  const T* row = table + int64_t(ids[blockIdx.x]) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) out[blockIdx.x * d + i] = to_f32(row[i]);
}

// One thread per (t, c): reads the k inputs it needs from x or, before token 0, the state.
template <typename T>
__global__ void conv1d_kernel(const T* x, int64_t ldx, const float* state, const float* w,
                              const float* b, int64_t L, int64_t d, int k, T* out) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= L * d) return;
  const int64_t t = idx / d, c = idx - t * d;
  float acc = b ? b[c] : 0.f;
  for (int j = 0; j < k; ++j) {
    const int64_t s = t - (k - 1) + j;  // input position for tap j
    const float v = s >= 0 ? to_f32(x[s * ldx + c]) : state[c * (k - 1) + (k - 1 + s)];
    acc = fmaf(w[c * k + j], v, acc);
  }
  out[t * d + c] = from_f32<T>(silu(acc));
}

// The new state: the last k-1 inputs, taken from x and, for short L, from the old state.
template <typename T>
__global__ void conv_state_kernel(const T* x, int64_t ldx, float* state, int64_t L, int64_t d,
                                  int k) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= d || k < 2) return;
  float old[8];
  for (int j = 0; j < k - 1; ++j) old[j] = state[c * (k - 1) + j];
  for (int j = 0; j < k - 1; ++j) {
    const int64_t s = L - (k - 1) + j;
    state[c * (k - 1) + j] = s >= 0 ? to_f32(x[s * ldx + c]) : old[j + L];
  }
}

template <typename T>
__global__ void add_bias_kernel(T* y, int64_t ldy, const float* bias, int64_t n, int64_t d) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n * d) return;
  const int64_t r = idx / d, c = idx - r * d;
  y[r * ldy + c] = from_f32<T>(to_f32(y[r * ldy + c]) + bias[c]);
}

template <typename T>
__global__ void to_f32_kernel(const T* x, int64_t ldx, int64_t n, int64_t d, float* out) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n * d) return;
  const int64_t r = idx / d, c = idx - r * d;
  out[idx] = to_f32(x[r * ldx + c]);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

cudaDataType_t cuda_type(DType dt) {
  switch (dt) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

}  // namespace

void add_rms_norm(float* residual, const float* x, const float* w, float eps, int64_t n,
                  int64_t d, void* out, DType dt, int64_t ldo, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    add_rms_norm_kernel<T><<<unsigned(n), kThreads, 0, stream>>>(residual, x, w, eps, d,
                                                                 static_cast<T*>(out), ldo);
  });
  MS_CUDA_CHECK_LAUNCH();
}

void embedding(const int32_t* ids, const void* table, DType dt, int64_t n, int64_t d, float* out,
               cudaStream_t stream) {
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<unsigned(n), kThreads, 0, stream>>>(ids, static_cast<const T*>(table), d, out);
  });
  MS_CUDA_CHECK_LAUNCH();
}

void conv1d_causal_silu(const void* x, int64_t ldx, float* conv_state, const float* w,
                        const float* b, int64_t L, int64_t d, int64_t k, void* out, DType dt,
                        cudaStream_t stream) {
  if (k > 9) throw Error("conv1d: kernel widths above 9 are not supported on the GPU");
  if (L == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    conv1d_kernel<T><<<blocks_for(L * d), kThreads, 0, stream>>>(
        static_cast<const T*>(x), ldx, conv_state, w, b, L, d, int(k), static_cast<T*>(out));
    MS_CUDA_CHECK_LAUNCH();
    conv_state_kernel<T><<<blocks_for(d), kThreads, 0, stream>>>(static_cast<const T*>(x), ldx,
                                                                  conv_state, L, d, int(k));
  });
  MS_CUDA_CHECK_LAUNCH();
}

void linear(cublasHandle_t h, const void* x, int64_t ldx, const void* W, DType dt, int64_t n,
            int64_t in_f, int64_t out_f, void* y, DType ydt, int64_t ldy, float beta,
            cudaStream_t stream) {
  if (n == 0) return;
  const float alpha = 1.f;
  MS_CUDA_CHECK(cublasSetStream(h, stream));
  // Row-major y^T = W x^T is column-major y = W^T(op T) x: m = out_f, n = rows, k = in_f.
  MS_CUDA_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(out_f), int(n), int(in_f), &alpha,
                             W, cuda_type(dt), int(in_f), x, cuda_type(dt), int(ldx), &beta, y,
                             cuda_type(ydt), int(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void add_bias(void* y, DType ydt, int64_t ldy, const float* bias, int64_t n, int64_t d,
              cudaStream_t stream) {
  if (n == 0 || !bias) return;
  dispatch_dtype(ydt, [&](auto tag) {
    using T = decltype(tag);
    add_bias_kernel<T><<<blocks_for(n * d), kThreads, 0, stream>>>(static_cast<T*>(y), ldy, bias, n, d);
  });
  MS_CUDA_CHECK_LAUNCH();
}

void to_f32(const void* x, DType dt, int64_t ldx, int64_t n, int64_t d, float* out,
            cudaStream_t stream) {
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    to_f32_kernel<T><<<blocks_for(n * d), kThreads, 0, stream>>>(static_cast<const T*>(x), ldx, n, d, out);
  });
  MS_CUDA_CHECK_LAUNCH();
}

}  // namespace mambascope::cuda
