// Half-precision storage: fp16 and bf16 convert to fp32 exactly, and fp32 rounds back the way
// torch rounds (nearest, ties to even), including subnormals, infinities and NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "mambascope/dtype.hpp"

namespace mambascope {
namespace {

TEST(DType, NamesAreTheSafetensorsSpelling) {
  EXPECT_EQ(dtype_name(DType::F32), "F32");
  EXPECT_EQ(dtype_name(DType::F16), "F16");
  EXPECT_EQ(dtype_name(DType::BF16), "BF16");
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(DType, EveryF16ValueRoundTripsThroughF32) {
  for (uint32_t v = 0; v < 0x10000; ++v) {
    float f = f16_to_f32(uint16_t(v));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << v;
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), uint16_t(v)) << "half 0x" << std::hex << v;
  }
}

TEST(DType, F32ToF16RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to even (1).
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3*2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): up.
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);               // below the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);               // overflows to inf
  EXPECT_EQ(f32_to_f16(1e-8f), 0x0000);                  // below half the smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // exactly half: ties to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie: to even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie: to even (up)
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, ConvertToF32HandlesUnalignedSourcesAndLargeArrays) {
  // 5 M elements take the multi-threaded path; the source starts at an odd address.
  const size_t n = 5'000'000;
  std::vector<unsigned char> raw(2 * n + 1);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = f32_to_f16(float(i % 2048) - 1024.0f);
    std::memcpy(&raw[1 + 2 * i], &h, 2);
  }
  std::vector<float> out(n);
  convert_to_f32(DType::F16, raw.data() + 1, out.data(), n);
  for (size_t i = 0; i < n; i += 997) ASSERT_EQ(out[i], float(i % 2048) - 1024.0f) << i;
  EXPECT_EQ(out[n - 1], float((n - 1) % 2048) - 1024.0f);

  std::vector<unsigned char> braw(2 * 3 + 1);
  const float vals[3] = {0.5f, -3.0f, 1024.0f};
  for (int i = 0; i < 3; ++i) {
    uint16_t b = f32_to_bf16(vals[i]);
    std::memcpy(&braw[1 + 2 * size_t(i)], &b, 2);
  }
  float bout[3];
  convert_to_f32(DType::BF16, braw.data() + 1, bout, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bout[i], vals[i]);
}

}  // namespace
}  // namespace mambascope
