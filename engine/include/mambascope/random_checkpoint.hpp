// Random-weight Mamba-1 checkpoints at real shapes, written to disk as a Hugging Face folder
// (config.json + model.safetensors), for the benchmark and the tests: speed does not depend on
// the values, but the values are drawn like a fresh model's so that activations stay realistic.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "mambascope/config.hpp"
#include "mambascope/dtype.hpp"

namespace mambascope {

// The published Mamba-1 shapes: "130m" (768 × 24), "370m" (1024 × 48), "790m" (1536 × 48),
// "1.4b" (2048 × 48), "2.8b" (2560 × 64); vocab 50280, d_state 16, tied embeddings, no biases.
// Throws mambascope::Error for another name.
ModelConfig mamba_shape(std::string_view name);

// Writes <dir>/config.json and <dir>/model.safetensors for cfg, matrices and vectors stored as
// `dtype`. Init: A_log = log(1..N) per channel, dt bias = softplus⁻¹(dt) with dt log-uniform in
// [1e-3, 1e-1], D = 1, norms = 1, biases 0, every other weight ~ N(0, 0.02); LTI models get
// dt_lti like the dt bias and B_lti, C_lti ~ N(0, 1). Deterministic in `seed`; uses all cores.
// Creates dir if needed; throws mambascope::Error if it cannot write.
void write_random_checkpoint(const std::filesystem::path& dir, const ModelConfig& cfg,
                             DType dtype, uint64_t seed = 0);

}  // namespace mambascope
