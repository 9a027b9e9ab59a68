// Upload of a checkpoint to the GPU (device_weights.hpp).
#include "cuda/device_weights.hpp"

#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>

#include "cuda/cuda_check.hpp"
#include "cuda/decode_fused.hpp"

namespace mambascope::cuda {

DeviceMemory::DeviceMemory(size_t bytes) { reserve(bytes); }
DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFree(p_);
    p_ = o.p_;
    n_ = o.n_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}
DeviceMemory::~DeviceMemory() {
  if (p_) cudaFree(p_);
}
void DeviceMemory::reserve(size_t bytes) {
  if (bytes <= n_) return;
  if (p_) cudaFree(p_);
  p_ = nullptr;
  n_ = 0;
  MS_CUDA_CHECK(cudaMalloc(&p_, bytes < 16 ? 16 : bytes));
  n_ = bytes;
}

namespace {

class Uploader {
 public:
  Uploader(const Checkpoint& ck, DeviceWeights& w) : ck_(ck), w_(w) {}

  // A matrix in the model dtype.
  const void* matrix(const std::string& name) {
    const TensorView& v = ck_.get(name);
    if (v.dtype == w_.dtype) return put(v.data, v.nbytes);
    std::vector<float> f(size_t(v.numel()));
    convert_to_f32(v.dtype, v.data, f.data(), f.size());
    std::vector<uint16_t> h(f.size());
    if (w_.dtype == DType::F32) return put(f.data(), f.size() * 4);
    for (size_t i = 0; i < f.size(); ++i)
      h[i] = w_.dtype == DType::BF16 ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
    return put(h.data(), h.size() * 2);
  }
  // A vector (or small matrix) in fp32; null if absent and optional.
  const float* vec(const std::string& name, bool optional = false) {
    const TensorView* v = optional ? ck_.find(name) : &ck_.get(name);
    if (!v) return nullptr;
    std::vector<float> f(size_t(v->numel()));
    convert_to_f32(v->dtype, v->data, f.data(), f.size());
    return static_cast<const float*>(put(f.data(), f.size() * 4));
  }
  std::vector<float> host_f32(const std::string& name, bool optional = false) {
    const TensorView* v = optional ? ck_.find(name) : &ck_.get(name);
    std::vector<float> f(v ? size_t(v->numel()) : 0);
    if (v) convert_to_f32(v->dtype, v->data, f.data(), f.size());
    return f;
  }
  // The fused decode step's per-channel records of one layer (decode_fused.hpp): each block's
  // channels then come in as one contiguous bulk copy per phase.
  void records(const std::string& m, const ModelConfig& c, DecodeLayer& L) {
    const int D = int(c.d_inner), N = int(c.d_state), R = int(c.dt_rank), k = int(c.d_conv);
    const int xr = int(c.x_proj_rows()), es = int(dtype_size(w_.dtype));
    const int ba = fused_recA_bytes(k, xr, es), bb = fused_recB_bytes(N, R, es);
    const auto conv_w = host_f32(m + "conv1d.weight"), conv_b = host_f32(m + "conv1d.bias", true);
    const auto x_proj = host_f32(m + "x_proj.weight"), dt_proj = host_f32(m + "dt_proj.weight");
    const auto dt_bias = host_f32(m + "dt_proj.bias"), A_log = host_f32(m + "A_log"), Dp = host_f32(m + "D");
    std::vector<std::byte> a(size_t(D) * ba), b(size_t(D) * bb);
    auto f32_at = [](std::byte* p, int i, float v) { std::memcpy(p + 4 * i, &v, 4); };
    auto typed_at = [&](std::byte* p, int i, float v) {
      if (w_.dtype == DType::F32) return std::memcpy(p + 4 * i, &v, 4), void();
      const uint16_t h = w_.dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(p + 2 * i, &h, 2);
    };
    for (int ch = 0; ch < D; ++ch) {
      std::byte* ra = a.data() + size_t(ch) * ba;
      f32_at(ra, 0, conv_b.empty() ? 0.f : conv_b[size_t(ch)]);
      for (int j = 0; j < k; ++j) f32_at(ra + 16, j, conv_w[size_t(ch) * k + j]);
      for (int j = 0; j < xr; ++j) typed_at(ra + 16 + 4 * fused_round4(k), j, x_proj[size_t(j) * D + ch]);
      std::byte* rb = b.data() + size_t(ch) * bb;
      f32_at(rb, 0, dt_bias[size_t(ch)]);
      f32_at(rb, 1, Dp[size_t(ch)]);
      for (int n = 0; n < N; ++n) f32_at(rb + 16, n, -std::exp(A_log[size_t(ch) * N + n]));
      for (int r = 0; r < R; ++r) typed_at(rb + 16 + 4 * fused_round4(N), r, dt_proj[size_t(ch) * R + r]);
    }
    L.recA = put(a.data(), a.size());
    L.recB = put(b.data(), b.size());
  }
  const float* neg_exp(const std::string& name) {
    const TensorView& v = ck_.get(name);
    std::vector<float> f(size_t(v.numel()));
    convert_to_f32(v.dtype, v.data, f.data(), f.size());
    for (float& x : f) x = -std::exp(x);
    return static_cast<const float*>(put(f.data(), f.size() * 4));
  }

 private:
  const void* put(const void* src, size_t bytes) {
    DeviceMemory m(bytes);
    MS_CUDA_CHECK(cudaMemcpy(m.get(), src, bytes, cudaMemcpyHostToDevice));
    w_.bytes += bytes;
    w_.owned.push_back(std::move(m));
    return w_.owned.back().get();
  }
  const Checkpoint& ck_;
  DeviceWeights& w_;
};

}  // namespace

DeviceWeights upload_weights(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  DeviceWeights w;
  w.dtype = ckpt.storage_dtype();
  size_t free_b = 0, total_b = 0;
  MS_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const size_t need = size_t(ckpt.parameter_count()) * dtype_size(w.dtype);
  if (need > free_b)
    throw Error("the model needs " + std::to_string(need >> 20) + " MiB on the GPU but only " +
                std::to_string(free_b >> 20) + " MiB are free; use the CPU backend or a smaller model");
  Uploader up(ckpt, w);
  w.embedding = up.matrix("backbone.embeddings.weight");
  w.lm_head = ckpt.find("lm_head.weight") && !c.tie_embeddings ? up.matrix("lm_head.weight") : w.embedding;
  w.norm_f = up.vec("backbone.norm_f.weight");
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    DecodeLayer L;
    L.norm_w = up.vec(p + "norm.weight");
    L.in_proj = up.matrix(m + "in_proj.weight");
    L.in_bias = up.vec(m + "in_proj.bias", true);
    L.conv_w = up.vec(m + "conv1d.weight");
    L.conv_b = up.vec(m + "conv1d.bias", true);
    if (c.lti) {
      L.dt_lti = up.vec(m + "dt_lti");
      L.B_lti = up.vec(m + "B_lti");
      L.C_lti = up.vec(m + "C_lti");
    } else {
      L.x_proj = up.matrix(m + "x_proj.weight");
      L.dt_proj = up.matrix(m + "dt_proj.weight");
      L.dt_bias = up.vec(m + "dt_proj.bias");
      up.records(m, c, L);
    }
    L.A = up.neg_exp(m + "A_log");
    L.D = up.vec(m + "D");
    L.out_proj = up.matrix(m + "out_proj.weight");
    L.out_bias = up.vec(m + "out_proj.bias", true);
    w.layers.push_back(L);
  }
  return w;
}

}  // namespace mambascope::cuda
