// Error checking for CUDA runtime, cuBLAS and cuFFT calls: every call and every launch is
// checked, and a failure becomes a mambascope::Error whose message names the call and the place.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cufft.h>

#include <string>

#include "mambascope/error.hpp"

namespace mambascope::cuda {

[[noreturn]] void throw_cuda_error(const std::string& what, const char* expr, const char* file,
                                   int line);

inline void check(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess) {
    if (e == cudaErrorMemoryAllocation)
      throw_cuda_error("the GPU is out of memory (try a shorter prompt or a smaller model)", expr,
                       file, line);
    throw_cuda_error(cudaGetErrorString(e), expr, file, line);
  }
}
inline void check(cublasStatus_t e, const char* expr, const char* file, int line) {
  if (e != CUBLAS_STATUS_SUCCESS)
    throw_cuda_error(std::string("cuBLAS status ") + std::to_string(int(e)), expr, file, line);
}
inline void check(cufftResult e, const char* expr, const char* file, int line) {
  if (e != CUFFT_SUCCESS)
    throw_cuda_error(std::string("cuFFT status ") + std::to_string(int(e)), expr, file, line);
}

}  // namespace mambascope::cuda

#define MS_CUDA_CHECK(expr) ::mambascope::cuda::check((expr), #expr, __FILE__, __LINE__)
// After a kernel launch: catches bad launch configurations at once (asynchronous faults show up
// at the next synchronising call, which is checked too).
#define MS_CUDA_CHECK_LAUNCH() MS_CUDA_CHECK(cudaGetLastError())
