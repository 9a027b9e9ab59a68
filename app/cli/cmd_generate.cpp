// mambascope-cli generate: one prompt in, generated text streamed to stdout token by token (or
// one JSON object per token with --jsonl), speed on stderr at the end. Ctrl-C stops early.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "interrupt.hpp"
#include "mambascope/error.hpp"
#include "mambascope/session.hpp"

namespace mambascope::cli {

namespace {

nlohmann::json alternatives_json(const std::vector<Alternative>& alts, const Tokenizer& tok) {
  auto out = nlohmann::json::array();
  for (const auto& a : alts)
    out.push_back({{"id", a.id}, {"prob", a.prob}, {"piece", printable(tok.token_bytes(a.id))}});
  return out;
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  Args a(
      "generate", "--model DIR [--prompt TEXT | --prompt-file FILE | --ids IDS] [options]",
      "Generates text after a prompt and streams it to stdout as it is produced. Without a prompt\n"
      "it starts from the beginning-of-text token. Tokens per second go to stderr at the end.");
  add_model_options(a);
  add_input_options(a, "--prompt", "--prompt-file", true, "prompt");
  a.option("--max-tokens", "N", "generate at most N tokens", "128");
  add_sampling_options(a);
  a.option("--mode", "MODE", "SSM mode for the prompt: recurrent, scan, convolution or lti-fft",
           "scan")
      .option("--decode-mode", "MODE", "SSM mode for each generated token", "recurrent")
      .option("--stop", "TEXT",
              "stop when TEXT is generated; TEXT is not printed (\\n, \\t understood)", "", true)
      .flag("--ignore-eos", "keep generating after the end-of-text token")
      .flag("--echo", "print the prompt before the generated text")
      .flag("--jsonl",
            "print one JSON object per generated token (id, text, alternatives) and a summary")
      .option("--alternatives", "N", "with --jsonl: the N most probable tokens at each step", "5");
  a.epilog(
      "examples:\n"
      "  mambascope-cli generate --model models/mamba-130m-hf --prompt \"The state space\" "
      "--max-tokens 64\n"
      "  mambascope-cli generate --model DIR --prompt-file p.txt --temperature 0 --stop '\\n\\n'\n"
      "  mambascope-cli generate --model DIR --prompt Hi --seed 7 --jsonl --alternatives 3");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);

  GenerateRequest req;
  req.max_new_tokens = int(a.integer("--max-tokens", 128, 0, 1 << 30));
  req.sampling = sampling_from(a);
  req.sampling.n_alternatives = a.has("--jsonl") ? int(a.integer("--alternatives", 5, 0, 1000)) : 0;
  req.prefill_mode = mode_from(a, "--mode", ScanMode::Scan);
  req.decode_mode = mode_from(a, "--decode-mode", ScanMode::Recurrent);
  for (const auto& s : a.all("--stop")) {
    std::string stop = unescape(s);
    require_utf8(stop, "--stop");
    if (stop.empty()) throw UsageError("generate: --stop needs non-empty text");
    req.stop_strings.push_back(stop);
  }
  req.stop_at_eos = !a.has("--ignore-eos");
  const bool jsonl = a.has("--jsonl"), echo = a.has("--echo");

  Loaded m = load_model(a);
  req.prompt_ids = input_ids(a, *m.model, "--prompt", "--prompt-file", false);
  const Tokenizer& tok = m.model->tokenizer();

  Session session(m.model, m.backend);
  InterruptGuard interrupt;
  auto on_token = [&](const TokenEvent& ev) {
    if (jsonl) {
      if (ev.is_prompt) return;
      nlohmann::json j = {{"position", ev.position},
                          {"id", ev.id},
                          {"text", ev.text},
                          {"piece", printable(tok.token_bytes(ev.id))}};
      if (!ev.alternatives.empty()) j["alternatives"] = alternatives_json(ev.alternatives, tok);
      std::cout << dump(j) << "\n" << std::flush;
    } else if (!ev.is_prompt || echo) {
      std::cout << ev.text << std::flush;
    }
  };
  const std::atomic<bool>* cancel = interrupt.begin_generation();
  GenerateResult r = session.generate(req, on_token, cancel);
  interrupt.end_generation();
  if (r.reason == StopReason::Error) throw Error(r.error);

  const double decode_tps = r.decode_seconds > 0 ? r.new_tokens / r.decode_seconds : 0;
  const double prefill_tps = r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0;
  if (jsonl) {
    std::cout << dump({{"done", true},
                       {"reason", stop_reason_name(r.reason)},
                       {"text", r.text},
                       {"prompt_tokens", r.prompt_tokens},
                       {"new_tokens", r.new_tokens},
                       {"prefill_seconds", r.prefill_seconds},
                       {"decode_seconds", r.decode_seconds}})
              << "\n";
  } else {
    std::cout << "\n";
  }
  std::cout.flush();
  char line[256];
  std::snprintf(
      line, sizeof line,
      "mambascope-cli: %d tokens in %.2f s (%.1f tok/s); prompt %d tokens in %.2f s (%.1f tok/s); "
      "stopped: %s\n",
      r.new_tokens, r.decode_seconds, decode_tps, r.prompt_tokens, r.prefill_seconds, prefill_tps,
      stop_reason_name(r.reason));
  std::cerr << line;
  return r.reason == StopReason::Cancelled ? 130 : 0;
}

}  // namespace mambascope::cli
