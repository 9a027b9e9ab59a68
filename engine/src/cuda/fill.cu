// Device-side random fills (see fill.hpp).
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/fill.hpp"

namespace mambascope::cuda {
namespace {

__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return uint32_t(x);
}

template <typename T>
__global__ void fill_kernel(T* x, size_t n, uint64_t seed, float mean, float stddev) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t base = (seed * 0x9e3779b97f4a7c15ull) ^ (uint64_t(i) << 2);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) s += float(hash32(base + j) >> 8) * (1.f / 16777216.f);
    // Irwin-Hall(4): mean 2, variance 1/3.
    x[i] = from_f32<T>(mean + stddev * (s - 2.f) * 1.7320508f);
  }
}

}  // namespace

void fill_random(void* x, DType dt, size_t n, uint64_t seed, float mean, float stddev,
                 cudaStream_t stream) {
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const unsigned blocks = unsigned(std::min<size_t>((n + 255) / 256, 65536));
    fill_kernel<T><<<blocks, 256, 0, stream>>>(static_cast<T*>(x), n, seed, mean, stddev);
    MS_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace mambascope::cuda
