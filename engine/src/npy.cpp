// NumPy .npy reading and writing. The header is a Python dict literal
// ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }); only the three keys NumPy
// writes are read, by a small scanner rather than a Python parser.
#include "mambascope/npy.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mambascope/error.hpp"

namespace mambascope {

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("npy: negative dimension in shape");
    n *= d;
  }
  return n;
}

std::string header_for(const char* descr, const std::vector<int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) dict += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dict += ",";  // Python's one-tuple
  dict += "), }";
  // Version 1.0: magic, 2 version bytes, uint16 header length; data aligned to 64 bytes.
  size_t unpadded = kMagicLen + 2 + 2 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  uint16_t len = uint16_t(dict.size());
  out += char(len & 0xff);
  out += char(len >> 8);
  return out + dict;
}

template <class T>
std::string bytes_of(const char* descr, std::span<const T> data,
                     const std::vector<int64_t>& shape) {
  if (count(shape) != int64_t(data.size()))
    throw Error("npy: shape holds " + std::to_string(count(shape)) + " elements but " +
                std::to_string(data.size()) + " were given");
  std::string out = header_for(descr, shape);
  size_t at = out.size();
  out.resize(at + data.size() * sizeof(T));
  if (!data.empty()) std::memcpy(out.data() + at, data.data(), data.size() * sizeof(T));
  return out;
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw Error("writing " + path.string() + " failed: " + std::strerror(errno));
}

// The value after 'key': in the header dict, up to the next top-level ',' or '}'.
std::string dict_value(std::string_view dict, std::string_view key, const std::string& origin) {
  std::string quoted(1, '\'');
  quoted.append(key).push_back('\'');
  size_t k = dict.find(quoted);
  if (k == std::string_view::npos) throw Error(origin + ": npy header has no " + quoted);
  size_t colon = dict.find(':', k + quoted.size());
  if (colon == std::string_view::npos) throw Error(origin + ": malformed npy header");
  size_t begin = colon + 1, end = begin;
  int depth = 0;
  for (; end < dict.size(); ++end) {
    char c = dict[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  std::string v(dict.substr(begin, end - begin));
  size_t a = v.find_first_not_of(" \t"), b = v.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : v.substr(a, b - a + 1);
}

std::vector<int64_t> parse_shape(const std::string& v, const std::string& origin) {
  if (v.size() < 2 || v.front() != '(' || v.back() != ')')
    throw Error(origin + ": npy shape '" + v + "' is not a tuple");
  std::vector<int64_t> shape;
  std::stringstream ss(v.substr(1, v.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(" \tL"), b = item.find_last_not_of(" \tL");
    if (a == std::string::npos) continue;  // the empty item after a trailing comma
    item = item.substr(a, b - a + 1);
    try {
      size_t used = 0;
      long long d = std::stoll(item, &used);
      if (used != item.size() || d < 0) throw std::invalid_argument(item);
      shape.push_back(d);
    } catch (const std::exception&) {
      throw Error(origin + ": npy shape '" + v + "' holds a bad dimension '" + item + "'");
    }
  }
  return shape;
}

}  // namespace

std::string npy_bytes(std::span<const float> data, const std::vector<int64_t>& shape) {
  return bytes_of("<f4", data, shape);
}
std::string npy_bytes(std::span<const int32_t> data, const std::vector<int64_t>& shape) {
  return bytes_of("<i4", data, shape);
}
void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<int64_t>& shape) {
  write_file(path, npy_bytes(data, shape));
}
void write_npy(const std::filesystem::path& path, std::span<const int32_t> data,
               const std::vector<int64_t>& shape) {
  write_file(path, npy_bytes(data, shape));
}

NpyArray parse_npy(std::string_view bytes, const std::string& origin) {
  if (bytes.size() < kMagicLen + 4 ||
      bytes.substr(0, kMagicLen) != std::string_view(kMagic, kMagicLen))
    throw Error(origin + ": not a .npy file (no \\x93NUMPY magic)");
  auto u8 = [&](size_t i) { return uint32_t(uint8_t(bytes[i])); };
  uint32_t major = u8(kMagicLen);
  size_t header_len, header_at;
  if (major == 1) {
    header_len = u8(8) | u8(9) << 8;
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(origin + ": truncated .npy header");
    header_len = u8(8) | u8(9) << 8 | u8(10) << 16 | u8(11) << 24;
    header_at = 12;
  } else {
    throw Error(origin + ": .npy format version " + std::to_string(major) + " is not supported");
  }
  if (header_at + header_len > bytes.size()) throw Error(origin + ": truncated .npy header");
  std::string_view dict = bytes.substr(header_at, header_len);

  std::string descr = dict_value(dict, "descr", origin);
  std::string fortran = dict_value(dict, "fortran_order", origin);
  NpyArray out;
  out.shape = parse_shape(dict_value(dict, "shape", origin), origin);
  if (fortran != "False")
    throw Error(origin +
                ": Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  if (descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"'))
    descr = descr.substr(1, descr.size() - 2);
  size_t elem;
  if (descr == "<f4" || descr == "<i4")
    elem = 4;
  else if (descr == "<f8" || descr == "<i8")
    elem = 8;
  else
    throw Error(origin + ": .npy dtype '" + descr +
                "' is not supported (float32, int32, float64 or int64, little-endian)");

  int64_t n = out.numel();
  std::string_view data = bytes.substr(header_at + header_len);
  if (data.size() != size_t(n) * elem)
    throw Error(origin + ": .npy data holds " + std::to_string(data.size()) +
                " bytes but shape needs " + std::to_string(size_t(n) * elem) +
                " (truncated file?)");
  if (descr[1] == 'f') {
    out.type = NpyArray::Type::F32;
    out.f32.resize(size_t(n));
    if (elem == 4) {
      if (n) std::memcpy(out.f32.data(), data.data(), size_t(n) * 4);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, data.data() + 8 * i, 8);
        out.f32[size_t(i)] = float(d);
      }
    }
  } else {
    out.type = NpyArray::Type::I32;
    out.i32.resize(size_t(n));
    if (elem == 4) {
      if (n) std::memcpy(out.i32.data(), data.data(), size_t(n) * 4);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, data.data() + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX)
          throw Error(origin + ": int64 value " + std::to_string(v) + " does not fit in int32");
        out.i32[size_t(i)] = int32_t(v);
      }
    }
  }
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path.string());
}

}  // namespace mambascope
