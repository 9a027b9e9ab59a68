// mambascope-cli kernel: the selective kernel K[t,s] of a layer (the "hidden attention" matrix:
// row t is the convolution kernel the model applied at token t) beside the LTI kernel obtained by
// freezing Δ, B, C, with the stationarity score and the check that each kernel reproduces the
// SSM outputs the backend computed. Writes the matrices as .npy or CSV.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cmd_lab.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "interrupt.hpp"
#include "mambascope/error.hpp"
#include "mambascope/npy.hpp"

namespace mambascope::cli {

int cmd_kernel(int argc, char** argv) {
  Args a("kernel", "--model DIR (--prompt TEXT | --prompt-file FILE | --ids IDS) [options]",
         "Builds the selective kernel K[t,s] = sum_n C_t[n] exp(sum_{k=s+1..t} Δ_k A[n]) Δ_s B_s[n] of a\n"
         "layer from the Δ, B, C recorded on the prompt (--view channel: one channel, signed; mean: the\n"
         "mean of |K| over channels; rollout: the product across layers 0..--layer, docs/lab.md), and\n"
         "the LTI kernel with Δ, B, C frozen (--freeze mean | token:K). Prints the stationarity score\n"
         "(0: every row is a shifted copy of one kernel), the tokens the last token draws on most, and\n"
         "how well each kernel reproduces the backend's SSM outputs.");
  add_model_options(a);
  add_input_options(a, "--prompt", "--prompt-file", true, "prompt");
  a.option("--layer", "N", "layer", "0")
      .option("--view", "V", "channel, mean or rollout", "mean")
      .option("--channel", "C", "channel of the channel view", "0")
      .option("--freeze", "F", "how the LTI kernel freezes Δ, B, C: mean or token:K", "mean")
      .option("--npy", "FILE", "write K {L, L} as .npy")
      .option("--lti-npy", "FILE", "write the LTI kernel's matrix {L, L} as .npy")
      .option("--csv", "FILE", "write K as CSV (L rows of L values)")
      .option("--top", "N", "how many of the last token's largest entries to list", "8")
      .flag("--no-verify", "skip the check against the backend's SSM outputs")
      .flag("--json", "print one JSON object");
  a.epilog("example:\n  mambascope-cli kernel --model models/demos/selective_copying-selective --prompt-file p.txt \\\n"
           "      --layer 1 --view mean --npy K.npy");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  const std::string view = a.str("--view", "mean");
  lab::KernelOptions o;
  if (view == "channel") o.view = lab::KernelView::Channel;
  else if (view == "mean") o.view = lab::KernelView::MeanOverChannels;
  else if (view == "rollout") o.view = lab::KernelView::Rollout;
  else throw UsageError("kernel: --view must be channel, mean or rollout, got '" + view + "'");
  parse_freeze("kernel", a.str("--freeze", "mean"), o.lti_freeze, o.lti_token);
  o.verify = !a.has("--no-verify");

  Loaded m = load_model(a);
  const ModelConfig& c = m.model->config();
  o.layer = layer_option(a, "--layer", c.n_layer, 0);
  o.channel = a.integer("--channel", 0, 0, c.d_inner - 1);
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--prompt", "--prompt-file");
  if (ids.empty()) throw Error("the prompt is empty: there is no kernel to show");
  if (o.lti_freeze == Freeze::Kind::AtToken && o.lti_token >= int64_t(ids.size()))
    throw UsageError("kernel: --freeze token:" + std::to_string(o.lti_token) + " is past the prompt's " +
                     std::to_string(ids.size()) + " tokens");

  InterruptGuard guard;
  const std::atomic<bool>* cancel = guard.begin_generation();
  lab::KernelResult r;
  try {
    r = lab::selective_kernel(m.model->checkpoint(), *m.backend, ids, o, stderr_progress(cancel));
  } catch (const lab::Cancelled&) {
    end_progress();
    throw Error("interrupted");
  }
  guard.end_generation();
  end_progress();

  const int64_t L = r.L;
  if (a.has("--npy")) write_npy(a.str("--npy"), r.K, {L, L});
  if (a.has("--lti-npy")) write_npy(a.str("--lti-npy"), r.K_lti, {L, L});
  if (a.has("--csv")) {
    std::ofstream f(a.str("--csv"));
    if (!f) throw Error("cannot write '" + a.str("--csv") + "'");
    f << lab::kernel_csv(r.K, L);
  }
  // The last token's strongest sources.
  const int64_t top = std::min<int64_t>(a.integer("--top", 8, 0, 1 << 20), L);
  std::vector<int64_t> order(static_cast<size_t>(L));
  std::iota(order.begin(), order.end(), 0);
  const float* last = &r.K[size_t((L - 1) * L)];
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [last](int64_t x, int64_t y) { return std::fabs(last[x]) > std::fabs(last[y]); });

  if (a.has("--json")) {
    nlohmann::json sources = nlohmann::json::array();
    for (int64_t i = 0; i < top; ++i)
      sources.push_back({{"s", order[size_t(i)]}, {"id", ids[size_t(order[size_t(i)])]}, {"K", last[order[size_t(i)]]}});
    nlohmann::json j = {{"tokens", L},
                        {"layer", r.layer},
                        {"view", lab::kernel_view_name(r.view)},
                        {"nonstationarity", r.nonstationarity},
                        {"nonstationarity_lti", r.nonstationarity_lti},
                        {"reconstruction_rel", r.reconstruction_rel},
                        {"lti_reconstruction_rel", r.lti_reconstruction_rel},
                        {"lti_source", r.lti_source},
                        {"lti_kernel", r.lti_kernel},
                        {"last_token_sources", sources}};
    if (r.view == lab::KernelView::Channel) j["channel"] = r.channel;
    std::cout << j.dump(1) << "\n";
    return 0;
  }
  std::printf("%lld tokens, layer %d, view %s", (long long)L, r.layer, lab::kernel_view_name(r.view));
  if (r.view == lab::KernelView::Channel) std::printf(" (channel %lld)", (long long)r.channel);
  std::printf("\nstationarity score (0 = one kernel for every token, 1 = none):\n"
              "  selective kernel  %.4f\n  LTI kernel        %.4f   (%s)\n",
              r.nonstationarity, r.nonstationarity_lti, r.lti_source.c_str());
  if (r.reconstruction_rel >= 0)
    std::printf("check: row t of K applied to u gives the backend's y_t within %.2g; the LTI kernel gives its\n"
                "       FFT convolution within %.2g (relative to max |y|)\n",
                r.reconstruction_rel, r.lti_reconstruction_rel);
  std::printf("LTI kernel%s, lags 0..%lld:", r.view == lab::KernelView::Channel ? "" : " (mean |k| over channels)",
              (long long)std::min<int64_t>(L, 8) - 1);
  for (int64_t j = 0; j < std::min<int64_t>(L, 8); ++j) std::printf(" %.4g", r.lti_kernel[size_t(j)]);
  std::printf("\nthe last token %s draws most on:\n", quoted_piece(*m.model, ids.back()).c_str());
  for (int64_t i = 0; i < top; ++i) {
    const int64_t s = order[size_t(i)];
    std::printf("  s=%-6lld %-20s K=%.4g   (LTI: %.4g)\n", (long long)s, quoted_piece(*m.model, ids[size_t(s)]).c_str(),
                last[s], r.K_lti[size_t((L - 1) * L + s)]);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace mambascope::cli
