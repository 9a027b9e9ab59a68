// The golden fixtures from Hugging Face transformers (tests/fixtures/hf, made by
// tests/fixtures/make_hf_fixtures.py): a tiny model folder per case, its prompt, transformers'
// logits for every prompt token and the 16 tokens greedy decoding appends.
//
//   for (const std::string& name : hf_fixture_cases()) {
//     HfFixture fx = load_hf_fixture(name);
//     auto ckpt = mambascope::Checkpoint::open(fx.dir);
//     ... run fx.input_ids, compare with fx.logits ({fx.input_ids.size(), fx.vocab}) ...
//   }
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambascope/error.hpp"
#include "mambascope/npy.hpp"

namespace mambascope::testing {

struct HfFixture {
  std::string name;
  std::filesystem::path dir;       // a model folder: Checkpoint::open(dir) loads it
  std::vector<int32_t> input_ids;  // the prompt {L}
  std::vector<float> logits;       // transformers' logits {L, vocab}, row t after token t
  int64_t vocab = 0;               // columns of logits (the embedding's rows)
  std::vector<int32_t> greedy;     // the next 16 tokens of greedy decoding after the prompt
  float min_top2_margin = 0;       // smallest best-minus-second logit gap along that run

  const float* logits_row(size_t t) const { return logits.data() + t * size_t(vocab); }
};

inline std::filesystem::path hf_fixtures_dir() {
  return std::filesystem::path(MAMBASCOPE_FIXTURES_DIR) / "hf";
}

// Every case, in a fixed order.
inline std::vector<std::string> hf_fixture_cases() {
  return {"tied_fp32", "bf16",          "original_names", "untied_bias_noconvbias",
          "dstate_8",  "conv_kernel_3", "long_500",       "sharded"};
}

inline HfFixture load_hf_fixture(const std::string& name) {
  HfFixture fx;
  fx.name = name;
  fx.dir = hf_fixtures_dir() / name;
  NpyArray ids = read_npy(fx.dir / "input_ids.npy");
  NpyArray logits = read_npy(fx.dir / "logits.npy");
  if (ids.type != NpyArray::Type::I32 || ids.shape.size() != 1 ||
      logits.type != NpyArray::Type::F32 || logits.shape.size() != 2 ||
      logits.shape[0] != ids.shape[0])
    throw Error(fx.dir.string() + ": input_ids.npy / logits.npy do not have the expected shapes");
  fx.input_ids = std::move(ids.i32);
  fx.logits = std::move(logits.f32);
  fx.vocab = logits.shape[1];
  std::ifstream f(fx.dir / "greedy.json");
  nlohmann::json g = nlohmann::json::parse(f);
  fx.greedy = g.at("tokens").get<std::vector<int32_t>>();
  fx.min_top2_margin = g.at("min_top2_margin").get<float>();
  return fx;
}

}  // namespace mambascope::testing
