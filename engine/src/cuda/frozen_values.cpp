// A frozen call's Δ, B, C on host and device (frozen_values.hpp).
#include "cuda/frozen_values.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/cuda_check.hpp"

namespace mambascope::cuda {

void zero_frozen(FrozenSsm& f, const ModelConfig& cfg) {
  f.n_layer = cfg.n_layer;
  f.d_inner = cfg.d_inner;
  f.d_state = cfg.d_state;
  f.delta.assign(size_t(cfg.n_layer * cfg.d_inner), 0.f);
  f.B.assign(size_t(cfg.n_layer * cfg.d_inner * cfg.d_state), 0.f);
  f.C.assign(f.B.size(), 0.f);
}

void FrozenValues::resize(const ModelConfig& cfg) {
  d_ = cfg.d_inner;
  N_ = cfg.d_state;
  zero_frozen(host_, cfg);
  delta_.reserve(sizeof(float) * host_.delta.size());
  dt_pre_.reserve(sizeof(float) * host_.delta.size());
  B_.reserve(sizeof(float) * host_.B.size());
  C_.reserve(sizeof(float) * host_.C.size());
}

void FrozenValues::upload(cudaStream_t stream) {
  MS_CUDA_CHECK(cudaMemcpyAsync(delta_.get(), host_.delta.data(), sizeof(float) * host_.delta.size(),
                                cudaMemcpyHostToDevice, stream));
  MS_CUDA_CHECK(cudaMemcpyAsync(B_.get(), host_.B.data(), sizeof(float) * host_.B.size(),
                                cudaMemcpyHostToDevice, stream));
  MS_CUDA_CHECK(cudaMemcpyAsync(C_.get(), host_.C.data(), sizeof(float) * host_.C.size(),
                                cudaMemcpyHostToDevice, stream));
  MS_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host vectors may change after this
}

void FrozenValues::download_layer(int64_t l, cudaStream_t stream) {
  const size_t dn = size_t(d_ * N_);
  MS_CUDA_CHECK(cudaMemcpyAsync(host_.delta.data() + l * d_, delta(l), sizeof(float) * d_,
                                cudaMemcpyDeviceToHost, stream));
  MS_CUDA_CHECK(cudaMemcpyAsync(host_.B.data() + l * dn, B(l), sizeof(float) * dn, cudaMemcpyDeviceToHost, stream));
  MS_CUDA_CHECK(cudaMemcpyAsync(host_.C.data() + l * dn, C(l), sizeof(float) * dn, cudaMemcpyDeviceToHost, stream));
  MS_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void FrozenValues::make_dt_pre(cudaStream_t stream) {
  // softplus(x) = Δ  <=>  x = log(expm1(Δ)); the identity above 20, as softplus is there. Δ must
  // be positive for a pre-image to exist: a non-positive Δ becomes the smallest positive one.
  std::vector<float> pre(host_.delta.size());
  for (size_t i = 0; i < pre.size(); ++i) {
    const double v = std::max(double(host_.delta[i]), 1e-30);
    pre[i] = v > 20.0 ? float(v) : float(std::log(std::expm1(v)));
  }
  MS_CUDA_CHECK(cudaMemcpyAsync(dt_pre_.get(), pre.data(), sizeof(float) * pre.size(),
                                cudaMemcpyHostToDevice, stream));
  MS_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace mambascope::cuda
