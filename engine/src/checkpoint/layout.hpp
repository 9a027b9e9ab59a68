// What a Mamba-1 checkpoint must hold, derived from its config: every tensor's canonical
// (Hugging Face `-hf`) name and shape, and how the original state-spaces names map onto them.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mambascope/config.hpp"

namespace mambascope {

struct ExpectedTensor {
  std::string name;  // canonical
  std::vector<int64_t> shape;
  std::string formula;  // the shape in config terms, for messages: "{2*d_inner, d_model}"
};

// Every tensor the model needs, in load order; lm_head.weight only when the head is untied.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

// The canonical name of a stored tensor: the state-spaces `backbone.embedding.weight` becomes
// `backbone.embeddings.weight`; every other name is the same in both schemes.
std::string canonical_tensor_name(std::string_view stored);

std::string shape_to_string(const std::vector<int64_t>& shape);  // "{768, 1, 4}"

}  // namespace mambascope
