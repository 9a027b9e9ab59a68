// The LTI-by-FFT mode (lti_fft.hpp): kernel taps, u transposed to channel-major, cuFFT, and the
// finishing step shared with the frozen convolution mode.
#include "cuda/lti_fft.hpp"

#include <string>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"

namespace mambascope::cuda {
namespace {

constexpr int kT = 32, kR = 8;  // 32 × 32 transpose tiles, 8 rows of threads

// K[c, k] = Σ_n C[c,n]·Δ_c·B[c,n]·exp(k·Δ_c·A[c,n]) for k < L, 0 for L <= k < ldk.
__global__ void lti_taps_kernel(const SsmModeArgs a, float* K, int64_t ldk) {
  extern __shared__ float sh[];  // rate {N}: Δ_c·A[c,n]; weight {N}: C·Δ_c·B
  const int c = blockIdx.y, N = a.N;
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    const float dl = a.delta_const[c];
    const int64_t i = int64_t(c) * N + n;
    sh[n] = dl * a.A[i];
    sh[N + n] = a.C_const[i] * dl * a.B_const[i];
  }
  __syncthreads();
  const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= ldk) return;
  float v = 0.f;
  if (k < a.L)
    for (int n = 0; n < N; ++n) v = fmaf(sh[N + n], expf(float(k) * sh[n]), v);
  K[int64_t(c) * ldk + k] = v;
}

// U[c, t] = u[t, c] for t < L, 0 for L <= t < ldk.
template <typename T>
__global__ void transpose_u_kernel(const SsmModeArgs a, float* U, int64_t ldk) {
  __shared__ float tile[kT][kT + 1];
  const int64_t t0 = int64_t(blockIdx.x) * kT;
  const int c0 = blockIdx.y * kT;
  const T* u = static_cast<const T*>(a.u);
  for (int i = threadIdx.y; i < kT; i += kR) {
    const int64_t t = t0 + i;
    const int c = c0 + threadIdx.x;
    tile[i][threadIdx.x] = t < a.L && c < a.d ? to_f32(u[t * a.ldu + c]) : 0.f;
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kT; i += kR) {
    const int c = c0 + i;
    const int64_t t = t0 + threadIdx.x;
    if (c < a.d && t < ldk) U[int64_t(c) * ldk + t] = tile[threadIdx.x][i];
  }
}

// Uf <- Uf·Kf·scale (cuFFT's inverse is unnormalised).
__global__ void spectrum_mul_kernel(const cufftComplex* Kf, cufftComplex* Uf, int64_t n, float scale) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const cufftComplex k = Kf[i], u = Uf[i];
  Uf[i] = make_cuComplex((k.x * u.x - k.y * u.y) * scale, (k.x * u.y + k.y * u.x) * scale);
}

// y[t, c] from ku[c, t] (read through a transposing tile), the initial state's decay and D·u.
template <typename T>
__global__ void lti_finish_kernel(const SsmModeArgs a, const float* ku, int64_t ldk) {
  __shared__ float tile[kT][kT + 1];
  const int64_t t0 = int64_t(blockIdx.x) * kT;
  const int c0 = blockIdx.y * kT;
  for (int i = threadIdx.y; i < kT; i += kR) {
    const int c = c0 + i;
    const int64_t t = t0 + threadIdx.x;
    tile[i][threadIdx.x] = c < a.d && t < a.L ? ku[int64_t(c) * ldk + t] : 0.f;
  }
  __syncthreads();
  const int c = c0 + threadIdx.x;
  if (c >= a.d) return;
  const int N = a.N;
  const float dl = a.delta_const[c], Dc = a.D ? a.D[c] : 0.f;
  const float* A = a.A + int64_t(c) * N;
  const float* Cc = a.C_const + int64_t(c) * N;
  const float* h0 = a.h + int64_t(c) * N;
  const T* u = static_cast<const T*>(a.u);
  const T* z = static_cast<const T*>(a.z);
  T* y = static_cast<T*>(a.y);
  for (int i = threadIdx.y; i < kT; i += kR) {
    const int64_t t = t0 + i;
    if (t >= a.L) break;
    float from_h0 = 0.f;  // Σ_n C[n]·Ā[n]^(t+1)·h0[n]
    for (int n = 0; n < N; ++n) from_h0 = fmaf(Cc[n] * expf(float(t + 1) * dl * A[n]), h0[n], from_h0);
    const float uv = to_f32(u[t * a.ldu + c]);
    float yv = tile[threadIdx.x][i] + from_h0 + Dc * uv;
    if (a.ypre) a.ypre[t * a.d + c] = yv;
    if (z) yv *= silu(to_f32(z[t * a.ldz + c]));
    y[t * a.ldy + c] = from_f32<T>(yv);
  }
}

unsigned blocks_for(int64_t n, int per) { return unsigned((n + per - 1) / per); }

void check_frozen(const SsmModeArgs& a) {
  if (a.L < 1 || a.d < 1 || a.N < 1) throw Error("LTI mode: bad shape");
  if (!a.delta_const || !a.B_const || !a.C_const || !a.u || !a.y || !a.A || !a.h)
    throw Error("LTI mode: a required input is missing (Δ, B, C must be frozen)");
  if (a.d > 65535) throw Error("the LTI modes on the GPU run at most 65535 channels");
}

}  // namespace

const FftPlanCache::Plans& FftPlanCache::get(int64_t M, int64_t batch, int64_t L) {
  for (auto it = plans_.begin(); it != plans_.end(); ++it)
    if (it->M == M && it->batch == batch) {
      plans_.splice(plans_.begin(), plans_, it);
      return plans_.front();
    }
  // In-place layouts: a channel is M + 2 floats in time, M/2 + 1 complex numbers in frequency.
  int n[1] = {int(M)}, real_embed[1] = {int(M + 2)}, freq_embed[1] = {int(M / 2 + 1)};
  auto make = [&](Plans& p) {
    cufftHandle r2c = 0, c2r = 0;
    cufftResult r = cufftPlanMany(&r2c, 1, n, real_embed, 1, int(M + 2), freq_embed, 1, int(M / 2 + 1),
                                  CUFFT_R2C, int(batch));
    if (r != CUFFT_SUCCESS) return r;
    r = cufftPlanMany(&c2r, 1, n, freq_embed, 1, int(M / 2 + 1), real_embed, 1, int(M + 2), CUFFT_C2R,
                      int(batch));
    if (r != CUFFT_SUCCESS) {
      cufftDestroy(r2c);
      return r;
    }
    p.r2c = r2c;
    p.c2r = c2r;
    return r;
  };
  Plans p;
  p.M = M;
  p.batch = batch;
  cufftResult r = make(p);
  if (r != CUFFT_SUCCESS && !plans_.empty()) {  // the cached plans' work areas may be in the way
    clear();
    r = make(p);
  }
  if (r != CUFFT_SUCCESS) {
    cudaGetLastError();
    throw Error("the lti-fft mode over " + std::to_string(L) + " tokens: cuFFT could not plan " +
                std::to_string(batch) + " transforms of length " + std::to_string(M) + " (status " +
                std::to_string(int(r)) + "; the GPU is probably out of memory); run a shorter text");
  }
  plans_.push_front(p);
  while (plans_.size() > kKeep) {
    cufftDestroy(plans_.back().r2c);
    cufftDestroy(plans_.back().c2r);
    plans_.pop_back();
  }
  return plans_.front();
}

void FftPlanCache::clear() {
  for (Plans& p : plans_) {
    cufftDestroy(p.r2c);
    cufftDestroy(p.c2r);
  }
  plans_.clear();
}

void lti_prepare(const SsmModeArgs& a, float* K, float* U, int64_t ldk, cudaStream_t stream) {
  lti_taps_kernel<<<dim3(blocks_for(ldk, 256), unsigned(a.d)), 256, 2 * sizeof(float) * a.N, stream>>>(a, K, ldk);
  MS_CUDA_CHECK_LAUNCH();
  dispatch_dtype(a.dtype, [&](auto tag) {
    transpose_u_kernel<decltype(tag)>
        <<<dim3(blocks_for(ldk, kT), blocks_for(a.d, kT)), dim3(kT, kR), 0, stream>>>(a, U, ldk);
  });
  MS_CUDA_CHECK_LAUNCH();
}

void lti_finish(const SsmModeArgs& a, const float* ku, int64_t ldk, DeviceMemory& partial, cudaStream_t stream) {
  dispatch_dtype(a.dtype, [&](auto tag) {
    lti_finish_kernel<decltype(tag)>
        <<<dim3(blocks_for(a.L, kT), blocks_for(a.d, kT)), dim3(kT, kR), 0, stream>>>(a, ku, ldk);
  });
  MS_CUDA_CHECK_LAUNCH();
  // h_L = Ā^L h0 + Σ_s Ā^(L−1−s) Δ B u_s (after the finish, which reads h0)
  FinalStateArgs f = final_state_of(a);
  f.delta = a.delta_const;  // S_s = (s + 1)·Δ
  f.B_const = a.B_const;
  ssm_final_state(f, partial, stream);
}

size_t lti_fft_workspace_bytes(int64_t L, int d, int N) {
  int64_t M = 2;
  while (M < 2 * L) M <<= 1;
  // K and U in place, and about as much again for cuFFT's work area.
  return 3 * sizeof(float) * size_t(M + 2) * size_t(d) + sizeof(float) * 64 * size_t(d) * size_t(N);
}

void ssm_lti_fft(const SsmModeArgs& a, LtiWorkspace& ws, cudaStream_t stream) {
  check_frozen(a);
  int64_t M = 2;  // a power of two >= 2L: the circular convolution is then the causal one
  while (M < 2 * a.L) M <<= 1;
  if (M > (int64_t(1) << 30)) throw Error("the lti-fft mode on the GPU runs at most 512M tokens");
  const int64_t ldk = M + 2;
  const size_t bytes = sizeof(float) * size_t(ldk) * size_t(a.d);
  reserve_for_mode(ws.K, bytes, "lti-fft", a.L);
  reserve_for_mode(ws.U, bytes, "lti-fft", a.L);
  float* K = ws.K.f32();
  float* U = ws.U.f32();
  lti_prepare(a, K, U, ldk, stream);
  const FftPlanCache::Plans& p = ws.plans.get(M, a.d, a.L);
  MS_CUDA_CHECK(cufftSetStream(p.r2c, stream));
  MS_CUDA_CHECK(cufftSetStream(p.c2r, stream));
  MS_CUDA_CHECK(cufftExecR2C(p.r2c, K, reinterpret_cast<cufftComplex*>(K)));
  MS_CUDA_CHECK(cufftExecR2C(p.r2c, U, reinterpret_cast<cufftComplex*>(U)));
  const int64_t nf = (M / 2 + 1) * a.d;
  spectrum_mul_kernel<<<blocks_for(nf, 256), 256, 0, stream>>>(reinterpret_cast<const cufftComplex*>(K),
                                                               reinterpret_cast<cufftComplex*>(U), nf,
                                                               1.0f / float(M));
  MS_CUDA_CHECK_LAUNCH();
  MS_CUDA_CHECK(cufftExecC2R(p.c2r, reinterpret_cast<cufftComplex*>(U), U));  // U[c, t < L] = K * u
  lti_finish(a, U, ldk, ws.partial, stream);
}

}  // namespace mambascope::cuda
