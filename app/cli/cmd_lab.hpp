// What the Modes Lab's CLI commands (cmd_lab_*.cpp: sweep, kernel, intervene, lens, freeze)
// share: a progress line on stderr, token pieces for tables, and parsing of freeze choices and
// layer indices. The computations themselves are in the engine (mambascope/lab.hpp).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "args.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"

namespace mambascope::cli {

// A "\r[ 42%] what" line on stderr when it is a terminal (nothing otherwise); cancel may be null.
lab::Progress stderr_progress(const std::atomic<bool>* cancel = nullptr);
void end_progress();  // clears the progress line

// One token as printable text, quoted: 'Alice'
std::string quoted_piece(const Model& m, int32_t id);
// Token ids as printable text (decoded together, so that multi-byte characters survive).
std::string printable_text(const Model& m, const std::vector<int32_t>& ids);

// "mean" or "token:K" -> the freeze kind and token.
void parse_freeze(const std::string& command, const std::string& text, Freeze::Kind& kind, int64_t& token);
// --<name> N within [0, n_layer).
int layer_option(const Args& a, const std::string& name, int64_t n_layer, int fallback);

}  // namespace mambascope::cli
