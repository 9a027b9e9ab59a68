// (d) What selectivity buys: the same text scored (teacher-forced) and continued (greedy) by
// several variants: the selective model, the same model with Δ, B, C frozen, or another model
// (the LTI demo beside the selective one). Frozen values are taken from the prompt (their mean,
// or one token's) and reused for the whole text and the continuation, so that every variant sees
// the same tokens and none peeks at the part it is scored on.
#include <cmath>
#include <memory>

#include "lab/lab_internal.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab {
namespace {

std::string freeze_text(const Variant& v, int64_t prompt_len) {
  if (v.lti_model) return "LTI model: Δ, B, C are parameters, the same at every token";
  switch (v.freeze) {
    case Freeze::Kind::None: return "selective (Δ, B, C from each token)";
    case Freeze::Kind::MeanOverInput:
      return "frozen: Δ, B, C averaged over the " + std::to_string(prompt_len) + " prompt tokens";
    case Freeze::Kind::AtToken: return "frozen: Δ, B, C of token " + std::to_string(v.freeze_token);
    case Freeze::Kind::Given: return "frozen: given values";
  }
  return "";
}

}  // namespace

std::vector<VariantResult> compare_selectivity(std::span<const Variant> variants, std::span<const int32_t> ids,
                                               const SelectivityOptions& opts, const Progress& progress) {
  const int64_t L = int64_t(ids.size());
  if (L < 2) throw Error("the text needs at least two tokens to be scored");
  const int64_t prompt_len = opts.prompt_len > 0 ? std::min(opts.prompt_len, L) : L;
  const int64_t score_from = std::clamp<int64_t>(opts.score_from, 1, L);
  std::vector<VariantResult> out;
  for (size_t vi = 0; vi < variants.size(); ++vi) {
    const Variant& v = variants[vi];
    if (!v.backend) throw Error("variant '" + v.name + "' has no backend");
    progress.check();
    progress(double(vi) / double(variants.size()), v.name);
    Backend& b = *v.backend;
    VariantResult r;
    r.name = v.name;
    r.freeze_text = freeze_text(v, prompt_len);

    ForwardOptions base;
    base.mode = ScanMode::Scan;
    if (v.freeze == Freeze::Kind::MeanOverInput || v.freeze == Freeze::Kind::AtToken) {
      if (v.freeze == Freeze::Kind::AtToken && (v.freeze_token < 0 || v.freeze_token >= prompt_len))
        throw Error("freeze token " + std::to_string(v.freeze_token) + " is outside the prompt's " +
                    std::to_string(prompt_len) + " tokens");
      // Freeze on the prompt; every later run reuses these values.
      auto frozen = std::make_shared<FrozenSsm>();
      ForwardOptions f;
      f.mode = ScanMode::Scan;
      f.freeze.kind = v.freeze;
      f.freeze.token = v.freeze_token;
      f.frozen_out = frozen.get();
      auto st = b.new_state();
      std::vector<float> ignored;
      b.forward(ids.first(size_t(prompt_len)), *st, f, ignored);
      base.freeze.kind = Freeze::Kind::Given;
      base.freeze.values = frozen;
    }

    // Teacher-forced scores: logits row t predicts ids[t + 1].
    ForwardOptions score = base;
    score.all_logits = true;
    std::vector<float> logits;
    {
      auto st = b.new_state();
      b.forward(ids, *st, score, logits);
    }
    const int64_t V = int64_t(logits.size()) / L;
    r.logprob.assign(size_t(L), 0.0f);
    r.predicted.assign(size_t(L), -1);
    std::vector<double> lp;
    double nll = 0;
    int64_t correct = 0;
    for (int64_t t = 1; t < L; ++t) {
      const float* row = &logits[size_t((t - 1) * V)];
      detail::log_softmax_row(row, V, lp);
      r.logprob[size_t(t)] = float(lp[size_t(ids[size_t(t)])]);
      r.predicted[size_t(t)] = detail::argmax(row, V);
      if (t >= score_from) {
        nll -= lp[size_t(ids[size_t(t)])];
        correct += r.predicted[size_t(t)] == ids[size_t(t)];
        ++r.scored;
      }
    }
    if (r.scored > 0) {
      r.nll = nll / double(r.scored);
      r.perplexity = std::exp(r.nll);
      r.accuracy = double(correct) / double(r.scored);
    }

    // Greedy continuation after the prompt.
    if (opts.n_continue > 0) {
      auto st = b.new_state();
      std::vector<float> last;
      b.forward(ids.first(size_t(prompt_len)), *st, base, last);
      r.continuation = greedy_continue(b, *st, last, base, opts.n_continue, progress);
      for (size_t i = 0; i < r.continuation.size() && prompt_len + int64_t(i) < L; ++i) {
        if (r.continuation[i] != ids[size_t(prompt_len) + i]) break;
        ++r.continuation_matches;
      }
    }
    out.push_back(std::move(r));
  }
  progress(1, "done");
  return out;
}

}  // namespace mambascope::lab
