// The model's weights on the GPU: projections and the embedding in the checkpoint's dtype
// (bf16 / fp16 / fp32), everything small in fp32, A = -exp(A_log) precomputed.
#pragma once
#include <cstddef>
#include <vector>

#include "cuda/decode.hpp"
#include "mambascope/checkpoint.hpp"

namespace mambascope::cuda {

// One cudaMalloc'd block, freed on destruction.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes);
  DeviceMemory(DeviceMemory&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory();
  void* get() const { return p_; }
  float* f32() const { return static_cast<float*>(p_); }
  size_t bytes() const { return n_; }
  // Grows (never shrinks) to at least `bytes`; the contents are not kept.
  void reserve(size_t bytes);

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

struct DeviceWeights {
  DType dtype = DType::BF16;            // of the matrices and the embedding
  const void* embedding = nullptr;      // {vocab, d_model}
  const void* lm_head = nullptr;        // {vocab, d_model}; == embedding when tied
  const float* norm_f = nullptr;        // {d_model}
  std::vector<DecodeLayer> layers;      // state pointers left null
  std::vector<DeviceMemory> owned;
  size_t bytes = 0;
};

// Uploads every tensor (converting where the storage type differs). Throws mambascope::Error,
// e.g. when the GPU has too little memory for the model.
DeviceWeights upload_weights(const Checkpoint& ckpt);

}  // namespace mambascope::cuda
