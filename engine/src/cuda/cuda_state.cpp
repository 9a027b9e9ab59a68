// The recurrent state on the GPU (cuda_state.hpp). Copies go through the legacy default stream,
// which orders them after the backend's (blocking) stream.
#include "cuda/cuda_state.hpp"

#include "cuda/cuda_check.hpp"

namespace mambascope::cuda {

CudaState::CudaState(size_t n_conv, size_t n_ssm, Uninitialised) : n_conv_(n_conv), n_ssm_(n_ssm) {
  mem_.reserve((ssm_at() + n_ssm_) * sizeof(float));
}

CudaState::CudaState(size_t n_conv, size_t n_ssm) : CudaState(n_conv, n_ssm, Uninitialised{}) {
  MS_CUDA_CHECK(cudaMemset(mem_.get(), 0, mem_.bytes()));
}

std::unique_ptr<BackendState> CudaState::clone() const {
  std::unique_ptr<CudaState> s(new CudaState(n_conv_, n_ssm_, Uninitialised{}));
  MS_CUDA_CHECK(cudaMemcpy(s->mem_.get(), mem_.get(), mem_.bytes(), cudaMemcpyDeviceToDevice));
  s->position_ = position_;
  return s;
}

HostState CudaState::to_host() const {
  HostState h;
  h.position = position_;
  h.conv.resize(n_conv_);
  h.ssm.resize(n_ssm_);
  MS_CUDA_CHECK(cudaMemcpy(h.conv.data(), conv(), n_conv_ * sizeof(float), cudaMemcpyDeviceToHost));
  MS_CUDA_CHECK(cudaMemcpy(h.ssm.data(), ssm(), n_ssm_ * sizeof(float), cudaMemcpyDeviceToHost));
  return h;
}

void CudaState::from_host(const HostState& s) {
  if (s.conv.size() != n_conv_ || s.ssm.size() != n_ssm_)
    throw Error("state does not match this model's shape");
  MS_CUDA_CHECK(cudaMemcpy(conv(), s.conv.data(), n_conv_ * sizeof(float), cudaMemcpyHostToDevice));
  MS_CUDA_CHECK(cudaMemcpy(ssm(), s.ssm.data(), n_ssm_ * sizeof(float), cudaMemcpyHostToDevice));
  position_ = s.position;
}

}  // namespace mambascope::cuda
