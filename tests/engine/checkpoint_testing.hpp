// Test helpers for the checkpoint tests: a self-deleting temp folder, and tiny (or full-size,
// sparse) Mamba checkpoints written from a spec, so that each test can break one thing.
#pragma once
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/safetensors.hpp"
#include "mambascope/dtype.hpp"

namespace mambascope::testing {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("mambascope-ckpt-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
}

inline std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct TinySpec {
  int64_t d_model = 8, n_layer = 2, vocab = 16, d_state = 4, d_conv = 4, expand = 2;
  bool tied = true, use_bias = false, conv_bias = true, lti = false;
  bool original = false;  // state-spaces config spelling and embedding name
  DType dtype = DType::F32;
  bool holes = false;  // write no data (a sparse file): for full-size shapes
  int64_t d_inner() const { return expand * d_model; }
  int64_t dt_rank() const { return (d_model + 15) / 16; }
};

// config.json text for the spec, in the spelling it asks for.
inline nlohmann::json tiny_config(const TinySpec& s) {
  if (s.original)
    return {{"d_model", s.d_model},
            {"n_layer", s.n_layer},
            {"vocab_size", s.vocab},
            {"ssm_cfg",
             {{"d_state", s.d_state},
              {"d_conv", s.d_conv},
              {"expand", s.expand},
              {"bias", s.use_bias},
              {"conv_bias", s.conv_bias}}},
            {"rms_norm", true},
            {"residual_in_fp32", true},
            {"fused_add_norm", true},
            {"pad_vocab_size_multiple", 8},
            {"tie_embeddings", s.tied}};
  nlohmann::json j = {{"architectures", {"MambaForCausalLM"}},
                      {"model_type", "mamba"},
                      {"hidden_size", s.d_model},
                      {"num_hidden_layers", s.n_layer},
                      {"vocab_size", s.vocab},
                      {"state_size", s.d_state},
                      {"conv_kernel", s.d_conv},
                      {"expand", s.expand},
                      {"intermediate_size", s.d_inner()},
                      {"time_step_rank", s.dt_rank()},
                      {"use_bias", s.use_bias},
                      {"use_conv_bias", s.conv_bias},
                      {"tie_word_embeddings", s.tied},
                      {"layer_norm_epsilon", 1e-5},
                      {"residual_in_fp32", true}};
  if (s.lti) j["mambascope_lti"] = true;
  return j;
}

// Every tensor of the spec, named and shaped as a Hugging Face -hf checkpoint stores them (the
// original spelling renames the embedding). Written out here, not taken from the engine, so the
// tests check the engine's layout rather than repeat it.
inline std::vector<SafetensorsTensor> tiny_tensor_specs(const TinySpec& s) {
  const int64_t d = s.d_model, di = s.d_inner(), n = s.d_state, r = s.dt_rank();
  const int64_t vocab = s.original ? (s.vocab + 7) / 8 * 8 : s.vocab;
  std::vector<SafetensorsTensor> t;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    t.push_back({std::move(name), s.dtype, std::move(shape), nullptr});
  };
  add(s.original ? "backbone.embedding.weight" : "backbone.embeddings.weight", {vocab, d});
  for (int64_t i = 0; i < s.n_layer; ++i) {
    std::string p = "backbone.layers." + std::to_string(i) + ".";
    add(p + "norm.weight", {d});
    add(p + "mixer.in_proj.weight", {2 * di, d});
    if (s.use_bias) add(p + "mixer.in_proj.bias", {2 * di});
    add(p + "mixer.conv1d.weight", {di, 1, s.d_conv});
    if (s.conv_bias) add(p + "mixer.conv1d.bias", {di});
    if (s.lti) {
      add(p + "mixer.dt_lti", {di});
      add(p + "mixer.B_lti", {di, n});
      add(p + "mixer.C_lti", {di, n});
    } else {
      add(p + "mixer.x_proj.weight", {r + 2 * n, di});
      add(p + "mixer.dt_proj.weight", {di, r});
      add(p + "mixer.dt_proj.bias", {di});
    }
    add(p + "mixer.A_log", {di, n});
    add(p + "mixer.D", {di});
    add(p + "mixer.out_proj.weight", {d, di});
    if (s.use_bias) add(p + "mixer.out_proj.bias", {d});
  }
  add("backbone.norm_f.weight", {d});
  if (!s.tied) add("lm_head.weight", {vocab, d});
  return t;
}

// Deterministic values for tensor k element i, stored as `dtype` (bf16/f16 values are exact).
inline float tiny_value(size_t k, size_t i) {
  return float(((k * 131 + i * 17) % 97)) / 64.0f - 0.75f;
}

// Writes config.json + model.safetensors for the spec into dir. `edit` may change the tensor
// list (rename, reshape, drop) before writing, so a test can break exactly one thing.
template <class Edit>
void write_tiny_checkpoint(const fs::path& dir, const TinySpec& s, Edit edit) {
  fs::create_directories(dir);
  write_text(dir / "config.json", tiny_config(s).dump(2));
  std::vector<SafetensorsTensor> t = tiny_tensor_specs(s);
  edit(t);
  std::vector<std::vector<unsigned char>> storage;
  if (!s.holes) {
    storage.reserve(t.size());
    for (size_t k = 0; k < t.size(); ++k) {
      size_t numel = 1;
      for (int64_t x : t[k].shape) numel *= size_t(x);
      std::vector<unsigned char> bytes(numel * dtype_size(t[k].dtype));
      for (size_t i = 0; i < numel; ++i) {
        float v = tiny_value(k, i);
        if (t[k].dtype == DType::F32) std::memcpy(&bytes[4 * i], &v, 4);
        uint16_t h = t[k].dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
        if (t[k].dtype != DType::F32) std::memcpy(&bytes[2 * i], &h, 2);
      }
      storage.push_back(std::move(bytes));
      t[k].data = storage.back().data();
    }
  }
  write_safetensors(dir / "model.safetensors", t);
}

// A safetensors file from a hand-written header: `claimed_length` overrides the length prefix
// (to make it lie), and data_bytes zero bytes follow the header.
inline void write_raw_safetensors(const fs::path& p, const nlohmann::json& header,
                                  size_t data_bytes,
                                  std::optional<uint64_t> claimed_length = std::nullopt) {
  std::string text = header.dump();
  uint64_t n = claimed_length.value_or(text.size());
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  write_text(p, out + text + std::string(data_bytes, '\0'));
}

inline void write_tiny_checkpoint(const fs::path& dir, const TinySpec& s) {
  write_tiny_checkpoint(dir, s, [](std::vector<SafetensorsTensor>&) {});
}

}  // namespace mambascope::testing
