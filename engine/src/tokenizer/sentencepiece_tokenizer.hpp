// SentencePiece .model files (the bundled models' tokenizers) through libsentencepiece. Encoding
// is the library's; decoding is done here, piece by piece, so that byte-fallback pieces come out
// as raw bytes (a character split across tokens stays split, for Utf8StreamDecoder to join)
// instead of the library's U+FFFD for every incomplete character.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mambascope/tokenizer.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace mambascope {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Throws mambascope::Error if the file is missing or not a SentencePiece model.
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::filesystem::path& path);
  ~SentencePieceTokenizer() override;

  // parse_special has no effect: SentencePiece never reads control pieces (<s>, </s>) out of text.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string token_bytes(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  std::optional<int32_t> token_id(std::string_view token) const override;
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  enum class PieceKind : uint8_t { Normal, Byte, Control, Unknown };
  struct Piece {
    PieceKind kind;
    std::string text;           // Normal: the piece, U+2581 as ' '; Byte: the byte; Unknown: its
                                // surface (" \u2047 "); Control: empty
    bool space_prefix = false;  // Normal: the piece starts with U+2581
  };

  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<Piece> pieces_;  // {vocab_size}
  // The model's leading-space rules, read off the library's own encoding at load:
  bool add_dummy_prefix_ = true;          // encode prefixes a space; decode drops it again
  bool remove_extra_whitespaces_ = true;  // decode drops leading spaces until text appears
  std::optional<int32_t> eos_id_, bos_id_;
};

}  // namespace mambascope
