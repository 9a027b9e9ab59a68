// BPE merges by rank (see bpe_model.hpp).
#include "tokenizer/bpe_model.hpp"

#include <queue>

#include "mambascope/error.hpp"
#include "tokenizer/byte_level.hpp"

namespace mambascope {

BpeModel::BpeModel(BpeModelSpec spec)
    : vocab_(std::move(spec.vocab)), fuse_unk_(spec.fuse_unk), ignore_merges_(spec.ignore_merges) {
  const auto id_of = [&](const std::string& token, const char* what) {
    const auto it = vocab_.find(token);
    if (it == vocab_.end())
      throw Error("tokenizer.json is inconsistent: " + std::string(what) + " '" + token +
                  "' is not in the vocabulary");
    return it->second;
  };
  merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const int32_t a = id_of(left, "merge part");
    const int32_t b = id_of(right, "merge part");
    const int32_t merged = id_of(left + right, "merge result");
    // A repeated pair keeps its last rank, as `tokenizers` (a map filled in file order) does.
    merges_.insert_or_assign(pair_key(a, b), MergeTarget{static_cast<uint32_t>(rank), merged});
  }
  const auto& chars = byte_level::byte_chars();
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(chars[b]);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (spec.unk_token) unk_id_ = id_of(*spec.unk_token, "unk_token");
  cache_.reserve(kCacheCapacity);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    const auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (ignore_merges_) {
    std::string mapped;
    for (char c : word) mapped += byte_level::byte_chars()[static_cast<unsigned char>(c)];
    const auto it = vocab_.find(mapped);
    if (it != vocab_.end()) ids.push_back(it->second);
  }
  if (ids.empty()) merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  // The word as a doubly linked list of symbols; a merge folds the right symbol into the left.
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours' indexes, -1 at the ends
    bool alive;
  };
  std::vector<Symbol> symbols;  // symbols {n_bytes at most}
  symbols.reserve(word.size());
  const auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, true});
  };
  // Initial symbols: one per byte; bytes missing from the vocabulary become unk (runs fused if
  // fuse_unk) or, without an unk token, are dropped, as `tokenizers` does.
  bool pending_unk = false;
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(id);
    } else if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(*unk_id_);

  struct Candidate {
    uint32_t rank;
    int32_t pos;  // index of the left symbol
    int32_t new_id;
  };
  // Lowest rank first, then leftmost.
  const auto later = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  const auto push_pair = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Skip stale entries: the pair at this position has changed since it was queued.
    const auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const Symbol& s : symbols)
    if (s.alive) ids.push_back(s.id);
}

}  // namespace mambascope
