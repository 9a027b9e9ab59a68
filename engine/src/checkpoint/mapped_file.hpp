// A read-only memory mapping of a whole file. Checkpoint tensors are views into it, so a
// multi-gigabyte model costs address space, not a second copy; the kernel pages it in on use.
#pragma once
#include <cstddef>
#include <filesystem>
#include <memory>

namespace mambascope {

class MappedFile {
 public:
  // Throws mambascope::Error naming the file if it cannot be opened or mapped.
  static std::unique_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }  // null for an empty file
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mambascope
