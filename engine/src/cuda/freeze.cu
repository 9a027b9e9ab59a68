// Frozen Δ, B, C (freeze.hpp): the column means of a layer's activations on the device.
#include "cuda/freeze.hpp"

#include <algorithm>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"

namespace mambascope::cuda {
namespace {

// torch's softplus (threshold 20), as the CPU reference writes it.
__device__ __forceinline__ float softplus_ref(float x) { return x > 20.f ? x : log1pf(expf(x)); }

constexpr int kCols = 32, kRows = 8;

// acc {d + 2N} += column sums over this block's tokens of [Δ | B | C].
template <typename T>
__global__ void __launch_bounds__(kCols * kRows) freeze_sum_kernel(const FreezeMeanArgs a, double* acc) {
  __shared__ double part[kRows][kCols + 1];
  const int cols = a.d + 2 * a.N;
  const int col = blockIdx.x * kCols + threadIdx.x;
  double s = 0;
  if (col < cols) {
    const T* dt = static_cast<const T*>(a.dt);
    const T* B = static_cast<const T*>(a.B);
    const T* C = static_cast<const T*>(a.C);
    const float bias = col < a.d && a.dt_bias ? a.dt_bias[col] : 0.f;
    for (int64_t t = a.t0 + int64_t(blockIdx.y) * kRows + threadIdx.y; t < a.t1;
         t += int64_t(gridDim.y) * kRows) {
      float v;
      if (col < a.d) v = softplus_ref(to_f32(dt[t * a.lddt + col]) + bias);
      else if (col < a.d + a.N) v = to_f32(B[t * a.ldb + (col - a.d)]);
      else v = to_f32(C[t * a.ldc + (col - a.d - a.N)]);
      s += double(v);
    }
  }
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int i = 1; i < kRows; ++i) s += part[i][threadIdx.x];
    atomicAdd(acc + col, s);
  }
}

// Δ {d}, and B, C broadcast to every channel {d, N}.
__global__ void freeze_finish_kernel(const FreezeMeanArgs a, const double* acc, double inv) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(a.d) * a.N) return;
  const int c = int(i / a.N), n = int(i - int64_t(c) * a.N);
  if (n == 0) a.delta[c] = float(acc[c] * inv);
  a.B_out[i] = float(acc[a.d + n] * inv);
  a.C_out[i] = float(acc[a.d + a.N + n] * inv);
}

}  // namespace

void freeze_mean(const FreezeMeanArgs& a, DeviceMemory& work, cudaStream_t stream) {
  if (a.t1 <= a.t0) throw Error("freeze_mean: empty token range");
  const int cols = a.d + 2 * a.N;
  work.reserve(sizeof(double) * size_t(cols));
  double* acc = static_cast<double*>(work.get());
  MS_CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(double) * size_t(cols), stream));
  const int64_t rows = a.t1 - a.t0;
  const unsigned splits = unsigned(std::min<int64_t>(128, (rows + kRows - 1) / kRows));
  const dim3 grid(unsigned((cols + kCols - 1) / kCols), splits);
  dispatch_dtype(a.dtype, [&](auto tag) {
    freeze_sum_kernel<decltype(tag)><<<grid, dim3(kCols, kRows), 0, stream>>>(a, acc);
  });
  MS_CUDA_CHECK_LAUNCH();
  const int64_t n = int64_t(a.d) * a.N;
  freeze_finish_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(a, acc, 1.0 / double(rows));
  MS_CUDA_CHECK_LAUNCH();
}

}  // namespace mambascope::cuda
