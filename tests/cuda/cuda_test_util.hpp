// Helpers for the CUDA tests: device buffers, dtype round trips, error norms, and the skip that
// keeps these tests green on machines without a GPU.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/dtype.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/cuda_check.hpp"
#endif

namespace mambascope::test {

#define SKIP_WITHOUT_GPU()                                       \
  do {                                                           \
    std::string why_;                                            \
    if (!::mambascope::cuda_backend_available(&why_)) GTEST_SKIP() << why_; \
  } while (0)

// Rounds v to what `dt` storage holds, so that references see exactly the GPU's inputs.
inline float round_to(DType dt, float v) {
  switch (dt) {
    case DType::BF16: return bf16_to_f32(f32_to_bf16(v));
    case DType::F16: return f16_to_f32(f32_to_f16(v));
    default: return v;
  }
}
inline void round_all(DType dt, std::vector<float>& v) {
  for (float& x : v) x = round_to(dt, x);
}

inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.f, float mean = 0.f) {
  std::normal_distribution<float> dist(mean, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ‖a − b‖ / ‖b‖; NaN anywhere gives +inf so that it can never pass.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += double(a[i] - b[i]) * double(a[i] - b[i]);
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / (den > 0 ? den : 1e-30));
}

#if MAMBASCOPE_HAVE_CUDA
// A device allocation of n elements of `dt` (or fp32), filled from / read back as fp32.
class DeviceBuffer {
 public:
  DeviceBuffer(size_t n, DType dt = DType::F32) : n_(n), dt_(dt) {
    MS_CUDA_CHECK(cudaMalloc(&ptr_, std::max<size_t>(n * dtype_size(dt), 16)));
  }
  DeviceBuffer(const std::vector<float>& v, DType dt = DType::F32) : DeviceBuffer(v.size(), dt) {
    upload(v);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr_); }

  void upload(const std::vector<float>& v) {
    std::vector<uint16_t> half(v.size());
    const void* src = v.data();
    if (dt_ != DType::F32) {
      for (size_t i = 0; i < v.size(); ++i)
        half[i] = dt_ == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      src = half.data();
    }
    MS_CUDA_CHECK(cudaMemcpy(ptr_, src, v.size() * dtype_size(dt_), cudaMemcpyHostToDevice));
  }
  std::vector<float> download() const {
    std::vector<float> out(n_);
    if (dt_ == DType::F32) {
      MS_CUDA_CHECK(cudaMemcpy(out.data(), ptr_, n_ * 4, cudaMemcpyDeviceToHost));
    } else {
      std::vector<uint16_t> half(n_);
      MS_CUDA_CHECK(cudaMemcpy(half.data(), ptr_, n_ * 2, cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < n_; ++i)
        out[i] = dt_ == DType::BF16 ? bf16_to_f32(half[i]) : f16_to_f32(half[i]);
    }
    return out;
  }
  // Fills with NaN bit patterns, so that an element the kernel forgets cannot pass.
  void poison() { MS_CUDA_CHECK(cudaMemset(ptr_, 0xff, std::max<size_t>(n_ * dtype_size(dt_), 16))); }
  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  size_t size() const { return n_; }

 private:
  void* ptr_ = nullptr;
  size_t n_;
  DType dt_;
};
#endif

}  // namespace mambascope::test
