// Teacher-forced scoring shared by `score` and `eval`: runs token ids through the model from a
// fresh state in calls of `chunk` tokens (the state carries across calls, so the numbers are
// those of one pass while the logits buffer stays {chunk, vocab}) and hands every row of logits
// to a callback.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "mambascope/backend.hpp"

namespace mambascope::cli {

// on_row(t, logits {vocab}): the prediction after tokens 0..t, i.e. for token t + 1.
using LogitsRow = std::function<void(int64_t t, std::span<const float> logits)>;
void for_each_logits_row(Backend& backend, std::span<const int32_t> ids, ScanMode mode,
                         int64_t chunk, const LogitsRow& on_row);

// Log-probabilities of the observed tokens 1..L-1: out[t] = log p(ids[t] | ids[<t]), out[0] = 0.
struct TokenScores {
  std::vector<float> logprob;  // {L}
  double nll_sum = 0;          // over tokens 1..L-1
  int64_t scored = 0;          // L - 1
  double mean_nll() const { return scored ? nll_sum / double(scored) : 0; }
  double perplexity() const;
};

}  // namespace mambascope::cli
