// Storage element types of checkpoint tensors: their names and their conversion to fp32. The
// half-precision conversions are written out bit by bit (no F16C) so that they are exact and
// identical on every x86-64 the engine is built for.
#include "mambascope/dtype.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace mambascope {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

float f16_to_f32(uint16_t v) {
  uint32_t sign = uint32_t(v & 0x8000u) << 16;
  uint32_t exp = (v >> 10) & 0x1fu;
  uint32_t man = v & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf, or NaN with its payload
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);  // rebias 15 -> 127
  } else if (man == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal half: normalise the mantissa into an fp32 normal.
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    bits = sign | uint32_t(112 - e) << 23 | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does when it casts fp32 to fp16; overflow becomes inf.
uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {
    // Below the smallest normal half (2^-14): a subnormal or zero. Shift the full mantissa
    // (with its implicit 1) into place, rounding to nearest even on the bits shifted out.
    if (abs < 0x33000000u) return sign;  // < 2^-25: rounds to zero
    uint32_t exp = abs >> 23;
    uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // 14..24
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t rebiased = abs - (112u << 23);  // exponent 127 -> 15
  uint32_t half = rebiased >> 13;
  uint32_t rem = rebiased & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent
  return uint16_t(sign | half);
}

namespace {

void convert_range(DType from, const std::byte* src, float* dst, size_t n) {
  switch (from) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);  // the mapping gives no alignment guarantee
        dst[i] = f16_to_f32(v);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = bf16_to_f32(v);
      }
      return;
  }
}

}  // namespace

void convert_to_f32(DType from, const void* src, float* dst, size_t n) {
  const auto* s = static_cast<const std::byte*>(src);
  // Embeddings of the big models hold ~100 M elements: spread those over the cores, since
  // reading a cold mapping is the slow part of a load.
  constexpr size_t kPerThread = size_t(1) << 22;
  size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()),
                                    (n + kPerThread - 1) / kPerThread);
  if (threads <= 1) {
    convert_range(from, s, dst, n);
    return;
  }
  size_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    size_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back(convert_range, from, s + begin * dtype_size(from), dst + begin, end - begin);
  }
  for (auto& th : pool) th.join();
}

}  // namespace mambascope
