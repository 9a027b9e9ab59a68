// The Mamba-1 tensor layout (MambaForCausalLM, and mamba_ssm's MambaLMHeadModel with the one
// embedding name changed), and the MambaScope LTI variant whose mixers hold Δ, B, C as plain
// parameters instead of the x_proj/dt_proj projections that make them input-dependent.
#include "checkpoint/layout.hpp"

namespace mambascope {

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "{";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "}";
}

std::string canonical_tensor_name(std::string_view stored) {
  if (stored == "backbone.embedding.weight") return "backbone.embeddings.weight";
  return std::string(stored);
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const int64_t d = c.d_model, di = c.d_inner, n = c.d_state;
  std::vector<ExpectedTensor> out;
  out.push_back({"backbone.embeddings.weight", {c.vocab_size, d}, "{vocab_size, d_model}"});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    out.push_back({p + "norm.weight", {d}, "{d_model}"});
    out.push_back({m + "in_proj.weight", {2 * di, d}, "{2*d_inner, d_model}"});
    if (c.use_bias) out.push_back({m + "in_proj.bias", {2 * di}, "{2*d_inner} (use_bias)"});
    out.push_back({m + "conv1d.weight", {di, 1, c.d_conv}, "{d_inner, 1, d_conv}"});
    if (c.use_conv_bias) out.push_back({m + "conv1d.bias", {di}, "{d_inner} (use_conv_bias)"});
    if (c.lti) {
      out.push_back({m + "dt_lti", {di}, "{d_inner} (mambascope_lti)"});
      out.push_back({m + "B_lti", {di, n}, "{d_inner, d_state} (mambascope_lti)"});
      out.push_back({m + "C_lti", {di, n}, "{d_inner, d_state} (mambascope_lti)"});
    } else {
      out.push_back(
          {m + "x_proj.weight", {c.dt_rank + 2 * n, di}, "{dt_rank + 2*d_state, d_inner}"});
      out.push_back({m + "dt_proj.weight", {di, c.dt_rank}, "{d_inner, dt_rank}"});
      out.push_back({m + "dt_proj.bias", {di}, "{d_inner}"});
    }
    out.push_back({m + "A_log", {di, n}, "{d_inner, d_state}"});
    out.push_back({m + "D", {di}, "{d_inner}"});
    out.push_back({m + "out_proj.weight", {d, di}, "{d_model, d_inner}"});
    if (c.use_bias) out.push_back({m + "out_proj.bias", {d}, "{d_model} (use_bias)"});
  }
  out.push_back({"backbone.norm_f.weight", {d}, "{d_model}"});
  if (!c.tie_embeddings)
    out.push_back({"lm_head.weight", {c.vocab_size, d}, "{vocab_size, d_model}"});
  return out;
}

}  // namespace mambascope
