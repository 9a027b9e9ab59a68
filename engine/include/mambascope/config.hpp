// The shape of a Mamba-1 model, read from either spelling of config.json: the Hugging Face
// `MambaForCausalLM` one (hidden_size, state_size, ...) or the original state-spaces one
// (d_model, n_layer, ssm_cfg, ...).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace mambascope {

struct ModelConfig {
  int64_t d_model = 0;        // hidden_size
  int64_t n_layer = 0;        // num_hidden_layers
  int64_t vocab_size = 0;     // rows of the embedding (already padded)
  int64_t d_state = 16;       // state_size, N
  int64_t d_conv = 4;         // conv_kernel
  int64_t expand = 2;
  int64_t d_inner = 0;        // intermediate_size = expand * d_model
  int64_t dt_rank = 0;        // time_step_rank ("auto" = ceil(d_model / 16))
  bool use_bias = false;      // in_proj / out_proj bias
  bool use_conv_bias = true;
  bool tie_embeddings = true;
  bool residual_in_fp32 = true;
  double norm_eps = 1e-5;
  // MambaScope's LTI variant (models/README.md): Δ, B, C are parameters, not functions of the
  // input, so the layer is an S4-like time-invariant SSM. config.json key "mambascope_lti".
  bool lti = false;
  int64_t eos_token_id = 0;
  int64_t bos_token_id = 0;
  std::string naming;  // "hf" or "original": which config spelling was read

  int64_t x_proj_rows() const { return dt_rank + 2 * d_state; }
  // Throws mambascope::Error if the numbers cannot describe a Mamba-1 model.
  void validate() const;
};

// Reads and validates <dir>/config.json. Throws mambascope::Error with an actionable message.
ModelConfig load_model_config(const std::filesystem::path& dir);
ModelConfig parse_model_config(const std::string& json_text, const std::string& origin);

}  // namespace mambascope
