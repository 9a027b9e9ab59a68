// The per-layer single-token decode step (decode.hpp). At batch 1 every weight is read once per
// token, so each kernel is a GEMV streaming its matrix with 16-byte loads, four rows per warp in
// flight; what surrounds the GEMV (the RMSNorm before in_proj, the conv step after it, the
// residual add after out_proj) is fused into its prologue or epilogue to save launches. On sm_90,
// for small layers (use_pdl), the kernels are launched as programmatic dependents: once a
// kernel's inputs are ready it lets the next one start, so that one's blocks are resident and
// prefetching their weights to L2 while this one computes, and wait (griddepcontrol.wait) only
// before they read its outputs. Letting go only after its own wait keeps one kernel ahead, not
// a cascade of waiting blocks.
#include <cub/block/block_reduce.cuh>

#include <cstdlib>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/decode.hpp"

namespace mambascope::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// Programmatic dependent launch (no-ops before sm_90 and for kernels launched without it). Before
// the wait a kernel may only read what no earlier kernel of the step writes (its weights).
__device__ __forceinline__ void let_next_kernel_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Whether the step's kernels are launched as programmatic dependents: on sm_90 and later, for
// layers whose in_proj + out_proj are under 16 MB. Measured on the H200 (same run, 2 rounds):
// 130m (7 MB) per-layer step 1821-1826 -> 1895-1908 tok/s and 1508-1661 -> 1795-1806 with the
// app's probes; 2.8b (78 MB) 329 -> 249-250: the next kernel's L2 prefetch then competes with
// this one's weight stream. Between the two it is not measured (1.4b, 50 MB, keeps it off).
// MAMBASCOPE_DECODE_PDL=0|1 overrides (measurement). Asked per launch: cheap, legal in capture.
bool use_pdl(const DecodeShape& s) {
  static const int forced = [] {
    const char* e = std::getenv("MAMBASCOPE_DECODE_PDL");
    return e ? std::atoi(e) : -1;
  }();
  if (forced == 0) return false;
  const size_t layer_bytes = size_t(3) * size_t(s.d_model) * size_t(s.d_inner) * dtype_size(s.dtype);
  if (forced < 0 && layer_bytes >= (size_t(16) << 20)) return false;
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  return major >= 9;
}

template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), bool pdl, unsigned blocks, size_t smem, cudaStream_t stream,
            Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl ? 1 : 0;
  MS_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

enum class Pro { Norm, Plain };
enum class Epi { Store, AddTo, InProjConv };

struct GemvArgs {
  const void* W = nullptr;
  int rows = 0, K = 0;
  const float* x = nullptr;       // Plain: the input {K}; Norm: the residual {K}
  const float* norm_w = nullptr;  // Norm
  float eps = 0.f;
  const float* bias = nullptr;    // {rows} or null
  float* out = nullptr;           // Store / AddTo: {rows}; InProjConv: z {rows - d_inner}
  // InProjConv: rows [0, d_inner) are x, stepped through the causal conv and SiLU.
  int d_inner = 0, d_conv = 0;
  float* conv_state = nullptr;
  const float* conv_w = nullptr;
  const float* conv_b = nullptr;
  float* x_out = nullptr;
};

// kRowsPerWarp rows per warp: 4 for large outputs (more bytes in flight per warp), 1 for small
// ones (x_proj's few rows would otherwise occupy a handful of SMs).
template <typename T, Pro P, Epi E, int kRowsPerWarp>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const GemvArgs a) {
  constexpr int VEC = 16 / sizeof(T);
  extern __shared__ float xs[];  // {K}
  const int K = a.K;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r0 = (blockIdx.x * kWarps + warp) * kRowsPerWarp;
  const T* W = static_cast<const T*>(a.W);
  // Start this warp's rows on their way from DRAM to L2 before the prologue, which has to wait
  // for the previous kernel's output; the loads below then hit L2.
  {
    const int64_t row_bytes = int64_t(K) * sizeof(T);
    const int lines = int((row_bytes + 127) / 128);
    for (int i = lane; i < kRowsPerWarp * lines; i += 32) {
      const int rr = i / lines, li = i - rr * lines;
      if (r0 + rr < a.rows) {
        const char* addr = reinterpret_cast<const char*>(W + int64_t(r0 + rr) * K) + li * 128;
        asm volatile("prefetch.global.L2 [%0];" ::"l"(addr));
      }
    }
  }
  wait_for_previous_kernel();
  let_next_kernel_start();
  if constexpr (P == Pro::Norm) {
    using Reduce = cub::BlockReduce<float, kThreads>;
    __shared__ typename Reduce::TempStorage tmp;
    __shared__ float inv;
    float sq = 0.f;
    for (int i = threadIdx.x; i < K; i += kThreads) {
      const float v = a.x[i];
      xs[i] = v;
      sq += v * v;
    }
    const float total = Reduce(tmp).Sum(sq);
    if (threadIdx.x == 0) inv = rsqrtf(total / float(K) + a.eps);
    __syncthreads();
    for (int i = threadIdx.x; i < K; i += kThreads) xs[i] *= inv * a.norm_w[i];
  } else {
    for (int i = threadIdx.x; i < K; i += kThreads) xs[i] = a.x[i];
  }
  __syncthreads();

  if (r0 >= a.rows) return;
  float acc[kRowsPerWarp] = {};
  const bool vec = K % VEC == 0 && (reinterpret_cast<uintptr_t>(W) & 15) == 0;
  if (vec) {
    // kU iterations' loads are issued before any is used: kU·kRowsPerWarp 16-byte loads per
    // lane in flight.
    constexpr int kU = 4;
    for (int kb = lane * VEC; kb < K; kb += kU * 32 * VEC) {
      uint4 wv[kU][kRowsPerWarp];
#pragma unroll
      for (int u = 0; u < kU; ++u)
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          const int k0 = kb + u * 32 * VEC;
          if (k0 < K && r0 + rr < a.rows)
            wv[u][rr] = __ldg(reinterpret_cast<const uint4*>(W + int64_t(r0 + rr) * K + k0));
        }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int k0 = kb + u * 32 * VEC;
        if (k0 >= K) break;
        float xv[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) xv[j] = xs[k0 + j];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          if (r0 + rr >= a.rows) continue;
          T wt[VEC];
          memcpy(wt, &wv[u][rr], 16);
#pragma unroll
          for (int j = 0; j < VEC; ++j) acc[rr] = fmaf(to_f32(wt[j]), xv[j], acc[rr]);
        }
      }
    }
  } else {
    for (int k = lane; k < K; k += 32)
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr)
        if (r0 + rr < a.rows) acc[rr] = fmaf(to_f32(W[int64_t(r0 + rr) * K + k]), xs[k], acc[rr]);
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[rr] += __shfl_xor_sync(0xffffffffu, acc[rr], o);
  if (lane >= kRowsPerWarp) return;
  // Lane rr finishes row r0 + rr (acc is the same in every lane after the butterfly).
  float v = 0.f;
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr)
    if (lane == rr) v = acc[rr];
  const int r = r0 + lane;
  if (r >= a.rows) return;
  if (a.bias) v += a.bias[r];
  if constexpr (E == Epi::Store) {
    a.out[r] = v;
  } else if constexpr (E == Epi::AddTo) {
    a.out[r] += v;
  } else {
    if (r < a.d_inner) {
      // The conv step: window = (state..., v); the state shifts by one.
      const int k = a.d_conv;
      float* st = a.conv_state + int64_t(r) * (k - 1);
      const float* w = a.conv_w + int64_t(r) * k;
      float s = a.conv_b ? a.conv_b[r] : 0.f;
      for (int j = 0; j < k - 1; ++j) s = fmaf(w[j], st[j], s);
      s = fmaf(w[k - 1], v, s);
      for (int j = 0; j + 1 < k - 1; ++j) st[j] = st[j + 1];
      if (k > 1) st[k - 2] = v;
      a.x_out[r] = silu(s);
    } else {
      a.out[r - a.d_inner] = v;
    }
  }
}

template <Pro P, Epi E, int kRowsPerWarp = 4>
void launch_gemv(const DecodeShape& s, const GemvArgs& a, cudaStream_t stream) {
  const unsigned blocks = unsigned((a.rows + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp));
  const size_t smem = size_t(a.K) * sizeof(float);
  dispatch_dtype(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto kernel = gemv_kernel<T, P, E, kRowsPerWarp>;
    if (smem > 48 * 1024)
      MS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    launch(kernel, use_pdl(s), blocks, smem, stream, a);
  });
}

// One warp per channel: Δ from dt_proj (or the LTI Δ), the state update over the N states in
// the lanes, y = C·h + D·u, gated by SiLU(z).
template <typename T>
__global__ void __launch_bounds__(kThreads) ssm_step_kernel(const DecodeShape s, const DecodeLayer w,
                                                            const DecodeScratch sc, const DecodeProbes pr) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int c = blockIdx.x * kWarps + warp;
  wait_for_previous_kernel();
  let_next_kernel_start();
  if (c >= s.d_inner) return;
  const int N = s.d_state, R = s.dt_rank;
  float dtv;
  if (w.dt_lti) {
    dtv = w.dt_lti[c];
  } else {
    const T* row = static_cast<const T*>(w.dt_proj) + int64_t(c) * R;
    float acc = 0.f;
    for (int r = lane; r < R; r += 32) acc = fmaf(to_f32(row[r]), sc.xdbl[r], acc);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    dtv = acc + (w.dt_bias ? w.dt_bias[c] : 0.f);
  }
  float delta = softplus(dtv);
  if (pr.override_delta) delta = pr.override_value;
  const float u = sc.x[c];
  float yp = 0.f, sq = 0.f;
  for (int n = lane; n < N; n += 32) {
    const float Bn = w.B_lti ? w.B_lti[int64_t(c) * N + n] : sc.xdbl[R + n];
    const float Cn = w.C_lti ? w.C_lti[int64_t(c) * N + n] : sc.xdbl[R + N + n];
    float& h = w.ssm_state[int64_t(c) * N + n];
    const float hv = fmaf(__expf(delta * w.A[int64_t(c) * N + n]), h, delta * Bn * u);
    h = hv;
    yp = fmaf(Cn, hv, yp);
    sq = fmaf(hv, hv, sq);
  }
  for (int o = 16; o > 0; o >>= 1) {
    yp += __shfl_xor_sync(0xffffffffu, yp, o);
    sq += __shfl_xor_sync(0xffffffffu, sq, o);
  }
  if (lane != 0) return;
  float y = fmaf(w.D ? w.D[c] : 0.f, u, yp);
  if (pr.ypre) pr.ypre[c] = y;
  if (pr.delta) pr.delta[c] = delta;
  if (pr.hnorm) pr.hnorm[c] = sqrtf(sq);
  sc.y[c] = y * silu(sc.z[c]);
}

// One 32 × 32 tile per block through shared memory (padded: no bank conflicts), so that both
// the reads and the writes are coalesced.
template <typename E>
__global__ void transpose_kernel(const E* src, E* dst, int rows, int cols) {
  __shared__ E tile[32][33];
  const int c0 = int(blockIdx.x) * 32, r0 = int(blockIdx.y) * 32;
  for (int i = int(threadIdx.y); i < 32; i += int(blockDim.y)) {
    const int r = r0 + i, c = c0 + int(threadIdx.x);
    if (r < rows && c < cols) tile[i][threadIdx.x] = src[size_t(r) * cols + c];
  }
  __syncthreads();
  for (int i = int(threadIdx.y); i < 32; i += int(blockDim.y)) {
    const int c = c0 + i, r = r0 + int(threadIdx.x);
    if (r < rows && c < cols) dst[size_t(c) * rows + r] = tile[threadIdx.x][i];
  }
}

}  // namespace

void transpose_matrix(const void* src, void* dst, int rows, int cols, DType dt, cudaStream_t stream) {
  const dim3 grid(unsigned((cols + 31) / 32), unsigned((rows + 31) / 32)), block(32, 8);
  if (dtype_size(dt) == 4)
    transpose_kernel<<<grid, block, 0, stream>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), rows, cols);
  else
    transpose_kernel<<<grid, block, 0, stream>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), rows, cols);
  MS_CUDA_CHECK_LAUNCH();
}

void decode_layer(const DecodeShape& s, const DecodeLayer& w, float* residual,
                  const DecodeScratch& sc, const DecodeProbes& pr, cudaStream_t stream) {
  {
    GemvArgs a;
    a.W = w.in_proj; a.rows = 2 * s.d_inner; a.K = s.d_model;
    a.x = residual; a.norm_w = w.norm_w; a.eps = s.eps; a.bias = w.in_bias;
    a.out = sc.z; a.d_inner = s.d_inner; a.d_conv = s.d_conv; a.conv_state = w.conv_state;
    a.conv_w = w.conv_w; a.conv_b = w.conv_b; a.x_out = sc.x;
    launch_gemv<Pro::Norm, Epi::InProjConv>(s, a, stream);
  }
  if (w.x_proj) {
    GemvArgs a;
    a.W = w.x_proj; a.rows = s.dt_rank + 2 * s.d_state; a.K = s.d_inner;
    a.x = sc.x; a.out = sc.xdbl;
    launch_gemv<Pro::Plain, Epi::Store, 1>(s, a, stream);
  }
  dispatch_dtype(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(ssm_step_kernel<T>, use_pdl(s), unsigned((s.d_inner + kWarps - 1) / kWarps), 0, stream, s, w, sc, pr);
  });
  {
    GemvArgs a;
    a.W = w.out_proj; a.rows = s.d_model; a.K = s.d_inner;
    a.x = sc.y; a.bias = w.out_bias; a.out = residual;
    launch_gemv<Pro::Plain, Epi::AddTo>(s, a, stream);
  }
}

void decode_logits(const DecodeShape& s, const float* norm_f, const void* lm_head, int vocab,
                   const float* residual, float* logits, cudaStream_t stream) {
  GemvArgs a;
  a.W = lm_head; a.rows = vocab; a.K = s.d_model;
  a.x = residual; a.norm_w = norm_f; a.eps = s.eps; a.out = logits;
  launch_gemv<Pro::Norm, Epi::Store>(s, a, stream);
}

}  // namespace mambascope::cuda
