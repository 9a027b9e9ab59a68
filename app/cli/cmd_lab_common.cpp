// Helpers shared by the lab commands (cmd_lab.hpp).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cmd_lab.hpp"
#include "common.hpp"

namespace mambascope::cli {

lab::Progress stderr_progress(const std::atomic<bool>* cancel) {
  lab::Progress p;
  p.cancel = cancel;
  if (isatty(STDERR_FILENO))
    p.report = [](double f, const std::string& what) {
      std::fprintf(stderr, "\r\033[K[%3d%%] %s", int(f * 100 + 0.5), what.c_str());
      std::fflush(stderr);
    };
  return p;
}

void end_progress() {
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\033[K");
}

std::string quoted_piece(const Model& m, int32_t id) {
  if (id < 0) return "-";
  return "'" + printable(m.tokenizer().token_bytes(id)) + "'";
}

std::string printable_text(const Model& m, const std::vector<int32_t>& ids) {
  return printable(m.tokenizer().decode(ids));
}

void parse_freeze(const std::string& command, const std::string& text, Freeze::Kind& kind, int64_t& token) {
  if (text == "mean") {
    kind = Freeze::Kind::MeanOverInput;
    token = 0;
    return;
  }
  if (text.rfind("token:", 0) == 0) {
    kind = Freeze::Kind::AtToken;
    try {
      size_t used = 0;
      token = std::stoll(text.substr(6), &used);
      if (used == text.size() - 6 && token >= 0) return;
    } catch (...) {
    }
  }
  throw UsageError(command + ": --freeze must be 'mean' or 'token:K' (K a token index), got '" + text + "'");
}

int layer_option(const Args& a, const std::string& name, int64_t n_layer, int fallback) {
  return int(a.integer(name, fallback, 0, n_layer - 1));
}

}  // namespace mambascope::cli
