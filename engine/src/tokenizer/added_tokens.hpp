// Hugging Face "added tokens" (special tokens such as <|endoftext|>, and extra vocabulary such as
// GPT-NeoX's whitespace runs): whole strings cut out of the text before the pre-tokenizer ever
// sees it. The matching follows `tokenizers`' AddedVocabulary: leftmost-longest, non-overlapping,
// then the single_word / lstrip / rstrip rules, special tokens skipped when not parsed.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mambascope {

struct AddedToken {
  int32_t id = 0;
  std::string content;       // as matched: already normalized for normalized tokens
  bool special = false;      // a control token such as <|endoftext|>
  bool single_word = false;  // only where no word character touches it on either side
  bool lstrip = false;       // also takes the white space before it
  bool rstrip = false;       // also takes the white space after it
  bool normalized = true;    // matched in the normalized text, else in the raw text
};

class AddedTokenMatcher {
 public:
  struct Segment {
    size_t begin = 0, end = 0;  // byte range in the text split
    int32_t id = -1;            // the added token's id, or -1 for plain text between tokens
  };

  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  bool empty() const { return tokens_.empty(); }
  // Cuts text into plain-text and added-token segments covering it in order. With
  // parse_special false, special tokens are left in the plain text.
  void split(std::string_view text, bool parse_special, std::vector<Segment>& out) const;

 private:
  std::vector<AddedToken> tokens_;
  // Indexes into tokens_ by the first byte of the content, longest content first.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace mambascope
