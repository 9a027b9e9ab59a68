// The recurrent state on the GPU: conv windows and h for every layer, fp32.
#pragma once
#include <memory>

#include "cuda/device_weights.hpp"
#include "mambascope/backend.hpp"

namespace mambascope::cuda {

class CudaState final : public BackendState {
 public:
  CudaState(size_t n_conv, size_t n_ssm);  // zeroed
  std::unique_ptr<BackendState> clone() const override;
  HostState to_host() const override;
  void from_host(const HostState& s) override;
  int64_t position() const override { return position_; }
  size_t bytes() const override { return (n_conv_ + n_ssm_) * sizeof(float); }

  float* conv() const { return mem_.f32(); }             // {n_layer, d_inner, d_conv - 1}
  float* ssm() const { return mem_.f32() + ssm_at(); }  // {n_layer, d_inner, d_state}
  size_t conv_floats() const { return n_conv_; }
  size_t ssm_floats() const { return n_ssm_; }
  void advance(int64_t n) { position_ += n; }

 private:
  struct Uninitialised {};
  CudaState(size_t n_conv, size_t n_ssm, Uninitialised);  // clone's: the copy fills it
  // One allocation for both (a Session clones the state for every snapshot: one cudaMalloc and
  // one copy instead of two of each and two memsets); h starts on a 256-byte boundary.
  size_t ssm_at() const { return (n_conv_ + 63) & ~size_t(63); }
  size_t n_conv_, n_ssm_;
  DeviceMemory mem_;
  int64_t position_ = 0;
};

}  // namespace mambascope::cuda
