// What mambascope-cli's commands share: the model/backend options and loading, the sampling
// options, reading text inputs (files must exist and be UTF-8), printing token pieces, and the
// guard on {L, vocab} logits buffers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/model.hpp"
#include "mambascope/sampler.hpp"

namespace mambascope::cli {

// --model DIR, --backend, --threads, --device, --verbose.
void add_model_options(Args& a);
struct Loaded {
  std::shared_ptr<Model> model;
  std::shared_ptr<Backend> backend;  // null when not asked for
};
// Loads --model (required); with_backend also makes the backend. Warnings and the backend
// choice note go to stderr with --verbose (warnings always, as they may explain a failure).
Loaded load_model(const Args& a, bool with_backend = true);

// --temperature, --top-k, --top-p, --min-p, --repetition-penalty, --repetition-window, --seed,
// --alternatives.
void add_sampling_options(Args& a);
SamplingParams sampling_from(const Args& a);  // out-of-range values are a UsageError

// --<name> recurrent|scan|convolution|lti-fft
ScanMode mode_from(const Args& a, const std::string& name, ScanMode fallback);

// Text input from --<text_flag> TEXT or --<file_flag> FILE ("-" = stdin), or token ids from
// --ids when ids_flag is set. At most one may be given; need_one: exactly one.
void add_input_options(Args& a, const std::string& text_flag, const std::string& file_flag,
                       bool ids_flag, const std::string& what);
std::vector<int32_t> input_ids(const Args& a, const Model& m, const std::string& text_flag,
                               const std::string& file_flag, bool need_one = true);
std::string input_text(const Args& a, const std::string& text_flag, const std::string& file_flag);

// The whole file; Error if it is missing or unreadable. "-" reads stdin.
std::string read_file(const std::string& path, const std::string& what);
// Error unless s is valid UTF-8; says where the first bad byte is.
void require_utf8(std::string_view s, const std::string& what);

// A token's bytes for a terminal: control characters and bytes of broken UTF-8 as \xNN,
// newlines as \n, tabs as \t.
std::string printable(std::string_view bytes);

// Refuses (Error) a {rows, vocab} float buffer above limit_bytes, saying how to avoid it.
void check_logits_budget(int64_t rows, int64_t vocab, double limit_bytes, const std::string& hint);
// --max-logits-gb G: the limit above (default 4 GiB).
void add_logits_limit_option(Args& a);
double logits_limit_bytes(const Args& a);

// Backslash escapes \n, \t, \r and \\ in a command-line value become the characters, so that
// --stop '\n' stops at a newline. Any other backslash is kept.
std::string unescape(std::string_view s);

void no_positional(const Args& a);      // UsageError on stray words
void warn(const std::string& message);  // "mambascope-cli: warning: ..." on stderr

// Throws UsageError if any id is outside [0, vocab).
void check_ids_in_vocab(const std::vector<int32_t>& ids, int64_t vocab, const std::string& what);

}  // namespace mambascope::cli
