// UTF-8 helpers the tokenizers share: strict decoding of one character at a time (telling an
// invalid byte from a character cut short at the end of the buffer), lossy repair, NFC through
// utf8proc, and the few Unicode character classes the Hugging Face added-token rules use.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mambascope::utf8 {

// What the bytes at some offset start with.
struct Unit {
  enum class Kind { Char, Invalid, Truncated } kind;
  size_t length;    // Char: bytes of the character; Invalid: bytes of the maximal ill-formed
                    // subpart (Unicode's "U+FFFD substitution of maximal subparts"); Truncated:
                    // the bytes left, a valid start of a character that the buffer cuts short
  char32_t cp = 0;  // Char only
};

// Decodes s[pos] onwards (pos < s.size()). Rejects overlongs, surrogates and values > U+10FFFF.
Unit next_unit(std::string_view s, size_t pos);

// Offset of the first byte that is not part of a valid character, or nullopt if s is valid.
std::optional<size_t> first_invalid(std::string_view s);

// Throws mambascope::Error naming the first bad byte and its offset if text is not valid UTF-8.
void require_valid(std::string_view text);

// Appends s to out with every ill-formed subpart (and a truncated tail) replaced by U+FFFD.
void append_lossy(std::string& out, std::string_view s);

// Canonical composition (NFC). s must be valid UTF-8. ASCII comes back unchanged without a copy
// through utf8proc.
std::string nfc(std::string_view s);

// Unicode White_Space (what Rust's char::is_whitespace and Oniguruma's \s accept).
bool is_white_space(char32_t cp);
// Unicode \w as Rust's regex crate has it: letters, marks, decimal digits, letter numbers,
// connector punctuation and the joiners ZWNJ/ZWJ.
bool is_word_char(char32_t cp);

// The last / first character of s (s valid UTF-8 and not empty).
char32_t last_char(std::string_view s);
char32_t first_char(std::string_view s);

}  // namespace mambascope::utf8
