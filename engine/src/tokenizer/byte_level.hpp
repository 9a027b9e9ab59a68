// The GPT-2 "byte-level" machinery of Hugging Face's ByteLevel pre-tokenizer and decoder: the
// table that gives each of the 256 bytes a printable stand-in character (vocab entries are
// written in those characters, e.g. "Ġthe" for " the"), and the split regex that cuts text into
// the words BPE runs on.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mambascope::byte_level {

// The UTF-8 of the character that stands for byte b.
const std::array<std::string, 256>& byte_chars();

// A vocab entry back to the bytes it stands for; nullopt if it holds a character outside the
// table (the ByteLevel decoder then passes the entry through unchanged).
std::optional<std::string> chars_to_bytes(std::string_view token);

// The GPT-2 pre-tokenizer regex,
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// compiled once with PCRE2 (UTF + UCP, JIT where the platform has it). \s is spelled out as the
// Unicode White_Space set because that is what Oniguruma (used by `tokenizers`) means by it;
// PCRE2's own \s also takes U+180E.
class Splitter {
 public:
  Splitter();
  ~Splitter();
  Splitter(const Splitter&) = delete;
  Splitter& operator=(const Splitter&) = delete;

  // Appends the pieces of text to out, in order; together they cover text exactly. text must be
  // valid UTF-8 (not checked again here). Safe to call from several threads at once.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so that pcre2.h stays in the .cpp
};

}  // namespace mambascope::byte_level
