// The one place CUDA failures are turned into mambascope::Error.
#include "cuda/cuda_check.hpp"

namespace mambascope::cuda {

void throw_cuda_error(const std::string& what, const char* expr, const char* file, int line) {
  std::string f = file;
  if (auto pos = f.rfind("/src/"); pos != std::string::npos) f = f.substr(pos + 1);
  throw Error("CUDA error: " + what + " (in " + expr + " at " + f + ":" + std::to_string(line) + ")");
}

}  // namespace mambascope::cuda
