// Byte-level BPE read from a Hugging Face tokenizer.json (GPT-2 / GPT-NeoX style): added tokens
// cut out of the raw text, NFC, the GPT-2 split regex, byte mapping, BPE merges; decode through
// the ByteLevel decoder. Any other model, normalizer, pre-tokenizer or decoder is refused with a
// message naming it, rather than tokenized differently from the library that trained it.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mambascope/tokenizer.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe_model.hpp"
#include "tokenizer/byte_level.hpp"

namespace mambascope {

class BpeTokenizer final : public Tokenizer {
 public:
  // Throws mambascope::Error for a missing or malformed file, or an unsupported configuration.
  static std::unique_ptr<BpeTokenizer> from_file(const std::filesystem::path& path);
  // The same from the file's text; `origin` names it in error messages.
  static std::unique_ptr<BpeTokenizer> from_json_text(std::string_view json_text,
                                                      const std::string& origin);

  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string token_bytes(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_bytes_.size()); }
  std::optional<int32_t> token_id(std::string_view token) const override;
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  // tokenizer.json has no notion of a BOS to prepend (GPT-NeoX models take none); the
  // checkpoint's config.json says if one is wanted.
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::string kind() const override { return "bpe"; }

  struct Options {
    bool nfc = false;               // normalizer: NFC, else none
    bool add_prefix_space = false;  // ByteLevel: a space before each piece that lacks one
    bool use_regex = true;          // ByteLevel: split with the GPT-2 regex
  };
  BpeTokenizer(Options options, BpeModelSpec model, std::vector<AddedToken> added);

 private:
  void encode_plain(std::string_view normalized, std::vector<int32_t>& ids) const;

  Options options_;
  BpeModel model_;
  byte_level::Splitter splitter_;
  AddedTokenMatcher raw_matcher_;         // added tokens with normalized = false
  AddedTokenMatcher normalized_matcher_;  // added tokens with normalized = true
  std::vector<AddedToken> added_;
  std::vector<std::string> id_bytes_;  // what each id decodes to {vocab_size}
  std::optional<int32_t> eos_id_;
};

}  // namespace mambascope
