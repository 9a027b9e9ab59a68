// (f) The layer lens (a "logit lens" for Mamba): the model's own final norm and head, applied to
// the residual stream after every layer, show which token each layer would predict at each
// position. The last layer's lens is the model's output.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu/cpu_ops.hpp"
#include "lab/lab_internal.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab {

LensResult layer_lens(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids, int top_k,
                      const Progress& progress) {
  const ModelConfig& cfg = ckpt.config();
  const int64_t L = int64_t(ids.size()), D = cfg.d_model, V = cfg.vocab_size, nl = cfg.n_layer;
  if (L == 0) throw Error("the text is empty: there is nothing to look through");
  top_k = int(std::clamp<int64_t>(top_k, 1, V));
  progress(0, "residual stream");
  std::vector<float> resid, logits;  // resid {n_layer, L, d_model}
  {
    ForwardOptions o;
    o.mode = ScanMode::Scan;
    o.residuals = &resid;
    auto st = backend.new_state();
    backend.forward(ids, *st, o, logits);
  }
  const std::vector<float> norm_f = detail::tensor_f32(ckpt, "backbone.norm_f.weight");    // {d_model}
  const std::vector<float> head = detail::tensor_f32(ckpt, "lm_head.weight");              // {vocab, d_model}
  if (int64_t(head.size()) != V * D) throw Error("lm_head.weight does not have vocab x d_model entries");

  LensResult r;
  r.n_layer = nl;
  r.L = L;
  r.top_k = top_k;
  r.ids.resize(size_t(nl * L * top_k));
  r.probs.resize(size_t(nl * L * top_k));
  const int64_t rows = nl * L, block = 64;
  std::vector<float> xn(size_t(block * D)), out(size_t(block * V));  // xn {block, d_model}; out {block, vocab}
  std::vector<int32_t> order(static_cast<size_t>(V));
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    progress.check();
    progress(double(r0) / double(rows), "layer " + std::to_string(r0 / L));
    const int64_t n = std::min(block, rows - r0);
    // logits = lm_head(norm_f(hidden_states))
    cpu::rms_norm(&resid[size_t(r0 * D)], norm_f.data(), float(cfg.norm_eps), n, D, xn.data());
    cpu::linear(xn.data(), head.data(), nullptr, n, D, V, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const float* row = &out[size_t(i * V)];
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [row](int32_t a, int32_t b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
      });
      double m = row[order[0]], s = 0;
      for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]) - m);
      for (int k = 0; k < top_k; ++k) {
        r.ids[size_t((r0 + i) * top_k + k)] = order[size_t(k)];
        r.probs[size_t((r0 + i) * top_k + k)] = float(std::exp(double(row[order[size_t(k)]]) - m) / s);
      }
    }
  }
  progress(1, "done");
  return r;
}

}  // namespace mambascope::lab
