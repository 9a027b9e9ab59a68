// safetensors header parsing (defensive: the header of a downloaded file may lie) and writing.
#include "checkpoint/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "checkpoint/layout.hpp"
#include "mambascope/error.hpp"

namespace mambascope {

using nlohmann::json;

namespace {

// safetensors' own limit; a larger "header" means the file is something else.
constexpr uint64_t kMaxHeader = 100'000'000;

DType parse_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  static const char* known[] = {"F64",     "I64",     "U64",     "I32",  "U32",     "I16",
                                "U16",     "I8",      "U8",      "BOOL", "F8_E4M3", "F8_E5M2",
                                "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",   "C64"};
  for (const char* k : known)
    if (s == k)
      throw Error(where + " has dtype " + s +
                  ", which MambaScope cannot read (supported: F32, "
                  "F16, BF16); convert the checkpoint to one of those");
  throw Error(where + " has unknown dtype \"" + s + "\" (supported: F32, F16, BF16)");
}

}  // namespace

std::vector<SafetensorsEntry> parse_safetensors(const std::byte* data, size_t size,
                                                const std::string& origin) {
  if (size < 8)
    throw Error(origin + ": file is " + std::to_string(size) +
                " bytes, too short to be safetensors (truncated download?)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t(std::to_integer<uint8_t>(data[i]));
  if (n > size - 8)
    throw Error(origin + ": header length " + std::to_string(n) +
                " runs past the end of the file (" + std::to_string(size) +
                " bytes): the file is truncated or not safetensors");
  if (n > kMaxHeader)
    throw Error(origin + ": header length " + std::to_string(n) +
                " is over 100 MB: not a safetensors file");
  const size_t data_start = 8 + size_t(n);
  const size_t data_size = size - data_start;

  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(data) + 8,
                         reinterpret_cast<const char*>(data) + data_start);
  } catch (const json::parse_error& e) {
    throw Error(origin + ": safetensors header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(origin + ": safetensors header is not a JSON object");

  std::vector<SafetensorsEntry> out;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    std::string where = origin + ": tensor \"" + name + "\"";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      throw Error(where + " lacks dtype, shape or data_offsets");
    if (!v["dtype"].is_string()) throw Error(where + ": dtype is not a string");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = parse_dtype(v["dtype"].get<std::string>(), where);

    const json& shape = v["shape"];
    if (!shape.is_array()) throw Error(where + ": shape is not a list");
    uint64_t numel = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        throw Error(where + ": shape " + shape.dump() +
                    " holds a non-integer or negative dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t(1) << 40) || (dim && numel > (uint64_t(1) << 50) / dim))
        throw Error(where + ": shape " + shape.dump() + " is impossibly large");
      numel *= dim;
      e.shape.push_back(int64_t(dim));
    }

    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw Error(where + ": data_offsets must be two non-negative integers, found " + off.dump());
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) throw Error(where + ": data_offsets " + off.dump() + " end before they begin");
    if (end > data_size)
      throw Error(where + ": data_offsets " + off.dump() + " run past the end of the data (" +
                  std::to_string(data_size) + " bytes): the file is truncated or its header lies");
    uint64_t need = numel * dtype_size(e.dtype);
    if (end - begin != need)
      throw Error(where + ": shape " + shape_to_string(e.shape) + " of " +
                  std::string(dtype_name(e.dtype)) + " needs " + std::to_string(need) +
                  " bytes but data_offsets cover " + std::to_string(end - begin));
    e.begin = data_start + size_t(begin);
    e.end = data_start + size_t(end);
    out.push_back(std::move(e));
  }

  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : out)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(
      by_offset.begin(), by_offset.end(),
      [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      throw Error(origin + ": tensors \"" + by_offset[i - 1]->name + "\" and \"" +
                  by_offset[i]->name + "\" overlap in the file: the header is corrupt");
  return out;
}

std::string safetensors_header(const std::vector<SafetensorsTensor>& tensors,
                               std::vector<size_t>* offsets) {
  json h = json::object();
  h["__metadata__"] = {{"format", "pt"}};
  size_t at = 0;
  if (offsets) offsets->clear();
  for (const auto& t : tensors) {
    size_t numel = 1;
    for (int64_t d : t.shape) numel *= size_t(d);
    size_t bytes = numel * dtype_size(t.dtype);
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                 {"shape", t.shape},
                 {"data_offsets", {at, at + bytes}}};
    if (offsets) offsets->push_back(at);
    at += bytes;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + text;
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<SafetensorsTensor>& tensors) {
  std::vector<size_t> offsets;
  std::string header = safetensors_header(tensors, &offsets);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
  auto fail = [&](const char* what) {
    int err = errno;
    ::close(fd);
    throw Error(std::string(what) + " " + path.string() + ": " + std::strerror(err));
  };
  auto put = [&](const void* p, size_t len, size_t at) {
    const char* c = static_cast<const char*>(p);
    while (len) {
      ssize_t w = ::pwrite(fd, c, len, off_t(at));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("writing");
      }
      c += w, at += size_t(w), len -= size_t(w);
    }
  };
  put(header.data(), header.size(), 0);
  size_t end = header.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t numel = 1;
    for (int64_t d : tensors[i].shape) numel *= size_t(d);
    size_t bytes = numel * dtype_size(tensors[i].dtype);
    if (tensors[i].data && bytes) put(tensors[i].data, bytes, header.size() + offsets[i]);
    end = std::max(end, header.size() + offsets[i] + bytes);
  }
  if (::ftruncate(fd, off_t(end)) != 0) fail("sizing");
  if (::close(fd) != 0) throw Error("closing " + path.string() + ": " + std::strerror(errno));
}

}  // namespace mambascope
