// The CUDA backend (being written): until it lands, asking for it says so.
#include "mambascope/backend.hpp"
#include "mambascope/error.hpp"

namespace mambascope {

std::unique_ptr<Backend> make_cuda_backend(const Checkpoint&, int) {
  throw Error("the CUDA backend is not finished in this build; use --backend cpu");
}

}  // namespace mambascope
