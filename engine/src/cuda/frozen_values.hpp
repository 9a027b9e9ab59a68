// The frozen Δ, B, C of every layer for one forward call, on the host (frozen_out, probes) and on
// the device (the modes). A frozen layer is one LTI system per channel, which every mode then runs
// (scan and recurrent as an RNN, convolution as the Toeplitz matrix, lti-fft by FFT).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_weights.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/config.hpp"

namespace mambascope::cuda {

// f sized for cfg, all zero (what frozen_out holds where nothing was frozen).
void zero_frozen(FrozenSsm& f, const ModelConfig& cfg);

class FrozenValues {
 public:
  // Zeroed host values of this shape; device buffers reserved.
  void resize(const ModelConfig& cfg);
  const FrozenSsm& host() const { return host_; }
  FrozenSsm& host() { return host_; }
  void upload(cudaStream_t stream);                    // every layer, host -> device
  void download_layer(int64_t l, cudaStream_t stream);  // device -> host (waits for it)
  // softplus⁻¹(Δ) of every layer, for the decode step, which applies softplus itself.
  void make_dt_pre(cudaStream_t stream);

  float* delta(int64_t l) const { return delta_.f32() + l * d_; }       // {d}: Δ after softplus
  float* B(int64_t l) const { return B_.f32() + l * d_ * N_; }          // {d, N}
  float* C(int64_t l) const { return C_.f32() + l * d_ * N_; }          // {d, N}
  const float* dt_pre(int64_t l) const { return dt_pre_.f32() + l * d_; }  // {d}

 private:
  FrozenSsm host_;
  DeviceMemory delta_, B_, C_, dt_pre_;  // {n_layer, d}, {n_layer, d, N} ×2, {n_layer, d}
  int64_t d_ = 0, N_ = 0;
};

}  // namespace mambascope::cuda
