// The one exception type the engine throws for recoverable failures (bad file, unsupported
// model, out of memory). Its message is written for the user: what went wrong and what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace mambascope {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace mambascope
