// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the data;
// offsets count from the first byte after the header. The reader trusts nothing in the header;
// the writer exists for tests and tools that build small (or sparse, full-size) checkpoints.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mambascope/dtype.hpp"

namespace mambascope {

struct SafetensorsEntry {
  std::string name;  // as stored
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // absolute byte range within the file
};

// Validates the header of a whole file held at data[0, size): header length within the file,
// JSON well formed, every dtype known and readable, data_offsets inside the data area and not
// overlapping, and end - begin == numel * dtype size. Throws mambascope::Error naming `origin`,
// the tensor and the problem.
std::vector<SafetensorsEntry> parse_safetensors(const std::byte* data, size_t size,
                                                const std::string& origin);

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes; null leaves a hole (reads as zeros)
};

// The header bytes (length prefix + JSON padded with spaces to a multiple of 8) for tensors laid
// out back to back in the given order; *offsets gets each tensor's begin within the data area.
std::string safetensors_header(const std::vector<SafetensorsTensor>& tensors,
                               std::vector<size_t>* offsets = nullptr);
// Writes a file whose tensors without data are holes: a full-size 2.8b checkpoint written this
// way takes no disk space (the file is sized with ftruncate). Throws mambascope::Error.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<SafetensorsTensor>& tensors);

}  // namespace mambascope
