// Args (args.hpp): declaration, parsing and typed reading of a subcommand's options.
#include "args.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>

namespace mambascope::cli {

Args::Args(std::string command, std::string usage, std::string about)
    : command_(std::move(command)), usage_(std::move(usage)), about_(std::move(about)) {}

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, "", help, "", false, false});
  return *this;
}

Args& Args::option(const std::string& name, const std::string& metavar, const std::string& help,
                   const std::string& default_text, bool repeatable) {
  specs_.push_back({name, metavar, help, default_text, true, repeatable});
  return *this;
}

Args& Args::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const Args::Spec* Args::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

void Args::fail(const std::string& message) const {
  throw UsageError(command_ + ": " + message + " (see 'mambascope-cli " + command_ + " --help')");
}

void Args::parse(int argc, char** argv) {
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-' || (a[1] != '-' && a != "-h")) {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      help_requested_ = true;
      continue;
    }
    std::optional<std::string> inline_value;
    if (auto eq = a.find('='); eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      a.resize(eq);
    }
    const Spec* s = find(a);
    if (!s) fail("unknown option '" + a + "'");
    if (!s->takes_value) {
      if (inline_value) fail("option " + a + " takes no value");
      values_[a].push_back("1");
      continue;
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= argc) fail("option " + a + " needs a value (" + s->metavar + ")");
      value = argv[++i];
    }
    auto& slot = values_[a];
    if (!slot.empty() && !s->repeatable) fail("option " + a + " was given more than once");
    slot.push_back(value);
  }
}

std::string Args::help() const {
  std::ostringstream o;
  o << "usage: mambascope-cli " << command_ << " " << usage_ << "\n\n"
    << about_ << "\n\noptions:\n";
  for (const auto& s : specs_) {
    std::string left = "  " + s.name + (s.takes_value ? " " + s.metavar : "");
    o << left;
    if (left.size() < 28)
      o << std::string(28 - left.size(), ' ');
    else
      o << "\n" << std::string(28, ' ');
    o << s.help;
    if (!s.default_text.empty()) o << " [default: " << s.default_text << "]";
    if (s.repeatable) o << " (may be repeated)";
    o << "\n";
  }
  o << "  -h, --help" << std::string(28 - 12, ' ') << "show this help\n";
  if (!epilog_.empty()) o << "\n" << epilog_ << (epilog_.back() == '\n' ? "" : "\n");
  return o.str();
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

bool Args::declared(const std::string& name) const { return find(name) != nullptr; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::string Args::required(const std::string& name) const {
  if (!has(name)) {
    const Spec* s = find(name);
    fail("missing required option " + name + (s && s->takes_value ? " " + s->metavar : ""));
  }
  return str(name);
}

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Args::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(name)) return fallback;
  const std::string v = str(name);
  int64_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && end == v.data() + v.size() && (out < lo || out > hi)))
    fail("option " + name + " must be between " + std::to_string(lo) + " and " +
         std::to_string(hi) + ", got '" + v + "'");
  if (ec != std::errc() || end != v.data() + v.size())
    fail("option " + name + " expects an integer, got '" + v + "'");
  return out;
}

uint64_t Args::unsigned_integer(const std::string& name, uint64_t fallback) const {
  if (!has(name)) return fallback;
  const std::string v = str(name);
  uint64_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size())
    fail("option " + name + " expects a non-negative integer, got '" + v + "'");
  return out;
}

double Args::number(const std::string& name, double fallback, double lo, double hi) const {
  if (!has(name)) return fallback;
  const std::string v = str(name);
  double out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(out))
    fail("option " + name + " expects a number, got '" + v + "'");
  if (out < lo || out > hi) {
    std::ostringstream o;
    o << "option " << name << " must be between " << lo << " and " << hi << ", got '" << v << "'";
    fail(o.str());
  }
  return out;
}

void Args::exclusive(const std::vector<std::string>& names, bool need_one) const {
  std::vector<std::string> given;
  for (const auto& n : names)
    if (has(n)) given.push_back(n);
  std::string list;
  for (size_t i = 0; i < names.size(); ++i)
    list += (i ? (i + 1 == names.size() ? " or " : ", ") : "") + names[i];
  if (given.size() > 1) fail("give only one of " + list);
  if (need_one && given.empty()) fail("give one of " + list);
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i]))))
      ++i;
    if (i == text.size()) break;
    size_t j = i;
    while (j < text.size() && text[j] != ',' && !std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + j, v);
    if (ec != std::errc() || end != text.data() + j)
      throw UsageError(what + ": '" + text.substr(i, j - i) + "' is not an integer");
    out.push_back(v);
    i = j;
  }
  return out;
}

}  // namespace mambascope::cli
