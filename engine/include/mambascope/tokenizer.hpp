// Text <-> token ids. Two implementations behind one interface: byte-level BPE read from a
// Hugging Face tokenizer.json (the GPT-NeoX-20B tokenizer of the Mamba family), and SentencePiece
// .model files (the bundled models) through libsentencepiece.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mambascope {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Looks in a model folder for tokenizer.json, then tokenizer.model; or opens that file.
  // Throws mambascope::Error if none is found or the file is malformed.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir_or_file);

  // Throws mambascope::Error on text that is not valid UTF-8. Special tokens written in the text
  // (e.g. "<|endoftext|>") become their ids when parse_special is true.
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const = 0;
  // Bytes of the decoded ids; may end inside a UTF-8 character (see Utf8StreamDecoder).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The raw bytes one token stands for (no prefix-space handling), for token strips.
  virtual std::string token_bytes(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;  // exact vocab entry
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::string kind() const = 0;  // "bpe" or "sentencepiece"
};

// Streaming decode: feed ids one at a time, get back only whole UTF-8 characters; a character
// split across tokens is held back until it is complete.
class Utf8StreamDecoder {
 public:
  explicit Utf8StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is held, invalid bytes replaced by U+FFFD

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;  // ids since the last emitted boundary
  size_t emitted_ = 0;        // bytes of decode(ids_) already returned
};

// True if s is valid UTF-8 (no overlongs, no surrogates).
bool is_valid_utf8(std::string_view s);

}  // namespace mambascope
