// for_each_logits_row and TokenScores (scoring.hpp).
#include "scoring.hpp"

#include <algorithm>
#include <cmath>

namespace mambascope::cli {

void for_each_logits_row(Backend& backend, std::span<const int32_t> ids, ScanMode mode,
                         int64_t chunk, const LogitsRow& on_row) {
  auto state = backend.new_state();
  ForwardOptions opts;
  opts.mode = mode;
  opts.all_logits = true;
  std::vector<float> logits;  // {n, vocab}
  const int64_t L = int64_t(ids.size());
  for (int64_t start = 0; start < L; start += chunk) {
    const int64_t n = std::min(chunk, L - start);
    backend.forward(ids.subspan(size_t(start), size_t(n)), *state, opts, logits);
    const size_t vocab = logits.size() / size_t(n);
    for (int64_t r = 0; r < n; ++r)
      on_row(start + r, std::span<const float>(logits).subspan(size_t(r) * vocab, vocab));
  }
}

double TokenScores::perplexity() const { return std::exp(mean_nll()); }

}  // namespace mambascope::cli
