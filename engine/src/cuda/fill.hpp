// Device-side random fills (counter-based hash, so any size fills at bandwidth and the same seed
// gives the same numbers): inputs for the benchmark and the GPU tests.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

// x[i] = mean + stddev * (approximately normal, from a sum of 4 uniforms) for i < n.
void fill_random(void* x, DType dt, size_t n, uint64_t seed, float mean, float stddev,
                 cudaStream_t stream);

}  // namespace mambascope::cuda
