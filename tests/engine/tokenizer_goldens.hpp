// Shared by the tokenizer tests: where the tokenizers and golden files live, and a reader for
// the goldens written by tests/fixtures/tokenizer/make_goldens.py.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "mambascope/tokenizer.hpp"

namespace mambascope::test {

inline const std::string kNeoxTokenizer =
    MAMBASCOPE_SOURCE_DIR "/assets/tokenizers/gpt-neox-20b/tokenizer.json";
inline const std::string kTokenizerFixtures = MAMBASCOPE_FIXTURES_DIR "/tokenizer";
inline const std::string kTinySentencePiece = kTokenizerFixtures + "/tiny_sp.model";

// The GPT-NeoX tokenizer, loaded once for the whole test program.
inline const Tokenizer& neox_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = Tokenizer::load(kNeoxTokenizer);
  return *tok;
}

struct GoldenCase {
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded;                            // the library's decode of ids
  std::optional<std::vector<int32_t>> ids_plain;  // special tokens not parsed (BPE only)
};

inline std::vector<GoldenCase> read_goldens(const std::string& file_name) {
  std::ifstream in(kTokenizerFixtures + "/" + file_name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto root = nlohmann::json::parse(ss.str());
  std::vector<GoldenCase> cases;
  for (const auto& c : root.at("cases")) {
    GoldenCase g;
    g.text = c.at("text").get<std::string>();
    g.ids = c.at("ids").get<std::vector<int32_t>>();
    g.decoded = c.at("decoded").get<std::string>();
    if (c.contains("ids_plain")) g.ids_plain = c.at("ids_plain").get<std::vector<int32_t>>();
    cases.push_back(std::move(g));
  }
  return cases;
}

}  // namespace mambascope::test
