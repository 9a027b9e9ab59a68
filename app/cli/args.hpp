// Command-line parsing for mambascope-cli's subcommands: each command declares its options (with
// help text), parses argv, and reads typed values. Anything wrong with the command line is a
// UsageError (exit code 2); the message names the option and what it expected.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mambascope::cli {

class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

class Args {
 public:
  // command: e.g. "generate"; usage: the synopsis after the program name; about: a paragraph.
  Args(std::string command, std::string usage, std::string about);

  // A boolean switch (--json).
  Args& flag(const std::string& name, const std::string& help);
  // An option that takes a value (--max-tokens N). repeatable: may be given more than once.
  Args& option(const std::string& name, const std::string& metavar, const std::string& help,
               const std::string& default_text = "", bool repeatable = false);
  // Free text at the end of --help (examples).
  Args& epilog(const std::string& text);

  // Accepts --name value and --name=value; "--" ends the options. Throws UsageError on an
  // unknown option, a missing value or a repeated single option. --help / -h sets help().
  void parse(int argc, char** argv);  // argv[0] is the command name

  bool help_requested() const { return help_requested_; }
  std::string help() const;
  const std::string& command() const { return command_; }

  bool has(const std::string& name) const;       // given on the command line
  bool declared(const std::string& name) const;  // known to this command
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::string required(const std::string& name) const;  // UsageError if absent
  std::vector<std::string> all(const std::string& name) const;
  // Typed values: UsageError for text that is not a number or lies outside [lo, hi].
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo = INT64_MIN,
                  int64_t hi = INT64_MAX) const;
  double number(const std::string& name, double fallback, double lo = -1e300,
                double hi = 1e300) const;
  uint64_t unsigned_integer(const std::string& name, uint64_t fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Throws UsageError if more than one of names or (when need_one) none of them is given.
  void exclusive(const std::vector<std::string>& names, bool need_one) const;

 private:
  struct Spec {
    std::string name, metavar, help, default_text;
    bool takes_value = false, repeatable = false;
  };
  const Spec* find(const std::string& name) const;
  [[noreturn]] void fail(const std::string& message) const;

  std::string command_, usage_, about_, epilog_;
  std::vector<Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

// "1, 2 3,4" -> {1, 2, 3, 4}. Throws UsageError naming `what` on anything else.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what);

}  // namespace mambascope::cli
