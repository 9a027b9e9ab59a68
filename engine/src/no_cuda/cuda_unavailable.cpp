// Built without nvcc: the CUDA backend is absent, and says so in words the user can act on.
#include "mambascope/backend.hpp"
#include "mambascope/error.hpp"

namespace mambascope {

bool cuda_backend_available(std::string* why_not) {
  if (why_not)
    *why_not = "this build of MambaScope has no CUDA backend (nvcc was not found when it was "
               "built; install the CUDA toolkit and rebuild)";
  return false;
}

std::unique_ptr<Backend> make_cuda_backend(const Checkpoint&, int) {
  std::string why;
  cuda_backend_available(&why);
  throw Error(why);
}

}  // namespace mambascope
