// mambascope-cli eval: perplexity of a text file (the whole text with the state carried, or
// windows of --window tokens moved by --stride, each scored from a fresh state), and accuracy on
// a task file of {"prompt_ids": [...], "target_ids": [...]} lines by greedy decoding.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"
#include "mambascope/session.hpp"
#include "scoring.hpp"

namespace mambascope::cli {

namespace {

// Teacher-forced NLL of ids. window 0: one pass. Otherwise windows [s, s + window) for
// s = 0, stride, 2·stride, ...; each token is scored once, by the first window that reaches it,
// with the context that window has (HF's strided perplexity).
TokenScores perplexity(Backend& b, const std::vector<int32_t>& ids, ScanMode mode, int64_t chunk,
                       int64_t window, int64_t stride) {
  TokenScores s;
  const int64_t L = int64_t(ids.size());
  s.logprob.assign(size_t(L), 0.0f);
  std::vector<float> lp;
  int64_t scored_until = 1;  // token 0 has no prediction
  for (int64_t start = 0; scored_until < L; start += stride) {
    const int64_t end = window > 0 ? std::min(L, start + window) : L;
    const int64_t first = scored_until;
    auto span = std::span<const int32_t>(ids).subspan(size_t(start), size_t(end - start));
    for_each_logits_row(b, span, mode, chunk, [&](int64_t r, std::span<const float> row) {
      const int64_t target = start + r + 1;
      if (target < first || target >= end) return;
      log_softmax(row, lp);
      const float v = lp[size_t(ids[size_t(target)])];
      s.logprob[size_t(target)] = v;
      s.nll_sum -= v;
      ++s.scored;
    });
    scored_until = end;
    if (window <= 0) break;
  }
  return s;
}

struct TaskResult {
  int64_t examples = 0, exact = 0, tokens = 0, correct = 0;
  nlohmann::json per_example = nlohmann::json::array();
};

TaskResult run_task(const std::shared_ptr<Model>& model, const std::shared_ptr<Backend>& backend,
                    const std::string& path, ScanMode mode, int64_t limit) {
  const std::string text = read_file(path, "--task file");
  TaskResult res;
  Session session(model, backend);
  GenerateRequest req;
  req.sampling.temperature = 0;
  req.sampling.n_alternatives = 0;
  req.sampling.repetition_penalty = 1;
  req.stop_at_eos = false;
  req.prefill_mode = mode;
  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0;
  const int64_t vocab = model->config().vocab_size;
  while (std::getline(in, line) && (limit <= 0 || res.examples < limit)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(line_no);
    std::vector<int32_t> prompt, target;
    try {
      const auto j = nlohmann::json::parse(line);
      prompt = j.at("prompt_ids").get<std::vector<int32_t>>();
      target = j.at("target_ids").get<std::vector<int32_t>>();
    } catch (const std::exception&) {
      throw Error(where + ": expected {\"prompt_ids\": [ids...], \"target_ids\": [ids...]}");
    }
    if (prompt.empty() || target.empty())
      throw Error(where + ": prompt_ids and target_ids must not be empty");
    check_ids_in_vocab(prompt, vocab, where + ": prompt_ids");
    check_ids_in_vocab(target, vocab, where + ": target_ids");

    session.reset();
    req.prompt_ids = prompt;
    req.max_new_tokens = int(target.size());
    GenerateResult r = session.generate(req, {});
    if (r.reason == StopReason::Error) throw Error(where + ": " + r.error);
    const auto& toks = session.tokens();
    std::vector<int32_t> got(toks.end() - r.new_tokens, toks.end());
    int64_t correct = 0;
    for (size_t i = 0; i < target.size() && i < got.size(); ++i) correct += got[i] == target[i];
    const bool exact = got == target;
    res.examples += 1;
    res.exact += exact;
    res.tokens += int64_t(target.size());
    res.correct += correct;
    res.per_example.push_back({{"line", line_no},
                               {"exact", exact},
                               {"correct_tokens", correct},
                               {"target_tokens", target.size()},
                               {"output_ids", got}});
  }
  if (res.examples == 0) throw Error("the --task file '" + path + "' holds no examples");
  return res;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args a(
      "eval", "--model DIR (--text FILE | --task FILE.jsonl) [options]",
      "Evaluates a model. --text: perplexity of a UTF-8 text file, by default in one pass with "
      "the\n"
      "state carried over the whole text (an SSM needs no window); --window W scores windows of W\n"
      "tokens, each from a fresh state, moved by --stride S (default W: disjoint chunks). A "
      "window's\n"
      "first token is context only: tokens scored by no window (with S = W, one per window) are\n"
      "left out and the count of scored tokens says so; S <= W - 1 scores every token. --task:\n"
      "for each line {\"prompt_ids\": [...], \"target_ids\": [...]}, greedy-decodes as many tokens "
      "as\n"
      "the target has and reports exact-match and per-token accuracy.");
  add_model_options(a);
  a.option("--text", "FILE", "text file whose perplexity is measured ('-' = stdin)")
      .option("--task", "FILE", "JSON-lines task file")
      .option("--window", "W", "score in windows of W tokens (0 = whole text)", "0")
      .option("--stride", "S", "move windows by S tokens", "W")
      .option("--max-tokens", "N", "use only the first N tokens of the text (0 = all)", "0")
      .option("--limit", "N", "use only the first N task examples (0 = all)", "0")
      .option("--chunk", "N", "tokens per forward call", "256")
      .option("--mode", "MODE", "SSM mode for scoring and prompts", "scan")
      .flag("--json", "print one JSON object");
  a.epilog(
      "examples:\n"
      "  mambascope-cli eval --model models/mamba-130m-hf --text ../shared/corpus/heidi.txt "
      "--max-tokens 4096\n"
      "  mambascope-cli eval --model DIR --text book.txt --window 1024 --stride 512 --json\n"
      "  mambascope-cli eval --model DIR --task tasks/copy.jsonl");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  if (!a.has("--text") && !a.has("--task"))
    throw UsageError(
        "eval: give --text FILE and/or --task FILE (see 'mambascope-cli eval --help')");
  const int64_t window = a.integer("--window", 0, 0, INT64_MAX / 4);
  const int64_t stride = a.integer("--stride", window, 1, INT64_MAX / 4);
  if (window > 0 && stride > window)
    throw UsageError("eval: --stride must not exceed --window (tokens would go unscored)");
  if (window == 1)
    throw UsageError("eval: --window must be at least 2 (a window of 1 predicts nothing)");
  const int64_t max_tokens = a.integer("--max-tokens", 0, 0, INT64_MAX);
  const int64_t limit = a.integer("--limit", 0, 0, INT64_MAX);
  const int64_t chunk = a.integer("--chunk", 256, 1, 1 << 24);
  const ScanMode mode = mode_from(a, "--mode", ScanMode::Scan);

  Loaded m = load_model(a);
  nlohmann::json out;
  if (a.has("--text")) {
    const std::string path = a.str("--text");
    const std::string text = read_file(path, "--text file");
    require_utf8(text, "the --text file '" + path + "'");
    std::vector<int32_t> ids = m.model->tokenizer().encode(text);
    if (max_tokens > 0 && int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
    check_ids_in_vocab(ids, m.model->config().vocab_size, "the tokenized text");
    if (ids.size() < 2)
      throw Error("the --text file '" + path + "' has fewer than 2 tokens: nothing to predict");
    check_logits_budget(std::min<int64_t>(chunk, int64_t(ids.size())), m.model->config().vocab_size,
                        4.0 * double(1 << 30), "use a smaller --chunk");
    const TokenScores s = perplexity(*m.backend, ids, mode, chunk, window, window > 0 ? stride : 0);
    out["text"] = {{"file", path},
                   {"tokens", ids.size()},
                   {"scored_tokens", s.scored},
                   {"mean_nll", s.mean_nll()},
                   {"perplexity", s.perplexity()},
                   {"window", window},
                   {"stride", window > 0 ? stride : 0}};
  }
  if (a.has("--task")) {
    const TaskResult t = run_task(m.model, m.backend, a.str("--task"), mode, limit);
    out["task"] = {{"file", a.str("--task")},
                   {"examples", t.examples},
                   {"exact_match", double(t.exact) / double(t.examples)},
                   {"token_accuracy", double(t.correct) / double(t.tokens)},
                   {"target_tokens", t.tokens},
                   {"results", t.per_example}};
  }

  if (a.has("--json")) {
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  if (out.contains("text")) {
    const auto& t = out["text"];
    std::printf(
        "perplexity %.4f (mean NLL %.4f nats) over %lld scored tokens of %s%s\n",
        t["perplexity"].get<double>(), t["mean_nll"].get<double>(),
        static_cast<long long>(t["scored_tokens"].get<int64_t>()),
        t["file"].get<std::string>().c_str(),
        window > 0
            ? (", windows of " + std::to_string(window) + " by " + std::to_string(stride)).c_str()
            : "");
  }
  if (out.contains("task")) {
    const auto& t = out["task"];
    std::printf(
        "task %s: %lld examples, exact match %.4f, per-token accuracy %.4f (%lld target tokens)\n",
        t["file"].get<std::string>().c_str(), static_cast<long long>(t["examples"].get<int64_t>()),
        t["exact_match"].get<double>(), t["token_accuracy"].get<double>(),
        static_cast<long long>(t["target_tokens"].get<int64_t>()));
  }
  return 0;
}

}  // namespace mambascope::cli
