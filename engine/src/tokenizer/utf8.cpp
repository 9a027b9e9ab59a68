// UTF-8 decoding, repair and NFC for the tokenizers (see utf8.hpp), and the public
// is_valid_utf8.
#include "tokenizer/utf8.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "mambascope/error.hpp"
#include "mambascope/tokenizer.hpp"

namespace mambascope::utf8 {

namespace {

// The range the second byte of a sequence must fall in, by lead byte (Unicode Table 3-7). The
// narrow ranges after E0, ED, F0 and F4 are what exclude overlongs, surrogates and > U+10FFFF.
struct LeadInfo {
  int length;  // 0: not a lead byte
  unsigned char lo, hi;
};

LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

}  // namespace

Unit next_unit(std::string_view s, size_t pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  const LeadInfo info = lead_info(b0);
  if (info.length == 1) return {Unit::Kind::Char, 1, b0};
  if (info.length == 0) return {Unit::Kind::Invalid, 1};
  char32_t cp = b0 & (0x7F >> info.length);
  for (int i = 1; i < info.length; ++i) {
    if (pos + i >= s.size()) return {Unit::Kind::Truncated, s.size() - pos};
    const auto b = static_cast<unsigned char>(s[pos + i]);
    const unsigned char lo = i == 1 ? info.lo : 0x80;
    const unsigned char hi = i == 1 ? info.hi : 0xBF;
    if (b < lo || b > hi) return {Unit::Kind::Invalid, static_cast<size_t>(i)};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Unit::Kind::Char, static_cast<size_t>(info.length), cp};
}

std::optional<size_t> first_invalid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {  // ASCII fast path
      ++pos;
      continue;
    }
    const Unit u = next_unit(s, pos);
    if (u.kind != Unit::Kind::Char) return pos;
    pos += u.length;
  }
  return std::nullopt;
}

void require_valid(std::string_view text) {
  const auto bad = first_invalid(text);
  if (!bad) return;
  static constexpr char kHex[] = "0123456789ABCDEF";
  const auto byte = static_cast<unsigned char>(text[*bad]);
  throw Error(std::string("cannot tokenize: the text is not valid UTF-8 (byte 0x") +
              kHex[byte >> 4] + kHex[byte & 15] + " at offset " + std::to_string(*bad) +
              "); convert it to UTF-8 first");
}

void append_lossy(std::string& out, std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  size_t pos = 0;
  while (pos < s.size()) {
    const Unit u = next_unit(s, pos);
    if (u.kind == Unit::Kind::Char)
      out.append(s.substr(pos, u.length));
    else
      out.append(kReplacement);
    pos += u.length;
  }
}

std::string nfc(std::string_view s) {
  bool ascii = true;
  for (char c : s) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(s);
  utf8proc_uint8_t* mapped = nullptr;
  // An explicit length (no UTF8PROC_NULLTERM) so that NUL characters survive.
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
      &mapped, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(mapped, &std::free);
  if (n < 0) throw Error(std::string("Unicode normalization (NFC) failed: ") + utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
}

bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_word_char(char32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return true;
  constexpr uint32_t kWordCategories =
      (1u << UTF8PROC_CATEGORY_LU) | (1u << UTF8PROC_CATEGORY_LL) | (1u << UTF8PROC_CATEGORY_LT) |
      (1u << UTF8PROC_CATEGORY_LM) | (1u << UTF8PROC_CATEGORY_LO) | (1u << UTF8PROC_CATEGORY_MN) |
      (1u << UTF8PROC_CATEGORY_MC) | (1u << UTF8PROC_CATEGORY_ME) | (1u << UTF8PROC_CATEGORY_ND) |
      (1u << UTF8PROC_CATEGORY_NL) | (1u << UTF8PROC_CATEGORY_PC);
  return (kWordCategories >> utf8proc_category(static_cast<utf8proc_int32_t>(cp))) & 1u;
}

char32_t last_char(std::string_view s) {
  size_t pos = s.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) --pos;
  return next_unit(s, pos).cp;
}

char32_t first_char(std::string_view s) { return next_unit(s, 0).cp; }

}  // namespace mambascope::utf8

namespace mambascope {

bool is_valid_utf8(std::string_view s) { return !utf8::first_invalid(s).has_value(); }

}  // namespace mambascope
