// Added-token matching (see added_tokens.hpp). A per-first-byte candidate list stands in for
// the Aho-Corasick automaton of `tokenizers`: vocabularies hold a few dozen added tokens, so
// trying the candidates for one byte, longest first, is as fast and far smaller.
#include "tokenizer/added_tokens.hpp"

#include <algorithm>

#include "tokenizer/utf8.hpp"

namespace mambascope {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;  // an empty token can never be cut out
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special,
                              std::vector<Segment>& out) const {
  size_t seg_start = 0;  // where the plain text not yet emitted begins
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const AddedToken* found = nullptr;
    for (uint32_t idx : candidates) {
      if (text.substr(pos).starts_with(tokens_[idx].content)) {
        found = &tokens_[idx];
        break;
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + found->content.size();
    // A match that is then rejected still consumes its bytes, as the automaton's
    // non-overlapping iterator does in `tokenizers`.
    pos = stop;
    if (found->special && !parse_special) continue;
    if (found->single_word) {
      const bool free_before =
          start == 0 || !utf8::is_word_char(utf8::last_char(text.substr(0, start)));
      const bool free_after =
          stop == text.size() || !utf8::is_word_char(utf8::first_char(text.substr(stop)));
      if (!free_before || !free_after) continue;
    }
    if (found->lstrip) {
      size_t s = start;
      while (s > seg_start) {
        size_t prev = s - 1;
        while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        if (!utf8::is_white_space(utf8::next_unit(text, prev).cp)) break;
        s = prev;
      }
      start = s;
    }
    if (found->rstrip) {
      while (stop < text.size()) {
        const utf8::Unit u = utf8::next_unit(text, stop);
        if (!utf8::is_white_space(u.cp)) break;
        stop += u.length;
      }
      // `tokenizers` would go on matching inside the stripped spaces and emit overlapping
      // pieces; we resume after them instead.
      pos = stop;
    }
    if (start > seg_start) out.push_back({seg_start, start, -1});
    out.push_back({start, stop, found->id});
    seg_start = stop;
  }
  if (seg_start < text.size()) out.push_back({seg_start, text.size(), -1});
}

}  // namespace mambascope
