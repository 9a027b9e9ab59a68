// Is there a usable CUDA device? Answers with a reason the user can act on when there is not,
// so that make_backend("auto") falls back to the CPU and the GPU tests skip cleanly.
#include <cuda_runtime.h>

#include <string>

#include "mambascope/backend.hpp"

namespace mambascope {

bool cuda_backend_available(std::string* why_not) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why_not) {
      if (e == cudaErrorInsufficientDriver)
        *why_not = "the NVIDIA driver is older than this build's CUDA runtime; update the driver";
      else if (e == cudaErrorNoDevice || n == 0 || e == cudaErrorInitializationError)
        *why_not = "no CUDA GPU was found (the CPU backend is used instead)";
      else
        *why_not = std::string("CUDA could not start: ") + cudaGetErrorString(e);
    }
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (major < 8) {
    if (why_not)
      *why_not = "the GPU has compute capability " + std::to_string(major) +
                 ".x; the CUDA backend needs 8.0 (Ampere) or newer";
    return false;
  }
  return true;
}

}  // namespace mambascope
