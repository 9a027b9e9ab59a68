// Mode names and the choice of backend: the GPU when one is usable, the CPU otherwise.
#include <thread>

#include "mambascope/backend.hpp"
#include "mambascope/error.hpp"

namespace mambascope {

const char* mode_name(ScanMode m) {
  switch (m) {
    case ScanMode::Recurrent: return "recurrent";
    case ScanMode::Scan: return "scan";
    case ScanMode::Convolution: return "convolution";
    case ScanMode::LtiFft: return "lti-fft";
  }
  return "?";
}

std::optional<ScanMode> parse_mode(std::string_view name) {
  for (ScanMode m : {ScanMode::Recurrent, ScanMode::Scan, ScanMode::Convolution, ScanMode::LtiFft})
    if (name == mode_name(m)) return m;
  return std::nullopt;
}

std::unique_ptr<Backend> make_backend(const Checkpoint& ckpt, const BackendChoice& choice,
                                      std::string* note) {
  if (choice.name == "cpu") return make_cpu_backend(ckpt, choice.threads);
  if (choice.name == "cuda") return make_cuda_backend(ckpt, choice.device);
  if (choice.name != "auto")
    throw Error("unknown backend '" + choice.name + "': use auto, cpu or cuda");
  std::string why;
  if (cuda_backend_available(&why)) {
    try {
      return make_cuda_backend(ckpt, choice.device);
    } catch (const Error& e) {
      why = e.what();
    }
  }
  if (note) *note = "using the CPU backend: " + why;
  return make_cpu_backend(ckpt, choice.threads);
}

}  // namespace mambascope
