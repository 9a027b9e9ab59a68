// mambascope-cli intervene: overrides Δ at chosen tokens and layers (ignore: Δ = 0, the state
// passes the token unchanged; reset: a large Δ, the state forgets what came before) and shows,
// beside the original run, how the next-token predictions, each layer's SSM output, the hidden
// state and the greedy continuation change.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cmd_lab.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cli {
namespace {

constexpr float kResetDelta = 10.0f;  // exp(10·A) < 5e-5 for |A| >= 1: the state is wiped

// "all:5=ignore", "3:12=reset", "0:7=0.5"
DeltaOverride parse_override(const std::string& text, int64_t n_layer) {
  const auto colon = text.find(':'), eq = text.find('=');
  if (colon == std::string::npos || eq == std::string::npos || eq < colon)
    throw UsageError("intervene: --set wants LAYER:POSITION=VALUE (e.g. all:5=ignore, 3:12=reset, 0:7=0.5), got '" +
                     text + "'");
  DeltaOverride o;
  const std::string layer = text.substr(0, colon), pos = text.substr(colon + 1, eq - colon - 1),
                    value = text.substr(eq + 1);
  try {
    o.layer = layer == "all" ? -1 : std::stoi(layer);
    o.position = std::stoll(pos);
    o.value = value == "ignore" ? 0.0f : value == "reset" ? kResetDelta : std::stof(value);
  } catch (const std::exception&) {
    throw UsageError("intervene: --set '" + text + "': LAYER is a number or 'all', POSITION a token index, "
                     "VALUE 'ignore', 'reset' or a number");
  }
  if (o.layer < -1 || o.layer >= n_layer)
    throw UsageError("intervene: --set '" + text + "': layer " + layer + " does not exist (0.." +
                     std::to_string(n_layer - 1) + " or all)");
  if (o.position < 0) throw UsageError("intervene: --set '" + text + "': the position must be >= 0");
  return o;
}

}  // namespace

int cmd_intervene(int argc, char** argv) {
  Args a("intervene", "--model DIR (--prompt TEXT | --prompt-file FILE | --ids IDS) --set L:P=V [options]",
         "Runs the prompt as it is and with Δ overridden (--set, repeatable: LAYER:POSITION=VALUE with\n"
         "LAYER a number or 'all', VALUE 'ignore' (Δ = 0), 'reset' (Δ = 10) or a number), and prints\n"
         "per token: the original and new top prediction, the largest logit change, the KL divergence\n"
         "between the two next-token distributions and the relative change of h in --h-layer; then the\n"
         "change of the state after the prompt per layer and both greedy continuations.");
  add_model_options(a);
  add_input_options(a, "--prompt", "--prompt-file", true, "prompt");
  a.option("--set", "L:P=V", "a Δ override", "", true)
      .option("--continue", "N", "greedy tokens after the prompt", "16")
      .option("--h-layer", "N", "layer whose hidden state is compared token by token", "0")
      .flag("--json", "print one JSON object");
  a.epilog("example:\n  mambascope-cli intervene --model models/mamba-130m-hf --prompt \"The capital of France is\" \\\n"
           "      --set all:3=ignore");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  Loaded m = load_model(a);
  const ModelConfig& c = m.model->config();
  if (c.lti) throw Error("this is an LTI model: its Δ is a parameter, the same at every token, so there is no per-token Δ to override");
  lab::InterventionOptions o;
  for (const std::string& s : a.all("--set")) o.overrides.push_back(parse_override(s, c.n_layer));
  o.n_continue = int(a.integer("--continue", 16, 0, 100000));
  o.h_layer = layer_option(a, "--h-layer", c.n_layer, 0);
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--prompt", "--prompt-file");
  if (ids.empty()) throw Error("the prompt is empty: nothing to intervene on");
  for (const auto& ov : o.overrides)
    if (ov.position >= int64_t(ids.size()))
      warn("position " + std::to_string(ov.position) + " is past the prompt's " + std::to_string(ids.size()) +
           " tokens: that override changes nothing");
  check_logits_budget(2 * int64_t(ids.size()), c.vocab_size, 4.0 * (1ull << 30), "use a shorter prompt");

  const lab::InterventionResult r = lab::intervene(*m.backend, c, ids, o, stderr_progress());
  end_progress();
  const std::string orig = printable_text(*m.model, r.continuation_original);
  const std::string changed = printable_text(*m.model, r.continuation_intervened);
  if (a.has("--json")) {
    nlohmann::json j = {{"tokens", ids},
                        {"identical", r.identical},
                        {"logits_change", r.logits_change},
                        {"kl", r.kl},
                        {"top_original", r.top_original},
                        {"top_intervened", r.top_intervened},
                        {"h_layer", o.h_layer},
                        {"h_change", r.h_change},
                        {"state_change", r.state_change},
                        {"y_change", r.y_change},
                        {"continuation_original", r.continuation_original},
                        {"continuation_intervened", r.continuation_intervened},
                        {"continuation_original_text", orig},
                        {"continuation_intervened_text", changed}};
    std::cout << j.dump(1) << "\n";
    return 0;
  }
  std::printf("%-5s %-16s %-16s %-16s %10s %10s %12s\n", "t", "token", "next (orig)", "next (new)", "max|dlogit|",
              "KL", "h change");
  for (int64_t t = 0; t < r.L; ++t) {
    bool hit = false;
    for (const auto& ov : o.overrides) hit |= ov.position == t;
    std::printf("%-5lld %-16s %-16s %-16s %10.3g %10.3g %12.3g%s\n", (long long)t,
                quoted_piece(*m.model, ids[size_t(t)]).c_str(), quoted_piece(*m.model, r.top_original[size_t(t)]).c_str(),
                quoted_piece(*m.model, r.top_intervened[size_t(t)]).c_str(), r.logits_change[size_t(t)], r.kl[size_t(t)],
                r.h_change[size_t(t)], hit ? "   <- Δ overridden" : "");
  }
  std::printf("\nstate after the prompt, relative change per layer:");
  for (float s : r.state_change) std::printf(" %.3g", s);
  std::printf("\n%s\n", r.identical ? "the logits are identical to the original, bit for bit" : "");
  if (o.n_continue > 0) std::printf("continuation (original):     %s\ncontinuation (intervention): %s\n", orig.c_str(),
                                    changed.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace mambascope::cli
