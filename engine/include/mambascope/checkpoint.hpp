// A Hugging Face Mamba-1 checkpoint folder: config.json plus model.safetensors, or shards listed
// in model.safetensors.index.json. Files are memory-mapped; tensors are views into the mapping,
// looked up by their canonical (`-hf`) name whichever naming scheme the file uses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mambascope/config.hpp"
#include "mambascope/dtype.hpp"

namespace mambascope {

struct TensorView {
  std::string name;             // canonical name, e.g. "backbone.layers.3.mixer.A_log"
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // inside a memory mapping owned by the Checkpoint
  size_t nbytes = 0;
  int64_t numel() const;
};

class MappedFile;  // engine/src/checkpoint/mapped_file.hpp

class Checkpoint {
 public:
  // Opens a model folder. Throws mambascope::Error naming the file and the problem: missing
  // config or weights, a safetensors header that lies about sizes or offsets, a tensor whose
  // shape does not match the config, an unknown architecture.
  static std::unique_ptr<Checkpoint> open(const std::filesystem::path& dir);
  ~Checkpoint();

  const ModelConfig& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }
  // nullptr if absent. Names are canonical: backbone.embeddings.weight, backbone.layers.{i}.norm.weight,
  // backbone.layers.{i}.mixer.{in_proj,conv1d,x_proj,dt_proj,out_proj}.{weight,bias},
  // backbone.layers.{i}.mixer.{A_log,D}, backbone.norm_f.weight, lm_head.weight
  // (LTI models: backbone.layers.{i}.mixer.{dt_lti,B_lti,C_lti}).
  // With a tied head, "lm_head.weight" finds the embedding (whose name the view keeps), and
  // tensors() holds it once.
  const TensorView* find(std::string_view name) const;
  // Like find, but throws an Error naming the missing tensor.
  const TensorView& get(std::string_view name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }
  DType storage_dtype() const;       // dtype of the embedding
  int64_t parameter_count() const;   // sum of numel over all tensors (tied head counted once)
  size_t mapped_bytes() const;

 private:
  Checkpoint() = default;
  std::filesystem::path dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  friend class CheckpointLoader;
};

}  // namespace mambascope
