// Reads config.json in either spelling: Hugging Face's `MambaForCausalLM` one (hidden_size,
// state_size, ...) and the original state-spaces one (d_model, n_layer, ssm_cfg, ...). Other
// architectures, Mamba-2 included, are refused with a message naming what was found; the
// defaults of each spelling are the ones its own library applies when a key is absent.
#include "mambascope/config.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "mambascope/error.hpp"

namespace mambascope {

using nlohmann::json;

namespace {

class Reader {
 public:
  Reader(const json& j, std::string origin) : j_(j), origin_(std::move(origin)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      throw Error(origin_ + ": '" + key + "' is missing; a Mamba config.json needs it");
    }
    const json& v = j_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::floor(d) == d && std::abs(d) < 9e15) return int64_t(d);
    }
    throw Error(origin_ + ": '" + key + "' must be an integer, found " + v.dump());
  }

  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number())
      throw Error(origin_ + ": '" + key + "' must be a number, found " + v.dump());
    return v.get<double>();
  }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean())
      throw Error(origin_ + ": '" + key + "' must be true or false, found " + v.dump());
    return v.get<bool>();
  }

  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string())
      throw Error(origin_ + ": '" + key + "' must be a string, found " + v.dump());
    return v.get<std::string>();
  }

  // time_step_rank / dt_rank: an integer or "auto" (= ceil(d_model / 16)).
  int64_t rank(const char* key, int64_t d_model) const {
    if (!has(key) || (j_.at(key).is_string() && j_.at(key).get<std::string>() == "auto"))
      return (d_model + 15) / 16;
    return integer(key);
  }

  // eos/bos ids may be a list in newer configs: the first one is the one that ends a turn.
  int64_t token_id(const char* key, int64_t fallback) const {
    if (has(key) && j_.at(key).is_array()) {
      const json& a = j_.at(key);
      if (a.empty() || !a.front().is_number_integer())
        throw Error(origin_ + ": '" + key + "' must be a token id, found " + a.dump());
      return a.front().get<int64_t>();
    }
    return integer(key, fallback);
  }

 private:
  const json& j_;
  std::string origin_;
};

void check_architecture(const json& j, const std::string& origin) {
  if (j.contains("model_type") && j["model_type"].is_string()) {
    std::string t = j["model_type"];
    if (t == "mamba2")
      throw Error(origin +
                  ": this is a Mamba-2 model (model_type \"mamba2\"); MambaScope runs "
                  "Mamba-1 models (state-spaces/mamba-130m ... mamba-2.8b and their fine-tunes)");
    if (t != "mamba")
      throw Error(origin + ": model_type \"" + t +
                  "\" is not a Mamba-1 model; MambaScope runs "
                  "MambaForCausalLM checkpoints (model_type \"mamba\")");
  }
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const json& a : j["architectures"]) {
      if (!a.is_string()) continue;
      std::string name = a;
      if (name != "MambaForCausalLM" && name != "MambaModel" && name != "MambaLMHeadModel")
        throw Error(origin + ": architecture \"" + name +
                    "\" is not supported; MambaScope runs "
                    "Mamba-1 (MambaForCausalLM) checkpoints" +
                    (name.find("Mamba2") != std::string::npos ? " (this one is Mamba-2)" : ""));
    }
  }
}

ModelConfig parse_hf(const json& j, const std::string& origin) {
  Reader r(j, origin);
  ModelConfig c;
  c.naming = "hf";
  c.d_model = r.integer("hidden_size");
  // Hub configs carry both num_hidden_layers and n_layer; transformers reads the former.
  c.n_layer = r.has("num_hidden_layers") ? r.integer("num_hidden_layers") : r.integer("n_layer");
  c.vocab_size = r.integer("vocab_size");
  c.d_state = r.integer("state_size", 16);
  c.d_conv = r.integer("conv_kernel", 4);
  c.expand = r.integer("expand", 2);
  c.d_inner = r.integer("intermediate_size", c.expand * c.d_model);
  c.dt_rank = r.rank("time_step_rank", c.d_model);
  c.use_bias = r.boolean("use_bias", true);  // MambaConfig's default; hub configs say false
  c.use_conv_bias = r.boolean("use_conv_bias", true);
  c.tie_embeddings = r.boolean("tie_word_embeddings", true);
  c.residual_in_fp32 = r.boolean("residual_in_fp32", true);
  c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
  c.eos_token_id = r.token_id("eos_token_id", 0);
  c.bos_token_id = r.token_id("bos_token_id", 0);
  std::string act = r.string("hidden_act", "silu");
  if (act != "silu" && act != "swish")
    throw Error(origin + ": hidden_act \"" + act + "\" is not supported (Mamba uses silu)");
  return c;
}

ModelConfig parse_original(const json& j, const std::string& origin) {
  Reader r(j, origin);
  ModelConfig c;
  c.naming = "original";
  c.d_model = r.integer("d_model");
  c.n_layer = r.integer("n_layer");
  int64_t vocab = r.integer("vocab_size");
  // mamba_ssm pads the embedding so its rows are a multiple of this (default 8).
  int64_t multiple = r.integer("pad_vocab_size_multiple", 8);
  if (multiple < 1) throw Error(origin + ": pad_vocab_size_multiple must be >= 1");
  c.vocab_size = (vocab + multiple - 1) / multiple * multiple;

  json ssm = j.contains("ssm_cfg") && !j["ssm_cfg"].is_null() ? j["ssm_cfg"] : json::object();
  if (!ssm.is_object()) throw Error(origin + ": 'ssm_cfg' must be an object, found " + ssm.dump());
  Reader s(ssm, origin + " ssm_cfg");
  std::string layer = s.string("layer", "Mamba1");
  if (layer == "Mamba2")
    throw Error(origin +
                ": this is a Mamba-2 model (ssm_cfg.layer \"Mamba2\"); MambaScope runs "
                "Mamba-1 models");
  if (layer != "Mamba1")
    throw Error(origin + ": ssm_cfg.layer \"" + layer + "\" is not supported (expected Mamba1)");
  if (r.integer("d_intermediate", 0) != 0)
    throw Error(origin +
                ": d_intermediate > 0 adds MLP blocks between the Mamba layers; "
                "MambaScope runs pure Mamba-1 stacks only");
  if (r.has("attn_layer_idx") && j["attn_layer_idx"].is_array() && !j["attn_layer_idx"].empty())
    throw Error(origin +
                ": attn_layer_idx makes this a Mamba/attention hybrid; MambaScope runs "
                "pure Mamba-1 stacks only");
  if (!r.boolean("rms_norm", true))
    throw Error(origin +
                ": rms_norm false (LayerNorm) is not supported; Mamba-1 checkpoints use RMSNorm");

  c.d_state = s.integer("d_state", 16);
  c.d_conv = s.integer("d_conv", 4);
  c.expand = s.integer("expand", 2);
  c.d_inner = c.expand * c.d_model;
  c.dt_rank = s.rank("dt_rank", c.d_model);
  c.use_bias = s.boolean("bias", false);
  c.use_conv_bias = s.boolean("conv_bias", true);
  c.tie_embeddings = r.boolean("tie_embeddings", true);
  c.residual_in_fp32 = r.boolean("residual_in_fp32", true);
  c.norm_eps = r.number("norm_epsilon", 1e-5);
  c.eos_token_id = 0;  // GPT-NeoX-20B's <|endoftext|>, the tokenizer of every state-spaces model
  c.bos_token_id = 0;
  return c;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw Error("invalid Mamba config: " + what);
}

}  // namespace

void ModelConfig::validate() const {
  auto s = [](int64_t v) { return std::to_string(v); };
  require(d_model > 0 && d_model <= 65536,
          "hidden size (d_model) " + s(d_model) + " is not in 1..65536");
  require(n_layer > 0 && n_layer <= 1024, "layer count " + s(n_layer) + " is not in 1..1024");
  require(vocab_size > 0 && vocab_size <= (int64_t(1) << 24),
          "vocab_size " + s(vocab_size) + " is not in 1..16777216");
  require(d_state > 0 && d_state <= 1024,
          "state size (d_state) " + s(d_state) + " is not in 1..1024");
  require(d_conv > 0 && d_conv <= 64, "conv kernel (d_conv) " + s(d_conv) + " is not in 1..64");
  require(expand > 0 && expand <= 64, "expand " + s(expand) + " is not in 1..64");
  require(d_inner > 0 && d_inner <= 64 * 65536,
          "intermediate size (d_inner) " + s(d_inner) + " is not positive");
  require(dt_rank > 0 && dt_rank <= d_inner,
          "time-step rank (dt_rank) " + s(dt_rank) + " is not in 1..d_inner (" + s(d_inner) + ")");
  require(std::isfinite(norm_eps) && norm_eps > 0 && norm_eps < 1,
          "layer_norm_epsilon " + std::to_string(norm_eps) + " is not in (0, 1)");
  require(eos_token_id >= 0 && bos_token_id >= 0, "negative eos/bos token id");
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& origin) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(origin + ": expected a JSON object");
  check_architecture(j, origin);

  ModelConfig c;
  if (j.contains("hidden_size")) {
    c = parse_hf(j, origin);
  } else if (j.contains("d_model")) {
    c = parse_original(j, origin);
  } else {
    throw Error(origin +
                ": does not describe a Mamba model: expected hidden_size (Hugging Face "
                "MambaForCausalLM) or d_model (state-spaces/mamba)");
  }
  if (j.contains("mambascope_lti")) c.lti = Reader(j, origin).boolean("mambascope_lti", false);
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error("model folder " + dir.string() + " does not exist");
  if (!fs::is_directory(dir, ec))
    throw Error(dir.string() +
                " is not a folder: give the model folder (the one holding "
                "config.json and model.safetensors)");
  fs::path p = dir / "config.json";
  if (!fs::exists(p, ec))
    throw Error(dir.string() +
                " has no config.json: a model folder needs config.json next to "
                "the weights (download both from the model's Hugging Face page)");
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_model_config(ss.str(), p.string());
}

}  // namespace mambascope
