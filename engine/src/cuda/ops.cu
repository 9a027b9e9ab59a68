// The CUDA twins of the CPU reference ops (ops.hpp): norms, embedding, conv1d, projections
// (cublasGemmEx, or the fixed cuBLASLt algorithm of gemm_table.hpp where it covers the shape).
#include <cub/block/block_reduce.cuh>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/gemm_table.hpp"
#include "cuda/ops.hpp"

namespace mambascope::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void embedding_kernel(const int32_t* ids, const T* table, int64_t d, float* out) {
  const T* row = table + int64_t(ids[blockIdx.x]) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) out[blockIdx.x * d + i] = to_f32(row[i]);
}

// An unsigned word of 4, 8 or 16 bytes.
template <size_t B>
using word_t = std::conditional_t<B == 16, uint4, std::conditional_t<B == 8, uint2, uint32_t>>;

// V consecutive elements as fp32: one 16-, 8- or 4-byte load when V elements are that wide (the
// caller checked the alignment), else one by one.
template <int V, typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&o)[V]) {
  if constexpr (V > 1 && (V * sizeof(T) == 16 || V * sizeof(T) == 8 || V * sizeof(T) == 4)) {
    using W = word_t<V * sizeof(T)>;
    const W r = *reinterpret_cast<const W*>(p);
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
  if constexpr (V > 1 && (V * sizeof(T) == 16 || V * sizeof(T) == 8 || V * sizeof(T) == 4)) {
    using W = word_t<V * sizeof(T)>;
    W r;
    T* e = reinterpret_cast<T*>(&r);
#pragma unroll
    for (int v = 0; v < V; ++v) e[v] = from_f32<T>(o[v]);
    *reinterpret_cast<W*>(p) = r;
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) p[v] = from_f32<T>(o[v]);
  }
}

// One block per row. The general form: any d, the row re-read for the second pass.
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

// The fast form for d % 4 == 0 and aligned rows: a thread holds kNormVec float4s of the row in
// registers (all loads in flight at once, the residual read once), blockDim.x = ceil(d / 4 /
// kNormVec) rounded up to whole warps; a warp-shuffle sum, one barrier.
constexpr int kNormVec = 4;
template <typename T>
__global__ void add_rms_norm_vec_kernel(float* residual, const float* x, const float* w, float eps,
                                        int64_t d, T* out, int64_t ldo) {
  __shared__ float part[32];
  const int d4 = int(d / 4), nt = int(blockDim.x);
  float4* r = reinterpret_cast<float4*>(residual + blockIdx.x * d);
  const float4* xr = x ? reinterpret_cast<const float4*>(x + blockIdx.x * d) : nullptr;
  float4 v[kNormVec];
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < kNormVec; ++i) {
    const int j = int(threadIdx.x) + i * nt;
    if (j < d4) v[i] = r[j];
  }
#pragma unroll
  for (int i = 0; i < kNormVec; ++i) {
    const int j = int(threadIdx.x) + i * nt;
    if (j >= d4) continue;
    if (xr) {
      const float4 a = xr[j];
      v[i].x += a.x; v[i].y += a.y; v[i].z += a.z; v[i].w += a.w;
      r[j] = v[i];
    }
    sq += v[i].x * v[i].x + v[i].y * v[i].y + v[i].z * v[i].z + v[i].w * v[i].w;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = sq;
  __syncthreads();
  float total = 0.f;
  for (int i = 0; i < nt / 32; ++i) total += part[i];
  const float inv = rsqrtf(total / float(d) + eps);
  T* o = out + blockIdx.x * ldo;
  const float4* w4 = reinterpret_cast<const float4*>(w);
#pragma unroll
  for (int i = 0; i < kNormVec; ++i) {
    const int j = int(threadIdx.x) + i * nt;
    if (j >= d4) continue;
    const float4 g = w4[j];
    const float e[4] = {v[i].x * inv * g.x, v[i].y * inv * g.y, v[i].z * inv * g.z, v[i].w * inv * g.w};
    store_vec<4>(o + 4 * j, e);
  }
}

constexpr int kConvTokens = 8;  // tokens per thread: their inputs are all loaded before any math
constexpr int kConvThreads = 64;
constexpr int kConvMaxTiles = 65535;  // grid.y; longer inputs loop over their token tiles

// V raw elements, loaded as one (the caller checked the alignment).
template <typename T, int V>
struct alignas(sizeof(T) * V < 16 ? sizeof(T) * V : 16) Pack {
  T e[V];
};

// The general form, for rows the streaming form below cannot copy in 16-byte pieces: one thread
// per V adjacent channels and kConvTokens tokens. Its k-1 older inputs (from x or, before token
// 0, from conv_state) are read as fp32 into a window right-aligned in KM slots (win[KM-1] is the
// newest; taps before the k-th from the right have weight 0), then all of the tile's inputs are
// loaded at once, raw, and the outputs computed with compile-time indices. The taps are summed
// in the same order as the CPU reference (bias, then oldest to newest). The threads of token
// tile 0 also write the new conv_state (the last k-1 inputs) after reading the old one, so no
// other thread reads what they overwrite (no second kernel for the state).
template <typename T, int V, int KM>
__global__ void __launch_bounds__(kConvThreads)
conv1d_kernel(const T* __restrict__ x, int64_t ldx, float* state, const float* __restrict__ w,
              const float* __restrict__ b, int64_t L, int64_t d, int k, T* __restrict__ out) {
  const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (c0 >= d) return;
  float wr[V][KM], bias[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    bias[v] = b ? b[c0 + v] : 0.f;
#pragma unroll
    for (int i = 0; i < KM; ++i) {
      const int j = i - (KM - k);  // tap j of k
      wr[v][i] = j >= 0 ? w[(c0 + v) * k + j] : 0.f;
    }
  }
  const int64_t tiles = (L + kConvTokens - 1) / kConvTokens;
  for (int64_t tile = blockIdx.y; tile < tiles; tile += gridDim.y) {
    const int64_t t0 = tile * kConvTokens;
    // win[v][i + 1] starts as the input at t0 - (KM-1) + i; slots no tap reaches stay 0.
    float win[V][KM];
#pragma unroll
    for (int i = 0; i < KM - 1; ++i) {
      const int64_t s = t0 - (KM - 1) + i;
      float vals[V];
#pragma unroll
      for (int v = 0; v < V; ++v) vals[v] = 0.f;
      if (i >= KM - k) {
        if (s >= 0) {
          load_vec<V>(x + s * ldx + c0, vals);
        } else {
#pragma unroll
          for (int v = 0; v < V; ++v) vals[v] = state[(c0 + v) * (k - 1) + (k - 1 + s)];
        }
      }
#pragma unroll
      for (int v = 0; v < V; ++v) win[v][i + 1] = vals[v];
    }
    Pack<T, V> raw[kConvTokens];
#pragma unroll
    for (int t = 0; t < kConvTokens; ++t)
      if (t0 + t < L) raw[t] = *reinterpret_cast<const Pack<T, V>*>(x + (t0 + t) * ldx + c0);
#pragma unroll
    for (int t = 0; t < kConvTokens; ++t) {
      if (t0 + t >= L) break;
      float vals[V];
#pragma unroll
      for (int v = 0; v < V; ++v) {
#pragma unroll
        for (int i = 0; i < KM - 1; ++i) win[v][i] = win[v][i + 1];
        win[v][KM - 1] = to_f32(raw[t].e[v]);
        float acc = bias[v];
#pragma unroll
        for (int i = 0; i < KM; ++i)
          if (i >= KM - k) acc = fmaf(wr[v][i], win[v][i], acc);
        vals[v] = silu_stored_as<T>(acc);
      }
      store_vec<V>(out + (t0 + t) * d + c0, vals);
    }
  }
  if (blockIdx.y != 0) return;
  // The new state: the last k-1 inputs, from x or, for L < k-1, from the old state (entry j + L,
  // which this ascending loop has not overwritten yet).
#pragma unroll
  for (int j = 0; j < KM - 1; ++j) {
    if (j >= k - 1) break;
    const int64_t s = L - (k - 1) + j;
    float vals[V];
    if (s >= 0) {
      load_vec<V>(x + s * ldx + c0, vals);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) vals[v] = state[(c0 + v) * (k - 1) + j + L];
    }
#pragma unroll
    for (int v = 0; v < V; ++v) state[(c0 + v) * (k - 1) + j] = vals[v];
  }
}

// The streaming form, for rows and channel chunks 16-byte aligned: a block owns kStreamChannels
// channels (two per thread) and a strip of tokens, which it walks in tiles that cp.async copies
// into shared memory, the next tile's copy in flight while this one is computed (the bytes in
// flight cost no registers); the window of older inputs stays in registers from tile to tile.
// Taps, window and state as in conv1d_kernel.
constexpr int kStreamThreads = 128;
constexpr int kStreamChannels = 2 * kStreamThreads;
constexpr int kStreamStageBytes = 16384;
// Tiles per strip: 4 measured 55 us at the 2.8b shape (5120 x 8192 bf16, H200), 2 tiles 55,
// 8 tiles 58, 1 tile 59; a 64-register cap did not help (57).
constexpr int kStreamStripTiles = 4;

template <typename T>
constexpr int stream_rows() { return kStreamStageBytes / (kStreamChannels * int(sizeof(T))); }

template <typename T, int KM>
__global__ void __launch_bounds__(kStreamThreads)
conv1d_stream_kernel(const T* __restrict__ x, int64_t ldx, float* state, const float* __restrict__ w,
                     const float* __restrict__ b, int64_t L, int64_t d, int k, int64_t strip,
                     T* __restrict__ out) {
  constexpr int kRowBytes = kStreamChannels * int(sizeof(T));
  constexpr int kRows = stream_rows<T>();
  constexpr int kPieces = kRowBytes / 16;  // 16-byte copies per row
  __shared__ alignas(16) unsigned char stage[2][kStreamStageBytes];  // {2, kRows, channels} T
  const int64_t cb = int64_t(blockIdx.x) * kStreamChannels;           // the block's first channel
  const int64_t c0 = cb + 2 * threadIdx.x;                            // this thread's two
  const bool active = c0 < d;                                         // d is even
  const int row_pieces = int(min(int64_t(kPieces), (d - cb) * int64_t(sizeof(T)) / 16));
  float wr[2][KM], bias[2];
#pragma unroll
  for (int v = 0; v < 2; ++v) {
    bias[v] = active && b ? b[c0 + v] : 0.f;
#pragma unroll
    for (int i = 0; i < KM; ++i) {
      const int j = i - (KM - k);  // tap j of k
      wr[v][i] = active && j >= 0 ? w[(c0 + v) * k + j] : 0.f;
    }
  }
  const int64_t strips = (L + strip - 1) / strip;
  for (int64_t si = blockIdx.y; si < strips; si += gridDim.y) {
    const int64_t t_begin = si * strip, t_end = min(L, t_begin + strip);
    const int n_tiles = int((t_end - t_begin + kRows - 1) / kRows);
    auto issue = [&](int tile) {
      const int64_t r0 = t_begin + int64_t(tile) * kRows;
      const int rows = int(min(int64_t(kRows), t_end - r0));
      unsigned char* dst = stage[tile & 1];
      for (int p = threadIdx.x; p < rows * kPieces; p += kStreamThreads) {
        const int r = p / kPieces, q = p % kPieces;
        if (q < row_pieces)
          cp_async16(dst + r * kRowBytes + q * 16,
                     reinterpret_cast<const unsigned char*>(x + (r0 + r) * ldx + cb) + q * 16);
      }
      cp_async_commit();
    };
    issue(0);
    float win[2][KM];  // win[v][i + 1] starts as the input at t_begin - (KM-1) + i
#pragma unroll
    for (int i = 0; i < KM - 1; ++i) {
      const int64_t s = t_begin - (KM - 1) + i;
      float vals[2] = {0.f, 0.f};
      if (active && i >= KM - k) {
        if (s >= 0) load_vec<2>(x + s * ldx + c0, vals);
        else for (int v = 0; v < 2; ++v) vals[v] = state[(c0 + v) * (k - 1) + (k - 1 + s)];
      }
#pragma unroll
      for (int v = 0; v < 2; ++v) win[v][i + 1] = vals[v];
    }
    for (int tile = 0; tile < n_tiles; ++tile) {
      if (tile + 1 < n_tiles) {
        issue(tile + 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      const int64_t r0 = t_begin + int64_t(tile) * kRows;
      const int rows = int(min(int64_t(kRows), t_end - r0));
      const unsigned char* src = stage[tile & 1] + threadIdx.x * 2 * sizeof(T);
      if (active) {
#pragma unroll 4
        for (int r = 0; r < rows; ++r) {
          const T* e = reinterpret_cast<const T*>(src + r * kRowBytes);
          float vals[2];
#pragma unroll
          for (int v = 0; v < 2; ++v) {
#pragma unroll
            for (int i = 0; i < KM - 1; ++i) win[v][i] = win[v][i + 1];
            win[v][KM - 1] = to_f32(e[v]);
            float acc = bias[v];
#pragma unroll
            for (int i = 0; i < KM; ++i)
              if (i >= KM - k) acc = fmaf(wr[v][i], win[v][i], acc);
            vals[v] = silu_stored_as<T>(acc);
          }
          store_vec<2>(out + (r0 + r) * d + c0, vals);
        }
      }
      __syncthreads();  // this stage is refilled by tile + 2's copy
    }
  }
  if (blockIdx.y != 0 || !active) return;
  // The new state, as in conv1d_kernel.
#pragma unroll
  for (int j = 0; j < KM - 1; ++j) {
    if (j >= k - 1) break;
    const int64_t s = L - (k - 1) + j;
    float vals[2];
    if (s >= 0) load_vec<2>(x + s * ldx + c0, vals);
    else for (int v = 0; v < 2; ++v) vals[v] = state[(c0 + v) * (k - 1) + j + L];
#pragma unroll
    for (int v = 0; v < 2; ++v) state[(c0 + v) * (k - 1) + j] = vals[v];
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

// The device's SM count, asked once.
int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      return 132;
    return v;
  }();
  return n;
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
  const auto aligned = [](const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
  const int64_t threads = (d / 4 + kNormVec - 1) / kNormVec;
  const bool vec = d % 4 == 0 && ldo % 4 == 0 && threads <= 1024 && aligned(residual, 16) &&
                   aligned(x, 16) && aligned(w, 16) && aligned(out, 4 * dtype_size(dt));
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if (vec)
      add_rms_norm_vec_kernel<T><<<unsigned(n), unsigned((threads + 31) / 32 * 32), 0, stream>>>(
          residual, x, w, eps, d, static_cast<T*>(out), ldo);
    else
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
    const auto at = [](const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
    if ((d * sizeof(T)) % 16 == 0 && (ldx * sizeof(T)) % 16 == 0 && at(x, 16) && at(out, 2 * sizeof(T))) {
      constexpr int rows = stream_rows<T>();
      const int64_t chunks = (d + kStreamChannels - 1) / kStreamChannels;
      // Strips of kStreamStripTiles tiles, shorter while that leaves fewer than two blocks per SM.
      int64_t strip = kStreamStripTiles * rows;
      while (strip > rows && chunks * ((L + strip - 1) / strip) < 2 * sm_count()) strip /= 2;
      const int64_t strips = (L + strip - 1) / strip;
      const dim3 grid(unsigned(chunks), unsigned(strips < kConvMaxTiles ? strips : kConvMaxTiles));
      auto launch = [&](auto kernel) {
        kernel<<<grid, kStreamThreads, 0, stream>>>(static_cast<const T*>(x), ldx, conv_state, w, b,
                                                   L, d, int(k), strip, static_cast<T*>(out));
      };
      if (k <= 4) launch(conv1d_stream_kernel<T, 4>);
      else launch(conv1d_stream_kernel<T, 9>);
      return;
    }
    // Other rows: 4 channels a thread where their loads align, else one.
    const bool vec = d % 4 == 0 && ldx % 4 == 0 && at(x, 4 * sizeof(T)) && at(out, 4 * sizeof(T));
    auto launch = [&](auto kernel, int v) {
      const int64_t tiles = (L + kConvTokens - 1) / kConvTokens;
      const dim3 grid(unsigned((d / v + kConvThreads - 1) / kConvThreads),
                      unsigned(tiles < kConvMaxTiles ? tiles : kConvMaxTiles));
      kernel<<<grid, kConvThreads, 0, stream>>>(static_cast<const T*>(x), ldx, conv_state, w, b, L,
                                               d, int(k), static_cast<T*>(out));
    };
    if (vec && k <= 4) launch(conv1d_kernel<T, 4, 4>, 4);
    else if (vec) launch(conv1d_kernel<T, 4, 9>, 4);
    else if (k <= 4) launch(conv1d_kernel<T, 1, 4>, 1);
    else launch(conv1d_kernel<T, 1, 9>, 1);
  });
  MS_CUDA_CHECK_LAUNCH();
}


void linear(cublasHandle_t h, const void* x, int64_t ldx, const void* W, DType dt, int64_t n,
            int64_t in_f, int64_t out_f, void* y, DType ydt, int64_t ldy, float beta,
            cudaStream_t stream) {
  if (n == 0) return;
  // A fixed cuBLASLt algorithm where the table measured one that beats cublasGemmEx's choice.
  if (linear_from_table(LinearArgs{x, ldx, W, dt, n, in_f, out_f, y, ydt, ldy, beta}, stream)) return;
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
