// fp32 views of the weights for the CPU backend: fp32 tensors are used in place inside the
// mapping; fp16/bf16 ones (and fp32 ones the header left misaligned) are converted once here.
#include "mambascope/weights.hpp"

#include <cstdint>

namespace mambascope {

namespace {

class F32Source {
 public:
  F32Source(const Checkpoint& ck, ModelWeightsF32& out) : ck_(ck), out_(out) {}

  const float* get(const std::string& name) { return view(ck_.get(name)); }
  const float* find(const std::string& name) {
    const TensorView* v = ck_.find(name);
    return v ? view(*v) : nullptr;
  }

 private:
  const float* view(const TensorView& v) {
    if (v.dtype == DType::F32 && reinterpret_cast<uintptr_t>(v.data) % alignof(float) == 0)
      return reinterpret_cast<const float*>(v.data);
    auto buf = std::make_unique<float[]>(size_t(v.numel()));
    convert_to_f32(v.dtype, v.data, buf.get(), size_t(v.numel()));
    out_.owned.push_back(std::move(buf));
    return out_.owned.back().get();
  }
  const Checkpoint& ck_;
  ModelWeightsF32& out_;
};

}  // namespace

ModelWeightsF32 load_weights_f32(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  ModelWeightsF32 w;
  F32Source src(ckpt, w);
  w.embedding = src.get("backbone.embeddings.weight");
  w.norm_f = src.get("backbone.norm_f.weight");
  // A tied head shares the embedding's buffer (converted once, not twice).
  w.lm_head = c.tie_embeddings ? w.embedding : src.get("lm_head.weight");
  w.layers.resize(size_t(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    LayerWeightsF32& l = w.layers[size_t(i)];
    l.norm = src.get(p + "norm.weight");
    l.in_proj = src.get(m + "in_proj.weight");
    l.in_proj_bias = src.find(m + "in_proj.bias");
    l.conv_w = src.get(m + "conv1d.weight");
    l.conv_b = src.find(m + "conv1d.bias");
    if (c.lti) {
      l.dt_lti = src.get(m + "dt_lti");
      l.B_lti = src.get(m + "B_lti");
      l.C_lti = src.get(m + "C_lti");
    } else {
      l.x_proj = src.get(m + "x_proj.weight");
      l.dt_proj = src.get(m + "dt_proj.weight");
      l.dt_bias = src.get(m + "dt_proj.bias");
    }
    l.A_log = src.get(m + "A_log");
    l.D = src.get(m + "D");
    l.out_proj = src.get(m + "out_proj.weight");
    l.out_proj_bias = src.find(m + "out_proj.bias");
  }
  return w;
}

}  // namespace mambascope
