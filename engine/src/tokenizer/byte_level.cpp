// Byte <-> character table and the GPT-2 split regex (see byte_level.hpp).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/byte_level.hpp"

#include <pcre2.h>

#include <memory>
#include <unordered_map>

#include "mambascope/error.hpp"

namespace mambascope::byte_level {

namespace {

std::string utf8_of(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {  // the table stays below U+0800; three bytes for completeness
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68 bytes
// (controls, space, DEL, NBSP, soft hyphen...) take U+0100, U+0101, ... in byte order.
std::array<std::string, 256> make_byte_chars() {
  std::array<std::string, 256> table;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[b] = utf8_of(printable ? static_cast<char32_t>(b) : next++);
  }
  return table;
}

const std::unordered_map<std::string, unsigned char>& char_to_byte() {
  static const std::unordered_map<std::string, unsigned char> map = [] {
    std::unordered_map<std::string, unsigned char> m;
    const auto& table = byte_chars();
    for (int b = 0; b < 256; ++b) m.emplace(table[b], static_cast<unsigned char>(b));
    return m;
  }();
  return map;
}

// Unicode White_Space, as a PCRE2 class body.
constexpr std::string_view kWs =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

std::string split_pattern() {
  const std::string ws(kWs);
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + ws + "\\p{L}\\p{N}]+|[" + ws +
         "]+(?![^" + ws + "])|[" + ws + "]+";
}

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

}  // namespace

const std::array<std::string, 256>& byte_chars() {
  static const std::array<std::string, 256> table = make_byte_chars();
  return table;
}

std::optional<std::string> chars_to_bytes(std::string_view token) {
  const auto& map = char_to_byte();
  std::string bytes;
  bytes.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    // Table characters are one or two bytes long; anything else is not in the table.
    const auto lead = static_cast<unsigned char>(token[pos]);
    const size_t len = lead < 0x80 ? 1 : (lead >= 0xC2 && lead <= 0xDF ? 2 : 0);
    if (len == 0 || pos + len > token.size()) return std::nullopt;
    const auto it = map.find(std::string(token.substr(pos, len)));
    if (it == map.end()) return std::nullopt;
    bytes += static_cast<char>(it->second);
    pos += len;
  }
  return bytes;
}

Splitter::Splitter() {
  const std::string pattern = split_pattern();
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(std::string("internal error: the GPT-2 split regex did not compile with this "
                            "PCRE2 (needs Unicode support): ") +
                reinterpret_cast<const char*>(msg));
  }
  // JIT is a speed-up only: where it is unavailable the interpreter gives the same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

Splitter::~Splitter() { pcre2_code_free(as_code(code_)); }

void Splitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  // Match data per call, so that one Splitter serves several threads.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(as_code(code_), nullptr), &pcre2_match_data_free);
  if (!md) throw Error("out of memory while tokenizing");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start < text.size()) {
    // NO_UTF_CHECK: the caller validated the text, and a check per call would make this O(n^2).
    const int rc = pcre2_match(as_code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(std::string("tokenizer split regex failed: ") +
                  reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    if (ov[0] > start) out.push_back(text.substr(start, ov[0] - start));  // unmatched gap
    size_t end = ov[1];
    if (end == ov[0]) {  // empty match (the pattern has none); step one character to progress
      end = ov[0] + 1;
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    }
    out.push_back(text.substr(ov[0], end - ov[0]));
    start = end;
  }
  if (start < text.size()) out.push_back(text.substr(start));
}

}  // namespace mambascope::byte_level
