// NumPy .npy files (format 1.0-3.0, little-endian, C order): the CLI writes its probes and
// logits as float32/int32 arrays, and the tests read the golden fixtures made by Python.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mambascope {

struct NpyArray {
  enum class Type { F32, I32 } type = Type::F32;
  std::vector<int64_t> shape;  // empty for a 0-d array
  std::vector<float> f32;      // filled when type == F32
  std::vector<int32_t> i32;    // filled when type == I32
  int64_t numel() const;
};

// Write a C-order array. Throws mambascope::Error if the file cannot be written or the shape's
// element count differs from data.size().
void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<int64_t>& shape);
void write_npy(const std::filesystem::path& path, std::span<const int32_t> data,
               const std::vector<int64_t>& shape);
// The bytes of such a file.
std::string npy_bytes(std::span<const float> data, const std::vector<int64_t>& shape);
std::string npy_bytes(std::span<const int32_t> data, const std::vector<int64_t>& shape);

// Reads <f4 and <i4 arrays as they are; <f8 becomes F32 and <i8 becomes I32 (NumPy's defaults,
// for convenience; an int64 outside int32's range is an error). Fortran order, big-endian and
// other dtypes are refused with a message naming what the file holds.
NpyArray read_npy(const std::filesystem::path& path);
NpyArray parse_npy(std::string_view bytes, const std::string& origin);

}  // namespace mambascope
