// The BPE model of a byte-level tokenizer: vocabulary, merge ranks, and the merge loop that turns
// one pre-tokenized word (raw bytes) into token ids. The loop is `tokenizers`' own (a heap of
// candidate merges, lowest rank first, leftmost on ties), so ids match it exactly; words seen
// before come from a cache.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mambascope {

struct BpeModelSpec {
  std::unordered_map<std::string, int32_t> vocab;           // entries as written in the file
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool ignore_merges = false;  // a word that is a vocab entry is taken whole
};

class BpeModel {
 public:
  // Throws mambascope::Error if a merge names a token the vocabulary lacks.
  explicit BpeModel(BpeModelSpec spec);

  // Appends the ids of one word (raw bytes; mapped through the byte table here) to out.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct MergeTarget {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, MergeTarget> merges_;  // (left id, right id) -> merge
  int32_t byte_ids_[256];                             // the id of each single byte, or -1
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  // Word -> ids. Bounded: cleared when full (the words of real text repeat heavily).
  static constexpr size_t kCacheCapacity = 1 << 17;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace mambascope
