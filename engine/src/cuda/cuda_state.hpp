// The recurrent state on the GPU: conv windows and h for every layer, fp32.
#pragma once
#include <memory>

#include "cuda/device_weights.hpp"
#include "mambascope/backend.hpp"

namespace mambascope::cuda {

class CudaState final : public BackendState {
 public:
  CudaState(size_t n_conv, size_t n_ssm);
  std::unique_ptr<BackendState> clone() const override;
  HostState to_host() const override;
  void from_host(const HostState& s) override;
  int64_t position() const override { return position_; }
  size_t bytes() const override { return (n_conv_ + n_ssm_) * sizeof(float); }

  float* conv() const { return conv_.f32(); }  // {n_layer, d_inner, d_conv - 1}
  float* ssm() const { return ssm_.f32(); }    // {n_layer, d_inner, d_state}
  size_t conv_floats() const { return n_conv_; }
  size_t ssm_floats() const { return n_ssm_; }
  void advance(int64_t n) { position_ += n; }

 private:
  size_t n_conv_, n_ssm_;
  DeviceMemory conv_, ssm_;
  int64_t position_ = 0;
};

}  // namespace mambascope::cuda
