// Frozen (input-independent) Δ, B, C computed on the GPU from a layer's activations: the twin of
// the MeanOverInput / AtToken branch of freeze_layer in cpu/cpu_mixer.cpp. (frozen_values.hpp
// keeps a call's values; the .cu files are C++17 and so see no engine header that needs C++20.)
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_weights.hpp"

namespace mambascope::cuda {

// One layer frozen from its own activations: Δ {d} = mean over tokens [t0, t1) of
// softplus(dt + bias), B and C {d, N} = the mean of B_t, C_t (the same for every channel).
// MeanOverInput is [0, L), AtToken [t, t + 1). Sums in double.
struct FreezeMeanArgs {
  DType dtype = DType::F32;
  int64_t t0 = 0, t1 = 0;
  int d = 0, N = 0;
  const void* dt = nullptr; int64_t lddt = 0;  // {L, d}: before the bias and softplus
  const float* dt_bias = nullptr;              // {d} or null
  const void* B = nullptr; int64_t ldb = 0;    // {L, N}
  const void* C = nullptr; int64_t ldc = 0;    // {L, N}
  float* delta = nullptr;                      // {d}
  float* B_out = nullptr;                      // {d, N}
  float* C_out = nullptr;                      // {d, N}
};
void freeze_mean(const FreezeMeanArgs& a, DeviceMemory& work, cudaStream_t stream);

}  // namespace mambascope::cuda
