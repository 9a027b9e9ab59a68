// Shared pieces of mambascope-cli's commands (common.hpp).
#include "common.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "mambascope/error.hpp"
#include "mambascope/tokenizer.hpp"

namespace mambascope::cli {

void add_model_options(Args& a) {
  a.option("--model", "DIR", "model folder: config.json + *.safetensors (+ tokenizer)")
      .option("--backend", "NAME", "auto, cpu or cuda", "auto")
      .option("--threads", "N", "CPU threads (0 = all cores)", "0")
      .option("--device", "N", "CUDA device index", "0")
      .flag("--verbose", "say which backend runs and why, and other notes");
}

Loaded load_model(const Args& a, bool with_backend) {
  const std::string dir = a.required("--model");
  Loaded out;
  out.model = Model::load(dir);
  for (const auto& w : out.model->warnings()) warn(w);
  if (!with_backend) return out;
  BackendChoice choice;
  choice.name = a.str("--backend", "auto");
  if (choice.name != "auto" && choice.name != "cpu" && choice.name != "cuda")
    throw UsageError(a.command() + ": --backend must be auto, cpu or cuda, got '" + choice.name +
                     "'");
  choice.threads = int(a.integer("--threads", 0, 0, 1024));
  choice.device = int(a.integer("--device", 0, 0, 64));
  std::string note;
  out.backend = make_backend(out.model->checkpoint(), choice, &note);
  if (a.has("--verbose")) {
    const DeviceInfo d = out.backend->device();
    std::cerr << "mambascope-cli: backend " << out.backend->name() << " (" << d.name;
    if (d.threads > 0) std::cerr << ", " << d.threads << " threads";
    std::cerr << ")" << (note.empty() ? "" : ": " + note) << "\n";
  }
  return out;
}

void add_sampling_options(Args& a) {
  SamplingParams d;
  auto num = [](double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  };
  a.option("--temperature", "T", "0 = greedy; higher = more random", num(d.temperature))
      .option("--top-k", "K", "sample among the K most probable tokens (0 = off)",
              std::to_string(d.top_k))
      .option("--top-p", "P", "smallest set of tokens whose probability reaches P (1 = off)",
              num(d.top_p))
      .option("--min-p", "P", "drop tokens below P x the best token's probability (0 = off)",
              num(d.min_p))
      .option("--repetition-penalty", "R", "CTRL penalty on recently seen tokens (1 = off)",
              num(d.repetition_penalty))
      .option("--repetition-window", "N", "how many recent tokens the penalty looks at",
              std::to_string(d.repetition_window))
      .option("--seed", "S", "random seed: the same seed gives the same text",
              std::to_string(d.seed));
}

SamplingParams sampling_from(const Args& a) {
  SamplingParams p;
  p.temperature = float(a.number("--temperature", p.temperature, 0, 1e6));
  p.top_k = int(a.integer("--top-k", p.top_k, 0, 1 << 30));
  p.top_p = float(a.number("--top-p", p.top_p, 0, 1));
  p.min_p = float(a.number("--min-p", p.min_p, 0, 1));
  p.repetition_penalty = float(a.number("--repetition-penalty", p.repetition_penalty, 0, 1e6));
  p.repetition_window = int(a.integer("--repetition-window", p.repetition_window, 0, 1 << 30));
  p.seed = a.unsigned_integer("--seed", p.seed);
  try {
    p.validate();
  } catch (const Error& e) {
    throw UsageError(a.command() + ": " + e.what());
  }
  return p;
}

ScanMode mode_from(const Args& a, const std::string& name, ScanMode fallback) {
  if (!a.has(name)) return fallback;
  auto m = parse_mode(a.str(name));
  if (!m)
    throw UsageError(a.command() + ": " + name +
                     " must be recurrent, scan, convolution or lti-fft, got '" + a.str(name) + "'");
  return *m;
}

void add_input_options(Args& a, const std::string& text_flag, const std::string& file_flag,
                       bool ids_flag, const std::string& what) {
  a.option(text_flag, "TEXT", "the " + what + " as text")
      .option(file_flag, "FILE", "read the " + what + " from a UTF-8 file ('-' = stdin)");
  if (ids_flag) a.option("--ids", "IDS", "the " + what + " as token ids, e.g. \"12,345,6\"");
}

std::string input_text(const Args& a, const std::string& text_flag, const std::string& file_flag) {
  std::string text;
  if (a.has(text_flag)) {
    text = a.str(text_flag);
    require_utf8(text, "the text of " + text_flag);
  } else {
    const std::string path = a.str(file_flag);
    text = read_file(path, file_flag + " file");
    require_utf8(text, "the " + file_flag + " file '" + path + "'");
  }
  return text;
}

std::vector<int32_t> input_ids(const Args& a, const Model& m, const std::string& text_flag,
                               const std::string& file_flag, bool need_one) {
  std::vector<std::string> names = {text_flag, file_flag};
  if (a.declared("--ids")) names.push_back("--ids");
  a.exclusive(names, need_one);
  std::vector<int32_t> ids;
  if (a.has("--ids")) {
    for (int64_t v : parse_int_list(a.str("--ids"), a.command() + ": --ids")) {
      if (v < INT32_MIN || v > INT32_MAX)
        throw UsageError(a.command() + ": --ids: " + std::to_string(v) + " is not a token id");
      ids.push_back(int32_t(v));
    }
    check_ids_in_vocab(ids, m.config().vocab_size, "--ids");
  } else if (a.has(text_flag) || a.has(file_flag)) {
    ids = m.tokenizer().encode(input_text(a, text_flag, file_flag));
    check_ids_in_vocab(ids, m.config().vocab_size, "the tokenized text");
  }
  return ids;
}

std::string read_file(const std::string& path, const std::string& what) {
  if (path == "-") {
    std::ostringstream o;
    o << std::cin.rdbuf();
    return o.str();
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(what + " '" + path + "' does not exist");
  if (std::filesystem::is_directory(path, ec))
    throw Error(what + " '" + path + "' is a folder, not a file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + what + " '" + path + "' for reading");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error("cannot read " + what + " '" + path + "'");
  return s;
}

void require_utf8(std::string_view s, const std::string& what) {
  if (is_valid_utf8(s)) return;
  // Walk whole characters to say where the first bad one is (the validator says only yes/no).
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len == 0 || i + len > s.size() || !is_valid_utf8(s.substr(i, len))) break;
    i += len;
  }
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", i < s.size() ? static_cast<unsigned char>(s[i]) : 0u);
  throw Error(what + " is not valid UTF-8 (byte " + byte + " at offset " + std::to_string(i) +
              "); save it as UTF-8 and try again");
}

std::string printable(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  auto hex = [&](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", c);
    out += buf;
  };
  while (i < bytes.size()) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      hex(c);
    } else if (c < 0x80) {
      out += char(c);
    } else {
      const size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      if (len && i + len <= bytes.size() && is_valid_utf8(bytes.substr(i, len))) {
        out.append(bytes.substr(i, len));
        i += len;
        continue;
      }
      hex(c);
    }
    ++i;
  }
  return out;
}

void check_logits_budget(int64_t rows, int64_t vocab, double limit_bytes, const std::string& hint) {
  const double bytes = double(rows) * double(vocab) * sizeof(float);
  if (bytes <= limit_bytes) return;
  std::ostringstream o;
  o.precision(3);
  o << "the logits of " << rows << " tokens {" << rows << ", " << vocab << "} would take "
    << bytes / double(1 << 30) << " GiB, above the limit of " << limit_bytes / double(1 << 30)
    << " GiB; " << hint;
  throw Error(o.str());
}

void add_logits_limit_option(Args& a) {
  a.option("--max-logits-gb", "G", "refuse runs whose {tokens, vocab} logits exceed G GiB", "4");
}

double logits_limit_bytes(const Args& a) {
  return a.number("--max-logits-gb", 4.0, 0, 1e6) * double(1 << 30);
}

std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char n = s[++i];
    out += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
    if (n != 'n' && n != 't' && n != 'r' && n != '\\') out.insert(out.end() - 1, '\\');
  }
  return out;
}

void no_positional(const Args& a) {
  if (!a.positional().empty())
    throw UsageError(a.command() + ": unexpected argument '" + a.positional().front() +
                     "' (see 'mambascope-cli " + a.command() + " --help')");
}

void warn(const std::string& message) {
  std::cerr << "mambascope-cli: warning: " << message << "\n";
}

void check_ids_in_vocab(const std::vector<int32_t>& ids, int64_t vocab, const std::string& what) {
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      throw Error(what + ": token id " + std::to_string(id) +
                  " is outside the model's vocabulary (0.." + std::to_string(vocab - 1) + ")");
}

}  // namespace mambascope::cli
