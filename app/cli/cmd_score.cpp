// mambascope-cli score: how probable the model finds a given text (teacher forcing): the
// log-probability of every token given those before it, the perplexity, and on request the
// full logits of every position as a float32 .npy {L, vocab}.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"
#include "mambascope/npy.hpp"
#include "scoring.hpp"

namespace mambascope::cli {

int cmd_score(int argc, char** argv) {
  Args a(
      "score", "--model DIR (--text TEXT | --file FILE | --ids IDS) [--logits OUT.npy] [--json]",
      "Scores a text: log p(token | the tokens before it) for every token after the first, their\n"
      "mean negative log-likelihood and the perplexity exp(mean NLL). --logits writes the logits "
      "of\n"
      "every position, row t predicting token t+1, as a float32 .npy of shape {L, vocab}.");
  add_model_options(a);
  add_input_options(a, "--text", "--file", true, "text");
  a.option("--logits", "OUT.npy", "write the full logits {L, vocab} (float32) to this file")
      .option("--mode", "MODE", "SSM mode: recurrent, scan, convolution or lti-fft", "scan")
      .option("--chunk", "N", "tokens per forward call (the state carries over)", "256")
      .flag("--json", "print one JSON object instead of a table");
  add_logits_limit_option(a);
  a.epilog(
      "examples:\n"
      "  mambascope-cli score --model models/mamba-130m-hf --text \"The quick brown fox\"\n"
      "  mambascope-cli score --model DIR --ids 510,77,3 --logits logits.npy --json");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  const ScanMode mode = mode_from(a, "--mode", ScanMode::Scan);
  const int64_t chunk = a.integer("--chunk", 256, 1, 1 << 24);
  const double limit = logits_limit_bytes(a);

  Loaded m = load_model(a);
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--text", "--file");
  const int64_t L = int64_t(ids.size()), V = m.model->config().vocab_size;
  if (L < 2)
    throw Error("score needs at least 2 tokens (the first has no prediction); the input has " +
                std::to_string(L));
  const bool want_logits = a.has("--logits");
  check_logits_budget(std::min(chunk, L), V, limit, "use a smaller --chunk");
  if (want_logits)
    check_logits_budget(L, V, limit,
                        "score a shorter text, or raise --max-logits-gb if memory allows");

  TokenScores s;
  s.logprob.assign(size_t(L), 0.0f);
  std::vector<float> all;  // {L, vocab} when --logits
  if (want_logits) all.reserve(size_t(L * V));
  std::vector<float> lp;
  for_each_logits_row(*m.backend, ids, mode, chunk, [&](int64_t t, std::span<const float> row) {
    if (want_logits) all.insert(all.end(), row.begin(), row.end());
    if (t + 1 >= L) return;
    log_softmax(row, lp);
    s.logprob[size_t(t + 1)] = lp[size_t(ids[size_t(t + 1)])];
    s.nll_sum -= lp[size_t(ids[size_t(t + 1)])];
    ++s.scored;
  });
  if (want_logits) write_npy(a.str("--logits"), all, {L, V});

  const Tokenizer& tok = m.model->tokenizer();
  if (a.has("--json")) {
    nlohmann::json toks = nlohmann::json::array();
    for (int64_t t = 0; t < L; ++t) {
      nlohmann::json e = {{"position", t},
                          {"id", ids[size_t(t)]},
                          {"piece", printable(tok.token_bytes(ids[size_t(t)]))}};
      e["logprob"] = t == 0 ? nlohmann::json(nullptr) : nlohmann::json(s.logprob[size_t(t)]);
      toks.push_back(e);
    }
    nlohmann::json j = {
        {"tokens", toks},           {"scored_tokens", s.scored},    {"nll_sum", s.nll_sum},
        {"mean_nll", s.mean_nll()}, {"perplexity", s.perplexity()}, {"mode", mode_name(mode)}};
    if (want_logits) {
      j["logits_file"] = a.str("--logits");
      j["logits_shape"] = {L, V};
    }
    std::cout << j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << "position\tid\tlogprob\tpiece\n";
  for (int64_t t = 0; t < L; ++t) {
    char lpbuf[32];
    if (t == 0)
      std::snprintf(lpbuf, sizeof lpbuf, "-");
    else
      std::snprintf(lpbuf, sizeof lpbuf, "%.4f", s.logprob[size_t(t)]);
    std::cout << t << "\t" << ids[size_t(t)] << "\t" << lpbuf << "\t"
              << printable(tok.token_bytes(ids[size_t(t)])) << "\n";
  }
  char line[200];
  std::snprintf(line, sizeof line, "perplexity %.4f over %lld tokens (mean NLL %.4f nats)\n",
                s.perplexity(), static_cast<long long>(s.scored), s.mean_nll());
  std::cout << line;
  if (want_logits)
    std::cout << "logits {" << L << ", " << V << "} written to " << a.str("--logits") << "\n";
  return 0;
}

}  // namespace mambascope::cli
