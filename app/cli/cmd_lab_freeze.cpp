// mambascope-cli freeze: what selectivity buys. Scores a text (perplexity, next-token accuracy)
// and continues its prompt greedily with the model as it is and with Δ, B, C frozen (an LTI,
// S4-like model), and optionally with another model (e.g. the LTI demo beside the selective one).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cmd_lab.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cli {

int cmd_freeze(int argc, char** argv) {
  Args a("freeze", "--model DIR (--text TEXT | --text-file FILE | --ids IDS) [options]",
         "Scores the text teacher-forced and continues its prompt greedily with: the model as it is\n"
         "(selective), the model with Δ, B, C frozen (--freeze mean: their mean over the prompt, or\n"
         "token:K), and --compare-model DIR if given (run as it is). The prompt is the text up to and\n"
         "including the last --answer-after marker (then only the answer is scored and compared), or\n"
         "its first --prompt-tokens tokens, else the whole text.");
  add_model_options(a);
  add_input_options(a, "--text", "--text-file", true, "text");
  a.option("--answer-after", "TEXT", "the answer starts after the last occurrence of this marker")
      .option("--prompt-tokens", "N", "the prompt is the first N tokens")
      .option("--freeze", "F", "mean or token:K", "mean")
      .option("--compare-model", "DIR", "another model folder to score the same tokens")
      .option("--continue", "N", "greedy tokens after the prompt", "the answer's length, or 16")
      .flag("--json", "print one JSON object");
  a.epilog("example (selective copying demo: the LTI model fails where the selective one succeeds):\n"
           "  mambascope-cli freeze --model models/demos/selective_copying-selective \\\n"
           "      --compare-model models/demos/selective_copying-lti --text-file example.txt --answer-after '|'");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  a.exclusive({"--answer-after", "--prompt-tokens"}, false);
  Freeze::Kind kind;
  int64_t token;
  parse_freeze("freeze", a.str("--freeze", "mean"), kind, token);
  Loaded m = load_model(a);
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--text", "--text-file");
  if (ids.size() < 2) throw Error("the text needs at least two tokens to be scored");
  const int64_t L = int64_t(ids.size());

  lab::SelectivityOptions o;
  if (a.has("--answer-after")) {
    const std::string marker = unescape(a.str("--answer-after"));
    const std::vector<int32_t> mids = m.model->tokenizer().encode(marker, false);
    if (mids.empty()) throw UsageError("freeze: --answer-after is empty");
    int64_t at = -1;
    for (int64_t i = L - int64_t(mids.size()); i >= 0 && at < 0; --i)
      if (std::equal(mids.begin(), mids.end(), ids.begin() + i)) at = i;
    if (at < 0) throw Error("the marker '" + marker + "' does not occur in the text's tokens");
    o.prompt_len = at + int64_t(mids.size());
    if (o.prompt_len >= L) throw Error("nothing follows the last '" + marker + "': there is no answer to score");
    o.score_from = o.prompt_len;
  } else if (a.has("--prompt-tokens")) {
    o.prompt_len = a.integer("--prompt-tokens", 0, 1, L - 1);
    o.score_from = o.prompt_len;
  } else {
    o.prompt_len = L;
    o.score_from = 1;
  }
  const int64_t answer = L - o.prompt_len;
  o.n_continue = int(a.integer("--continue", answer > 0 ? answer : 16, 0, 100000));
  if (kind == Freeze::Kind::AtToken && token >= o.prompt_len)
    throw UsageError("freeze: --freeze token:" + std::to_string(token) + " is past the prompt's " +
                     std::to_string(o.prompt_len) + " tokens");

  // Both backends freeze Δ, B, C: the frozen variant runs where the selective one does.
  std::vector<lab::Variant> variants = {{"selective", m.backend.get(), Freeze::Kind::None, 0},
                                        {"frozen", m.backend.get(), kind, token}};
  std::shared_ptr<Model> other;
  std::unique_ptr<Backend> other_backend;
  if (a.has("--compare-model")) {
    other = Model::load(a.str("--compare-model"));
    if (other->config().vocab_size < m.model->config().vocab_size)
      throw Error("--compare-model has a smaller vocabulary than --model: they cannot score the same tokens");
    BackendChoice choice;
    choice.name = m.backend->name();
    other_backend = make_backend(other->checkpoint(), choice);
    variants.push_back({other->display_name(), other_backend.get(), Freeze::Kind::None, 0, other->config().lti});
  }
  if (m.model->config().lti) {  // always frozen: nothing to compare within the model
    variants.erase(variants.begin() + 1);
    variants[0].name = "as it is";
    variants[0].lti_model = true;
  }
  const auto results = lab::compare_selectivity(variants, ids, o, stderr_progress());
  end_progress();

  if (a.has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : results)
      out.push_back({{"name", r.name}, {"freeze", r.freeze_text}, {"perplexity", r.perplexity}, {"nll", r.nll},
                     {"accuracy", r.accuracy}, {"scored", r.scored}, {"logprob", r.logprob},
                     {"predicted", r.predicted}, {"continuation", r.continuation},
                     {"continuation_text", printable_text(*m.model, r.continuation)},
                     {"continuation_matches", r.continuation_matches}});
    std::cout << nlohmann::json{{"tokens", ids}, {"prompt_tokens", o.prompt_len}, {"score_from", o.score_from},
                                {"variants", out}}
                     .dump(1)
              << "\n";
    return 0;
  }
  std::printf("%lld tokens; prompt: %lld; scored from token %lld\n\n", (long long)L, (long long)o.prompt_len,
              (long long)o.score_from);
  std::printf("%-34s %12s %10s %8s  %s\n", "variant", "perplexity", "accuracy", "matches", "how Δ, B, C are set");
  for (const auto& r : results)
    std::printf("%-34s %12.4g %9.1f%% %4lld/%-3lld  %s\n", r.name.c_str(), r.perplexity, 100 * r.accuracy,
                (long long)r.continuation_matches, (long long)std::min<int64_t>(answer, int64_t(r.continuation.size())),
                r.freeze_text.c_str());
  if (answer > 0)
    std::printf("\n%-34s %s\n", "expected", printable_text(*m.model, std::vector<int32_t>(ids.begin() + o.prompt_len, ids.end())).c_str());
  for (const auto& r : results) std::printf("%-34s %s\n", r.name.c_str(), printable_text(*m.model, r.continuation).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace mambascope::cli
