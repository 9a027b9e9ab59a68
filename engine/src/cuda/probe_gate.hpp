// The gate SiLU(z) of recorded layers, computed on the device where the step recorded z, so that
// the host only copies it into the probe frames (cuda_decode_extras.cpp).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace mambascope::cuda {

// For each of `slots` slots of a strided fp32 buffer, z at base + s·stride + offset {n}:
// z = SiLU(z) = z / (1 + e^-z), in place.
void gate_in_place(float* base, int slots, int64_t stride, int64_t offset, int64_t n,
                   cudaStream_t stream);

}  // namespace mambascope::cuda
