// What the decode driver (cuda_decode_driver.cpp) keeps per backend beyond the per-layer
// kernels' scratch: the fused step's buffers and geometry (built on first use) and the mapped
// pinned memory that sampling kernels write the token and its alternatives into.
#pragma once
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "cuda/cuda_check.hpp"
#include "cuda/decode_fused.hpp"
#include "cuda/device_weights.hpp"

namespace mambascope::cuda {

// Pinned host memory that kernels write directly (cudaHostAllocMapped).
class MappedMemory {
 public:
  MappedMemory() = default;
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  ~MappedMemory() { if (h_) cudaFreeHost(h_); }
  void allocate(size_t bytes) {
    MS_CUDA_CHECK(cudaHostAlloc(&h_, bytes, cudaHostAllocMapped));
    std::memset(h_, 0, bytes);
    MS_CUDA_CHECK(cudaHostGetDevicePointer(&d_, h_, 0));
  }
  template <typename T> T* host() const { return static_cast<T*>(h_); }
  template <typename T> T* dev() const { return static_cast<T*>(d_); }

 private:
  void* h_ = nullptr;
  void* d_ = nullptr;
};

struct DecodeRuntime {
  MappedMemory sample_out;  // SampleOut
  MappedMemory trap;        // FusedTrap
  // The fused step: why_not is empty when this model and device can run it; `args` holds the
  // shape, geometry, weights and buffers (the state and sampling are filled in per capture).
  std::string why_not;
  bool enabled = true;  // off: the per-layer kernels (cuda::use_fused_decode, MAMBASCOPE_DECODE=kernels)
  FusedArgs args;
  DeviceMemory layers, ll, sync, prof;
  DeviceMemory out_cols;  // args.outcol: every layer's out_proj transposed {n_layer, d_inner, d_model}
};

}  // namespace mambascope::cuda
