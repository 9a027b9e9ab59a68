// Helpers for the CUDA tests: device buffers, dtype round trips, error norms, random tokens,
// random checkpoints written once per process, and the skip that keeps these tests green on
// machines without a GPU.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/dtype.hpp"
#include "mambascope/probes.hpp"
#include "mambascope/random_checkpoint.hpp"

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

// n token ids drawn uniformly from [0, vocab), the same for the same seed.
inline std::vector<int32_t> random_tokens(int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

// A random checkpoint of `cfg` stored as `dt`, written once per process and (name, dt) into the
// temp folder and kept open. The folder carries the process id: another test run beside this one
// must not rewrite a file this one maps. `name` must say everything in cfg that differs.
inline const Checkpoint& random_checkpoint(const std::string& name, const ModelConfig& cfg, DType dt,
                                           uint64_t seed) {
  static std::map<std::string, std::unique_ptr<Checkpoint>> cache;
  const std::string key = name + "_" + std::string(dtype_name(dt));
  auto& slot = cache[key];
  if (!slot) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("mambascope_" + std::to_string(::getpid()) + "_" + key);
    write_random_checkpoint(dir, cfg, dt, seed);
    slot = Checkpoint::open(dir);
  }
  return *slot;
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

// The GPU's probe frames against the CPU's, every `stride`-th token: the same positions and
// layers, Δ, ‖h‖, the gate, B, C and h within `tol` (rel_error), the write strength and read norm
// within 10·tol relative (sums over d_inner·d_state of rounded products).
inline void expect_probes_match(const ProbeRecorder& gpu, const ProbeRecorder& cpu, double tol,
                                size_t stride = 1) {
  ASSERT_EQ(gpu.tokens().size(), cpu.tokens().size());
  for (size_t i = 0; i < cpu.tokens().size(); i += stride) {
    const TokenProbe& a = gpu.tokens()[i];
    const TokenProbe& b = cpu.tokens()[i];
    ASSERT_EQ(a.position, b.position);
    ASSERT_EQ(a.layers.size(), b.layers.size()) << "position " << b.position;
    for (size_t l = 0; l < a.layers.size(); ++l) {
      const LayerProbe& x = a.layers[l];
      const LayerProbe& y = b.layers[l];
      SCOPED_TRACE("position " + std::to_string(b.position) + " layer " + std::to_string(y.layer));
      EXPECT_EQ(x.layer, y.layer);
      EXPECT_LT(rel_error(x.delta, y.delta), tol);
      EXPECT_LT(rel_error(x.h_norm, y.h_norm), tol);
      EXPECT_LT(rel_error(x.gate, y.gate), tol);
      EXPECT_LT(rel_error(x.B, y.B), tol);
      EXPECT_LT(rel_error(x.C, y.C), tol);
      EXPECT_LT(rel_error(x.h, y.h), tol);
      EXPECT_NEAR(x.write_strength, y.write_strength, tol * 10 * std::max(1.f, y.write_strength));
      EXPECT_NEAR(x.read_norm, y.read_norm, tol * 10 * std::max(1.f, y.read_norm));
    }
  }
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
