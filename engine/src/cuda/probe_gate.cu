// SiLU(z) in place over the recorded layers' slots (probe_gate.hpp).
#include <algorithm>

#include "cuda/cuda_check.hpp"
#include "cuda/probe_gate.hpp"

namespace mambascope::cuda {

namespace {

__global__ void gate_kernel(float* base, int64_t stride, int64_t offset, int64_t n) {
  float* z = base + int64_t(blockIdx.y) * stride + offset;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    z[i] = z[i] / (1.0f + expf(-z[i]));
}

}  // namespace

void gate_in_place(float* base, int slots, int64_t stride, int64_t offset, int64_t n,
                   cudaStream_t stream) {
  if (slots <= 0 || n <= 0) return;
  constexpr int kThreads = 256;
  const unsigned bx = unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 64));
  gate_kernel<<<dim3(bx, unsigned(slots)), kThreads, 0, stream>>>(base, stride, offset, n);
  MS_CUDA_CHECK_LAUNCH();
}

}  // namespace mambascope::cuda
