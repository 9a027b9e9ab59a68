// Random-weight checkpoints (random_checkpoint.hpp). Values come from a counter-based hash, so
// any slice can be generated independently: tensors are filled in parallel chunks and streamed
// to the file, and a 2.8b-shape checkpoint never needs its 5.5 GB in memory at once.
#include "mambascope/random_checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/layout.hpp"
#include "checkpoint/safetensors.hpp"
#include "mambascope/error.hpp"

namespace mambascope {
namespace {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27; x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// ~N(0, 1) from the sum of four 16-bit uniforms (Irwin-Hall), cheap and plenty for weights.
float normal_at(uint64_t key, uint64_t i) {
  const uint64_t h = mix64(key ^ mix64(i));
  float s = 0;
  for (int j = 0; j < 4; ++j) s += float((h >> (16 * j)) & 0xffff) * (1.0f / 65536.0f);
  return (s - 2.0f) * 1.7320508f;
}
float uniform_at(uint64_t key, uint64_t i) {
  return float(mix64(key ^ mix64(i)) >> 40) * (1.0f / 16777216.0f);
}

enum class Init { Normal002, Normal1, Ones, Zeros, ALog, DtBias };

Init init_for(const std::string& name) {
  auto ends = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends("A_log")) return Init::ALog;
  if (ends("dt_proj.bias") || ends("dt_lti")) return Init::DtBias;
  if (ends("mixer.D") || ends("norm.weight") || ends("norm_f.weight")) return Init::Ones;
  if (ends("in_proj.bias") || ends("out_proj.bias")) return Init::Zeros;
  if (ends("B_lti") || ends("C_lti")) return Init::Normal1;
  return Init::Normal002;
}

float value_at(Init init, uint64_t key, uint64_t i, int64_t cols) {
  switch (init) {
    case Init::Normal002: return 0.02f * normal_at(key, i);
    case Init::Normal1: return normal_at(key, i);
    case Init::Ones: return 1.0f;
    case Init::Zeros: return 0.0f;
    case Init::ALog: return std::log(float(i % uint64_t(cols) + 1));
    case Init::DtBias: {
      const float lo = std::log(1e-3f), hi = std::log(1e-1f);
      const float dt = std::exp(lo + (hi - lo) * uniform_at(key, i));
      return dt + std::log(-std::expm1(-dt));  // softplus⁻¹(dt)
    }
  }
  return 0.0f;
}

void store(DType dt, float v, std::byte* out) {
  if (dt == DType::F32) {
    std::memcpy(out, &v, 4);
  } else {
    const uint16_t h = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    std::memcpy(out, &h, 2);
  }
}

std::string config_json(const ModelConfig& c, DType dtype) {
  nlohmann::json j = {
      {"architectures", {"MambaForCausalLM"}}, {"model_type", "mamba"},
      {"hidden_size", c.d_model}, {"num_hidden_layers", c.n_layer}, {"vocab_size", c.vocab_size},
      {"state_size", c.d_state}, {"conv_kernel", c.d_conv}, {"expand", c.expand},
      {"intermediate_size", c.d_inner}, {"time_step_rank", c.dt_rank}, {"use_bias", c.use_bias},
      {"use_conv_bias", c.use_conv_bias}, {"tie_word_embeddings", c.tie_embeddings},
      {"residual_in_fp32", c.residual_in_fp32}, {"layer_norm_epsilon", c.norm_eps},
      {"hidden_act", "silu"}, {"eos_token_id", c.eos_token_id}, {"bos_token_id", c.bos_token_id},
      {"torch_dtype", dtype == DType::BF16 ? "bfloat16" : dtype == DType::F16 ? "float16" : "float32"}};
  if (c.lti) j["mambascope_lti"] = true;
  return j.dump(2) + "\n";
}

}  // namespace

ModelConfig mamba_shape(std::string_view name) {
  ModelConfig c;
  if (name == "130m") c.d_model = 768, c.n_layer = 24;
  else if (name == "370m") c.d_model = 1024, c.n_layer = 48;
  else if (name == "790m") c.d_model = 1536, c.n_layer = 48;
  else if (name == "1.4b") c.d_model = 2048, c.n_layer = 48;
  else if (name == "2.8b") c.d_model = 2560, c.n_layer = 64;
  else throw Error("unknown model shape '" + std::string(name) + "' (130m, 370m, 790m, 1.4b, 2.8b)");
  c.vocab_size = 50280;
  c.d_state = 16;
  c.d_conv = 4;
  c.expand = 2;
  c.d_inner = 2 * c.d_model;
  c.dt_rank = (c.d_model + 15) / 16;
  c.use_bias = false;
  c.use_conv_bias = true;
  c.tie_embeddings = true;
  c.naming = "hf";
  return c;
}

void write_random_checkpoint(const std::filesystem::path& dir, const ModelConfig& cfg,
                             DType dtype, uint64_t seed) {
  cfg.validate();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
  {
    std::ofstream f(dir / "config.json");
    f << config_json(cfg, dtype);
    if (!f) throw Error("cannot write " + (dir / "config.json").string());
  }
  const std::vector<ExpectedTensor> expected = expected_tensors(cfg);
  std::vector<SafetensorsTensor> tensors;
  for (const ExpectedTensor& e : expected) tensors.push_back({e.name, dtype, e.shape, nullptr});
  std::vector<size_t> offsets;
  const std::string header = safetensors_header(tensors, &offsets);

  const std::filesystem::path path = dir / "model.safetensors";
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write " + path.string());
  f.write(header.data(), std::streamsize(header.size()));
  const size_t esz = dtype_size(dtype);
  const unsigned nthreads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::byte> buf;
  for (size_t ti = 0; ti < tensors.size(); ++ti) {
    const ExpectedTensor& e = expected[ti];
    int64_t numel = 1;
    for (int64_t s : e.shape) numel *= s;
    const int64_t cols = e.shape.back();
    const Init init = init_for(e.name);
    const uint64_t key = mix64(seed * 0x9e3779b97f4a7c15ull + ti + 1);
    const int64_t chunk = int64_t(1) << 24;  // elements per write
    for (int64_t c0 = 0; c0 < numel; c0 += chunk) {
      const int64_t n = std::min(chunk, numel - c0);
      buf.resize(size_t(n) * esz);
      auto fill = [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i)
          store(dtype, value_at(init, key, uint64_t(c0 + i), cols), buf.data() + size_t(i) * esz);
      };
      if (n < (int64_t(1) << 16) || nthreads == 1) {
        fill(0, n);
      } else {
        std::vector<std::thread> pool;
        const int64_t per = (n + nthreads - 1) / nthreads;
        for (unsigned t = 0; t < nthreads; ++t)
          pool.emplace_back(fill, std::min(n, t * per), std::min(n, (t + 1) * per));
        for (auto& th : pool) th.join();
      }
      f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
    }
  }
  if (!f) throw Error("writing " + path.string() + " failed (disk full?)");
}

}  // namespace mambascope
