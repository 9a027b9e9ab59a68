// mambascope-cli chat: a conversation in the terminal. Each turn is formatted with the model's
// chat template (Model::format_chat) and only the new part of the transcript is prefilled: the
// session always holds exactly a prefix of the formatted conversation. /reset, /quit, Ctrl-D;
// Ctrl-C cancels the reply being written, not the program.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "interrupt.hpp"
#include "mambascope/error.hpp"
#include "mambascope/session.hpp"

namespace mambascope::cli {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

int cmd_chat(int argc, char** argv) {
  Args a("chat", "--model DIR [options]",
         "Talks with a model: type a message and press Enter. The model's chat template (from\n"
         "tokenizer_config.json) formats the conversation when it ships one, otherwise a plain\n"
         "User:/Assistant: transcript. /reset starts over, /quit or Ctrl-D leaves, Ctrl-C stops\n"
         "the reply being written. Reads lines from stdin, so it also works in a pipe.");
  add_model_options(a);
  add_sampling_options(a);
  a.option("--max-tokens", "N", "longest reply in tokens", "512")
      .option("--system", "TEXT", "a system message that opens the conversation")
      .option("--mode", "MODE", "SSM mode for prefilling each turn", "scan")
      .flag("--stats", "print tokens/s after each reply (stderr)");
  a.epilog(
      "example:\n  mambascope-cli chat --model models/mamba-chat --temperature 0.7 --system \"Be "
      "brief.\"");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);

  GenerateRequest req;
  req.sampling = sampling_from(a);
  req.sampling.n_alternatives = 0;
  req.max_new_tokens = int(a.integer("--max-tokens", 512, 1, 1 << 30));
  req.prefill_mode = mode_from(a, "--mode", ScanMode::Scan);
  std::vector<ChatTurn> opening;
  if (a.has("--system")) {
    require_utf8(a.str("--system"), "--system");
    opening.push_back({"system", a.str("--system")});
  }

  Loaded m = load_model(a);
  req.stop_strings = m.model->stop_strings();
  Session session(m.model, m.backend);
  InterruptGuard interrupt;
  const bool interactive = isatty(STDIN_FILENO);
  if (interactive)
    std::cerr << "Chatting with " << m.model->display_name()
              << (m.model->has_chat_template() ? " (its chat template)" : " (plain transcript)")
              << ". /reset starts over, /quit or Ctrl-D leaves, Ctrl-C stops a reply.\n";

  std::vector<ChatTurn> turns = opening;
  std::string consumed;  // the formatted text the session holds
  std::string line;
  for (;;) {
    if (interactive) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;  // Ctrl-D / end of input
    const std::string msg = trim(line);
    if (msg.empty()) continue;
    if (msg == "/quit" || msg == "/exit") break;
    if (msg == "/reset") {
      turns = opening;
      consumed.clear();
      session.reset();
      std::cerr << "(conversation cleared)\n";
      continue;
    }
    if (msg[0] == '/') {
      std::cerr << "commands: /reset, /quit\n";
      continue;
    }
    try {
      require_utf8(msg, "the message");
    } catch (const Error& e) {
      std::cerr << "mambascope-cli: error: " << e.what() << "\n";
      continue;
    }

    turns.push_back({"user", msg});
    const std::string formatted = m.model->format_chat(turns);
    if (formatted.compare(0, consumed.size(), consumed) != 0) {  // template not append-only
      session.reset();
      consumed.clear();
    }
    req.prompt = formatted.substr(consumed.size());
    const int64_t before = int64_t(session.tokens().size());
    const std::atomic<bool>* cancel = interrupt.begin_generation();
    GenerateResult r = session.generate(
        req,
        [](const TokenEvent& ev) {
          if (!ev.is_prompt) std::cout << ev.text << std::flush;
        },
        cancel);
    interrupt.end_generation();
    std::cout << "\n" << std::flush;
    if (r.reason == StopReason::Error) {
      std::cerr << "mambascope-cli: error: " << r.error << "\n";
      turns.pop_back();
      session.rewind(std::min<int64_t>(before, int64_t(session.tokens().size())));
      continue;
    }
    if (int64_t(session.tokens().size()) < before + r.prompt_tokens) {  // cancelled mid-prompt
      std::cerr << "(stopped)\n";
      turns.pop_back();
      session.rewind(before);
      continue;
    }
    if (r.reason == StopReason::Cancelled) std::cerr << "(reply stopped)\n";
    if (a.has("--stats") && r.decode_seconds > 0)
      std::cerr << "(" << r.new_tokens << " tokens, " << r.new_tokens / r.decode_seconds
                << " tok/s)\n";
    // Keep the prompt, forget the sampled tokens: the next turn prefills the reply as the
    // template writes it (with its end-of-turn marks), so the state matches the transcript.
    consumed = formatted;
    session.rewind(std::min<int64_t>(before + r.prompt_tokens, int64_t(session.tokens().size())));
    turns.push_back({"assistant", r.text});
  }
  if (interactive) std::cout << "\n";
  return 0;
}

}  // namespace mambascope::cli
