// The convolution mode (ssm_convolution.hpp) and the closed-form final state (ssm_modes.hpp).
//
// Selective kernel matrix, per channel c (a block owns one channel and 64 output tokens):
//  - Δ {L, d} = softplus(dt + bias) with the interventions, and S {L, d} = its running sum in
//    double (per 256-token chunk, then across chunks), so that S_t − S_s keeps its digits at any L.
//  - Column tiles left of the diagonal: with R = S_{t0−1} (t0 the block's first row) every
//    exponent splits into two non-positive parts, exp(A(S_t − S_s)) = exp(A(S_t − R))·exp(A(R − S_s)),
//    so a 64 × 64 tile of K is a rank-N product of two 64 × N factor tiles (row factors once per
//    block, column factors once per tile: O(64·N) exponentials per tile), then K·u. The K tile
//    itself is formed, 64·64·N multiply-adds, as the mode is meant to cost.
//  - The diagonal tile takes exp(A(S_t − S_s)) per pair, the difference formed in double.
//  - y_t also gets Σ_n C_t[n]·exp(A_n·S_t)·h0[n] and D·u_t, then the gate.
#include "cuda/ssm_convolution.hpp"

#include <algorithm>
#include <string>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"

namespace mambascope::cuda {
namespace {

constexpr int kChunk = 256;     // tokens per chunk of the running sum
constexpr int kTile = 64;       // tokens per row / column tile of K
constexpr int kThreads = 256;   // 16 row groups of 4 rows × 16 lanes of 4 columns
constexpr int kCrStride = kTile + 4;  // row-factor rows: 16-byte aligned, fewer bank conflicts
constexpr int kBcStride = kTile + 1;  // column-factor rows: conflict-free column writes
constexpr int kMaxN = 256;

// Shared-memory layout of the selective kernel, in bytes.
struct ConvSmem {
  int Cr, Cw, Bc, us, ds, An, Sr, Sc, total;
};
__host__ __device__ inline ConvSmem conv_smem(int N) {
  ConvSmem s{};
  s.Cr = 0;                                    // float {N, kCrStride}: C_t·exp(A(S_t − R))
  s.Cw = s.Cr + N * kCrStride * 4;             // float {N, kCrStride}: C_t
  s.Bc = s.Cw + N * kCrStride * 4;             // float {N, kBcStride}: Δ_s B_s·exp(A(R − S_s))
  s.us = s.Bc + ((N * kBcStride * 4 + 15) & ~15);  // float {kTile}: u_s
  s.ds = s.us + kTile * 4;                     // float {kTile}: Δ_s
  s.An = s.ds + kTile * 4;                     // float {N}: A[c, n]
  s.Sr = s.An + ((N * 4 + 15) & ~15);          // double {kTile}: S_t of the row tile
  s.Sc = s.Sr + kTile * 8;                     // double {kTile}: S_s of the column tile
  s.total = s.Sc + kTile * 8;
  return s;
}

template <typename T>
__global__ void delta_kernel(const SsmModeArgs a, float* delta) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.L * a.d) return;
  const int64_t t = i / a.d;
  const int c = int(i - t * a.d);
  const float x = to_f32(static_cast<const T*>(a.dt)[t * a.lddt + c]) + (a.dt_bias ? a.dt_bias[c] : 0.f);
  float v = softplus(x);  // the scan's softplus, so that both modes see the same Δ
  for (int o = 0; o < a.overrides.n; ++o)
    if (a.overrides.t[o] == t) v = a.overrides.value[o];
  delta[i] = v;
}

// chunks[k, c] = Σ_{t in chunk k} Δ[t, c]
__global__ void chunk_sum_kernel(const float* delta, int64_t L, int d, double* chunks) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  const int64_t t0 = int64_t(blockIdx.y) * kChunk, t1 = t0 + kChunk < L ? t0 + kChunk : L;
  double s = 0;
  for (int64_t t = t0; t < t1; ++t) s += delta[t * d + c];
  chunks[int64_t(blockIdx.y) * d + c] = s;
}

// chunks[k, c] <- Σ_{j<k} chunks[j, c] (exclusive), one thread per channel.
__global__ void chunk_scan_kernel(double* chunks, int64_t n_chunks, int d) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  double run = 0;
  for (int64_t k = 0; k < n_chunks; ++k) {
    const double v = chunks[k * d + c];
    chunks[k * d + c] = run;
    run += v;
  }
}

// S[t, c] = Σ_{k≤t} Δ[k, c]
__global__ void prefix_kernel(const float* delta, int64_t L, int d, const double* chunks, double* S) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  const int64_t t0 = int64_t(blockIdx.y) * kChunk, t1 = t0 + kChunk < L ? t0 + kChunk : L;
  double run = chunks[int64_t(blockIdx.y) * d + c];
  for (int64_t t = t0; t < t1; ++t) {
    run += delta[t * d + c];
    S[t * d + c] = run;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) conv_selective_kernel(const SsmModeArgs a, const float* delta,
                                                                  const double* S) {
  extern __shared__ __align__(16) unsigned char smem[];
  const ConvSmem lay = conv_smem(a.N);
  float* Cr = reinterpret_cast<float*>(smem + lay.Cr);
  float* Cw = reinterpret_cast<float*>(smem + lay.Cw);
  float* Bc = reinterpret_cast<float*>(smem + lay.Bc);
  float* us = reinterpret_cast<float*>(smem + lay.us);
  float* ds = reinterpret_cast<float*>(smem + lay.ds);
  float* An = reinterpret_cast<float*>(smem + lay.An);
  double* Sr = reinterpret_cast<double*>(smem + lay.Sr);
  double* Sc = reinterpret_cast<double*>(smem + lay.Sc);

  const int N = a.N, d = a.d;
  const int64_t L = a.L;
  const int c = blockIdx.y;
  // The longest rows first: row tiles are handed out from the end of the sequence.
  const int64_t t0 = int64_t(gridDim.x - 1 - blockIdx.x) * kTile;
  const int nt = int(L - t0 < kTile ? L - t0 : kTile);
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const T* u = static_cast<const T*>(a.u);
  const T* B = static_cast<const T*>(a.B);
  const T* C = static_cast<const T*>(a.C);

  for (int n = tid; n < N; n += kThreads) An[n] = a.A[int64_t(c) * N + n];
  if (tid < kTile) Sr[tid] = S[(t0 + (tid < nt ? tid : nt - 1)) * d + c];  // padded rows: masked
  const double R = t0 > 0 ? S[(t0 - 1) * d + c] : 0.0;
  __syncthreads();
  // Row factors; states vary fastest so that the loads of C are contiguous.
  for (int i = tid; i < N * kTile; i += kThreads) {
    const int r = i / N, n = i - r * N;
    const float cv = r < nt ? to_f32(C[(t0 + r) * a.ldc + n]) : 0.f;
    Cw[n * kCrStride + r] = cv;
    Cr[n * kCrStride + r] = cv * expf(An[n] * float(Sr[r] - R));
  }

  float yacc[4] = {0.f, 0.f, 0.f, 0.f};  // rows 4·ty .. 4·ty + 3, this lane's columns
  for (int64_t s0 = 0; s0 < t0; s0 += kTile) {
    __syncthreads();  // the last tile's factors are consumed (and, the first time, Cr is written)
    if (tid < kTile) {
      const int64_t s = s0 + tid;
      us[tid] = to_f32(u[s * a.ldu + c]);
      ds[tid] = delta[s * d + c];
      Sc[tid] = S[s * d + c];
    }
    __syncthreads();
    for (int i = tid; i < N * kTile; i += kThreads) {
      const int j = i / N, n = i - j * N;
      Bc[n * kBcStride + j] = ds[j] * to_f32(B[(s0 + j) * a.ldb + n]) * expf(An[n] * float(R - Sc[j]));
    }
    __syncthreads();
    // K tile (4 × 4 per thread) = Cr^T · Bc over the states, then K · u.
    float k[4][4] = {};
    for (int n = 0; n < N; ++n) {
      const float4 cr = *reinterpret_cast<const float4*>(Cr + n * kCrStride + 4 * ty);
      const float* bc = Bc + n * kBcStride + tx;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float b = bc[16 * j];
        k[0][j] = fmaf(cr.x, b, k[0][j]);
        k[1][j] = fmaf(cr.y, b, k[1][j]);
        k[2][j] = fmaf(cr.z, b, k[2][j]);
        k[3][j] = fmaf(cr.w, b, k[3][j]);
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float uv = us[tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) yacc[i] = fmaf(k[i][j], uv, yacc[i]);
    }
  }

  // The diagonal tile: s and t both in this block's rows.
  __syncthreads();
  if (tid < kTile) {
    us[tid] = tid < nt ? to_f32(u[(t0 + tid) * a.ldu + c]) : 0.f;
    ds[tid] = tid < nt ? delta[(t0 + tid) * d + c] : 0.f;
  }
  __syncthreads();
  for (int i = tid; i < N * kTile; i += kThreads) {
    const int j = i / N, n = i - j * N;
    Bc[n * kBcStride + j] = j < nt ? ds[j] * to_f32(B[(t0 + j) * a.ldb + n]) : 0.f;
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = 4 * ty + i;
    if (r >= nt) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int s = tx + 16 * j;
      if (s > r) continue;
      const float dS = float(Sr[r] - Sr[s]);
      float kv = 0.f;
      for (int n = 0; n < N; ++n)
        kv = fmaf(Cw[n * kCrStride + r] * expf(An[n] * dS), Bc[n * kBcStride + s], kv);
      yacc[i] = fmaf(kv, us[s], yacc[i]);
    }
    // The initial state's part, C_t·exp(A·S_t)·h0, its states split over the 16 lanes.
    for (int n = tx; n < N; n += 16)
      yacc[i] = fmaf(Cw[n * kCrStride + r] * expf(An[n] * float(Sr[r])), a.h[int64_t(c) * N + n], yacc[i]);
  }
  // Sum over the 16 lanes of a row group (one half-warp).
#pragma unroll
  for (int i = 0; i < 4; ++i)
    for (int o = 8; o > 0; o >>= 1) yacc[i] += __shfl_xor_sync(0xffffffffu, yacc[i], o);
  if (tx != 0) return;
  const float Dc = a.D ? a.D[c] : 0.f;
  const T* z = static_cast<const T*>(a.z);
  T* y = static_cast<T*>(a.y);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = 4 * ty + i;
    if (r >= nt) continue;
    const int64_t t = t0 + r;
    float yv = fmaf(Dc, us[r], yacc[i]);
    if (a.ypre) a.ypre[t * d + c] = yv;
    if (z) yv *= silu(to_f32(z[t * a.ldz + c]));
    y[t * a.ldy + c] = from_f32<T>(yv);
  }
}

// A frozen layer's Toeplitz matrix: out[c, t] = Σ_{s≤t} K[c, t − s]·U[c, s]. A block owns one
// channel and 256 outputs; per column tile it stages the 511 kernel taps it needs.
constexpr int kToe = 256;
__global__ void __launch_bounds__(kToe) toeplitz_kernel(const float* K, const float* U, float* out,
                                                        int64_t L, int64_t ldk) {
  __shared__ float ks[2 * kToe], uc[kToe];
  const int c = blockIdx.y, tid = threadIdx.x;
  const int64_t t0 = int64_t(gridDim.x - 1 - blockIdx.x) * kToe;
  const float* Kc = K + int64_t(c) * ldk;
  const float* Uc = U + int64_t(c) * ldk;
  float acc = 0.f;
  for (int64_t s0 = 0; s0 <= t0; s0 += kToe) {
    const int64_t base = t0 - s0 - (kToe - 1);  // ks[i] = K[base + i]; negative lags are 0
    __syncthreads();
    for (int i = tid; i < 2 * kToe - 1; i += kToe) {
      const int64_t k = base + i;
      ks[i] = k >= 0 && k < L ? Kc[k] : 0.f;
    }
    uc[tid] = s0 + tid < L ? Uc[s0 + tid] : 0.f;
    __syncthreads();
#pragma unroll 8
    for (int j = 0; j < kToe; ++j) acc = fmaf(ks[tid - j + kToe - 1], uc[j], acc);
  }
  if (t0 + tid < L) out[int64_t(c) * ldk + t0 + tid] = acc;
}

// Final state, part 1: per block 32 channels × one range of tokens, 8 rows of threads splitting
// the tokens, states in groups of 16 in registers.
constexpr int kFsCols = 32, kFsRows = 8, kFsN = 16;

template <typename T>
__global__ void __launch_bounds__(kFsCols * kFsRows) final_state_partial_kernel(const FinalStateArgs a, float* partial,
                                                                                int64_t chunk) {
  __shared__ float red[kFsRows][kFsN][kFsCols + 1];
  const int c = blockIdx.x * kFsCols + threadIdx.x;
  const bool ok = c < a.d;
  const int N = a.N, d = a.d;
  const bool frozen = a.S == nullptr;
  const int64_t s_begin = int64_t(blockIdx.y) * chunk;
  const int64_t s_end = s_begin + chunk < a.L ? s_begin + chunk : a.L;
  const T* u = static_cast<const T*>(a.u);
  const T* B = static_cast<const T*>(a.B);
  const float dconst = ok && frozen ? a.delta[c] : 0.f;
  const double Send = !ok ? 0.0 : frozen ? double(a.L) * dconst : a.S[(a.L - 1) * d + c];
  for (int n0 = 0; n0 < N; n0 += kFsN) {
    float acc[kFsN], An[kFsN], Bk[kFsN];
#pragma unroll
    for (int j = 0; j < kFsN; ++j) {
      const int n = n0 + j;
      const bool nok = ok && n < N;
      acc[j] = 0.f;
      An[j] = nok ? a.A[int64_t(c) * N + n] : 0.f;
      Bk[j] = nok && frozen ? a.B_const[int64_t(c) * N + n] : 0.f;
    }
    if (ok) {
      for (int64_t s = s_begin + threadIdx.y; s < s_end; s += kFsRows) {
        const float dl = frozen ? dconst : a.delta[s * d + c];
        const double Ss = frozen ? double(s + 1) * dconst : a.S[s * d + c];
        const float dS = float(Send - Ss);
        const float w = dl * to_f32(u[s * a.ldu + c]);
#pragma unroll
        for (int j = 0; j < kFsN; ++j) {
          if (n0 + j >= N) break;
          const float b = frozen ? Bk[j] : to_f32(B[s * a.ldb + n0 + j]);
          acc[j] = fmaf(expf(An[j] * dS) * b, w, acc[j]);
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kFsN; ++j) red[threadIdx.y][j][threadIdx.x] = acc[j];
    __syncthreads();
    if (threadIdx.y == 0 && ok) {
      for (int j = 0; j < kFsN && n0 + j < N; ++j) {
        float s = 0.f;
        for (int r = 0; r < kFsRows; ++r) s += red[r][j][threadIdx.x];
        partial[(int64_t(blockIdx.y) * d + c) * N + n0 + j] = s;
      }
    }
    __syncthreads();
  }
}

// Final state, part 2: h = exp(A·S_end)·h0 + the token ranges' sums, in a fixed order.
__global__ void final_state_finish_kernel(const FinalStateArgs a, const float* partial, int splits) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t dn = int64_t(a.d) * a.N;
  if (i >= dn) return;
  const int c = int(i / a.N);
  const double Send = a.S ? a.S[(a.L - 1) * a.d + c] : double(a.L) * a.delta[c];
  float v = expf(a.A[i] * float(Send)) * a.h[i];
  for (int k = 0; k < splits; ++k) v += partial[k * dn + i];
  a.h[i] = v;
}

unsigned blocks_for(int64_t n, int per) { return unsigned((n + per - 1) / per); }

}  // namespace

void reserve_for_mode(DeviceMemory& m, size_t bytes, const char* mode, int64_t L) {
  if (bytes <= m.bytes()) return;
  try {
    m.reserve(bytes);
  } catch (const Error&) {
    cudaGetLastError();  // the failed allocation is not a fault of the next launch
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    throw Error(std::string("the ") + mode + " mode over " + std::to_string(L) + " tokens needs a " +
                std::to_string(bytes >> 20) + " MiB buffer on the GPU and only " +
                std::to_string(free_b >> 20) + " MiB are free; run a shorter text, or the scan mode");
  }
}

void ssm_final_state(const FinalStateArgs& a, DeviceMemory& partial, cudaStream_t stream) {
  const int splits = int(std::min<int64_t>(64, (a.L + 255) / 256));
  const int64_t chunk = (a.L + splits - 1) / splits;
  reserve_for_mode(partial, sizeof(float) * size_t(splits) * a.d * a.N, a.S ? "convolution" : "LTI", a.L);
  dispatch_dtype(a.dtype, [&](auto tag) {
    final_state_partial_kernel<decltype(tag)>
        <<<dim3(blocks_for(a.d, kFsCols), unsigned(splits)), dim3(kFsCols, kFsRows), 0, stream>>>(
            a, partial.f32(), chunk);
  });
  MS_CUDA_CHECK_LAUNCH();
  final_state_finish_kernel<<<blocks_for(int64_t(a.d) * a.N, 256), 256, 0, stream>>>(a, partial.f32(), splits);
  MS_CUDA_CHECK_LAUNCH();
}

size_t convolution_workspace_bytes(int64_t L, int d, int N, bool frozen) {
  const size_t Ld = size_t(L) * size_t(d);
  if (frozen) return 3 * sizeof(float) * Ld + sizeof(float) * 64 * size_t(d) * size_t(N);
  return sizeof(float) * Ld + sizeof(double) * Ld + sizeof(double) * size_t(L / kChunk + 1) * d +
         sizeof(float) * 64 * size_t(d) * size_t(N);
}

void ssm_convolution(const SsmModeArgs& a, ConvWorkspace& ws, LtiWorkspace& lti, cudaStream_t stream) {
  if (a.L < 1 || a.d < 1 || a.N < 1) throw Error("ssm_convolution: bad shape");
  if (a.d > 65535) throw Error("the convolution mode on the GPU runs at most 65535 channels");
  const int64_t L = a.L, d = a.d;
  if (a.frozen()) {
    // The LTI row of the mode: K_c[t − s] as a causal Toeplitz matrix, O(L²) per channel.
    reserve_for_mode(lti.K, sizeof(float) * L * d, "convolution", L);
    reserve_for_mode(lti.U, sizeof(float) * L * d, "convolution", L);
    reserve_for_mode(lti.out, sizeof(float) * L * d, "convolution", L);
    lti_prepare(a, lti.K.f32(), lti.U.f32(), L, stream);
    toeplitz_kernel<<<dim3(blocks_for(L, kToe), unsigned(d)), kToe, 0, stream>>>(lti.K.f32(), lti.U.f32(),
                                                                                  lti.out.f32(), L, L);
    MS_CUDA_CHECK_LAUNCH();
    lti_finish(a, lti.out.f32(), L, lti.partial, stream);
    return;
  }
  if (!a.dt || !a.B || !a.C || !a.u || !a.y || !a.A || !a.h)
    throw Error("ssm_convolution: a required input is missing");
  if (a.N > kMaxN)
    throw Error("the convolution mode on the GPU runs d_state up to " + std::to_string(kMaxN) + ", not " +
                std::to_string(a.N));
  const int64_t n_chunks = (L + kChunk - 1) / kChunk;
  if (n_chunks > 65535) throw Error("the convolution mode on the GPU runs at most 16.7M tokens");
  reserve_for_mode(ws.delta, sizeof(float) * L * d, "convolution", L);
  reserve_for_mode(ws.S, sizeof(double) * L * d, "convolution", L);
  reserve_for_mode(ws.chunks, sizeof(double) * n_chunks * d, "convolution", L);
  float* delta = ws.delta.f32();
  double* S = static_cast<double*>(ws.S.get());
  double* chunks = static_cast<double*>(ws.chunks.get());
  dispatch_dtype(a.dtype, [&](auto tag) {
    delta_kernel<decltype(tag)><<<blocks_for(L * d, 256), 256, 0, stream>>>(a, delta);
  });
  MS_CUDA_CHECK_LAUNCH();
  const dim3 by_chunk(blocks_for(d, 128), unsigned(n_chunks));
  chunk_sum_kernel<<<by_chunk, 128, 0, stream>>>(delta, L, int(d), chunks);
  MS_CUDA_CHECK_LAUNCH();
  chunk_scan_kernel<<<blocks_for(d, 128), 128, 0, stream>>>(chunks, n_chunks, int(d));
  MS_CUDA_CHECK_LAUNCH();
  prefix_kernel<<<by_chunk, 128, 0, stream>>>(delta, L, int(d), chunks, S);
  MS_CUDA_CHECK_LAUNCH();

  const int smem = conv_smem(a.N).total;
  dispatch_dtype(a.dtype, [&](auto tag) {
    auto kernel = conv_selective_kernel<decltype(tag)>;
    if (smem > 48 * 1024)
      MS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<dim3(blocks_for(L, kTile), unsigned(d)), kThreads, smem, stream>>>(a, delta, S);
  });
  MS_CUDA_CHECK_LAUNCH();

  FinalStateArgs f = final_state_of(a);
  f.delta = delta;
  f.S = S;
  f.B = a.B;
  f.ldb = a.ldb;
  ssm_final_state(f, ws.partial, stream);
}

}  // namespace mambascope::cuda
