// The CUDA twins of the CPU reference ops (ops.hpp): norms, embedding, conv1d, projections.
#include <cub/block/block_reduce.cuh>
#include <cstdint>
#include <type_traits>

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

// V consecutive elements as fp32: one 16-byte load when V elements are 16 bytes (the caller
// checked the alignment), else one by one.
template <int V, typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&o)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    const uint4 r = *reinterpret_cast<const uint4*>(p);
    const T* e = reinterpret_cast<const T*>(&r);
#pragma unroll
    for (int v = 0; v < V; ++v) o[v] = to_f32(e[v]);
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) o[v] = to_f32(p[v]);
  }
}
template <int V, typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&o)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    uint4 r;
    T* e = reinterpret_cast<T*>(&r);
#pragma unroll
    for (int v = 0; v < V; ++v) e[v] = from_f32<T>(o[v]);
    *reinterpret_cast<uint4*>(p) = r;
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) p[v] = from_f32<T>(o[v]);
  }
}

constexpr int kConvTokens = 32;  // tokens per thread: k-1 halo reads per 32 outputs
constexpr int kConvThreads = 64;

// One thread per V adjacent channels and kConvTokens tokens; the last KM inputs stay in
// registers, right-aligned (win[KM-1] is the newest, taps before the k-th from the right have
// weight 0), so every index is a compile-time one and each input is read once. The taps are
// summed in the same order as the CPU reference (bias, then oldest to newest).
template <typename T, int V, int KM>
__global__ void conv1d_kernel(const T* __restrict__ x, int64_t ldx, const float* __restrict__ state,
                              const float* __restrict__ w, const float* __restrict__ b, int64_t L,
                              int64_t d, int k, T* __restrict__ out) {
  const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (c0 >= d) return;
  const int64_t t0 = int64_t(blockIdx.y) * kConvTokens;
  const int64_t t1 = t0 + kConvTokens < L ? t0 + kConvTokens : L;
  float wr[V][KM], win[V][KM], bias[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    bias[v] = b ? b[c0 + v] : 0.f;
#pragma unroll
    for (int i = 0; i < KM; ++i) {
      const int j = i - (KM - k);  // tap j of k
      wr[v][i] = j >= 0 ? w[(c0 + v) * k + j] : 0.f;
      win[v][i] = 0.f;
    }
  }
  // Before output t the window is shifted left by one and x[t] enters at KM-1, so win[i+1]
  // starts as the input at t0 - (KM-1) + i (slots the first output's taps do not reach stay 0).
#pragma unroll
  for (int i = 0; i < KM - 1; ++i) {
    if (i < KM - k) continue;
    const int64_t s = t0 - (KM - 1) + i;
    if (s >= 0) {
      float vals[V];
      load_vec<V>(x + s * ldx + c0, vals);
#pragma unroll
      for (int v = 0; v < V; ++v) win[v][i + 1] = vals[v];
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) win[v][i + 1] = state[(c0 + v) * (k - 1) + (k - 1 + s)];
    }
  }
#pragma unroll 4
  for (int64_t t = t0; t < t1; ++t) {  // unrolled so that several tokens' loads are in flight
    float vals[V];
    load_vec<V>(x + t * ldx + c0, vals);
#pragma unroll
    for (int v = 0; v < V; ++v) {
#pragma unroll
      for (int i = 0; i < KM - 1; ++i) win[v][i] = win[v][i + 1];
      win[v][KM - 1] = vals[v];
      float acc = bias[v];
#pragma unroll
      for (int i = 0; i < KM; ++i)
        if (i >= KM - k) acc = fmaf(wr[v][i], win[v][i], acc);
      vals[v] = silu(acc);
    }
    store_vec<V>(out + t * d + c0, vals);
  }
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
    constexpr int kVec = int(16 / sizeof(T));  // channels per 16-byte load
    const bool vec = d % kVec == 0 && ldx % kVec == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(out) % 16 == 0;
    auto launch = [&](auto v_tag, auto km_tag) {
      constexpr int V = decltype(v_tag)::value, KM = decltype(km_tag)::value;
      const dim3 grid(unsigned((d / V + kConvThreads - 1) / kConvThreads),
                      unsigned((L + kConvTokens - 1) / kConvTokens));
      conv1d_kernel<T, V, KM><<<grid, kConvThreads, 0, stream>>>(
          static_cast<const T*>(x), ldx, conv_state, w, b, L, d, int(k), static_cast<T*>(out));
    };
    using V1 = std::integral_constant<int, 1>;
    using VN = std::integral_constant<int, kVec>;
    using K4 = std::integral_constant<int, 4>;
    using K9 = std::integral_constant<int, 9>;
    if (vec && k <= 4) launch(VN{}, K4{});
    else if (vec) launch(VN{}, K9{});
    else if (k <= 4) launch(V1{}, K4{});
    else launch(V1{}, K9{});
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
