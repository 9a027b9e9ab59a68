// .npy files: what the engine writes NumPy reads (the header NumPy itself writes), what NumPy
// writes the engine reads (the transformers fixtures), and bad files are refused by name.
#include "mambascope/npy.hpp"

#include <gtest/gtest.h>

#include "checkpoint_testing.hpp"
#include "hf_fixture.hpp"
#include "mambascope/error.hpp"

namespace mambascope {
namespace {

using testing::TempDir;

TEST(Npy, HeaderIsTheOneNumpyWrites) {
  const float data[6] = {1, 2, 3, 4, 5, 6};
  std::string bytes = npy_bytes(std::span<const float>(data), {2, 3});
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  size_t header_len = uint8_t(bytes[8]) | uint8_t(bytes[9]) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);  // data aligned as NumPy aligns it
  std::string dict = bytes.substr(10, header_len);
  EXPECT_EQ(dict.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u)
      << dict;
  EXPECT_EQ(dict.back(), '\n');
  EXPECT_EQ(bytes.size(), 10 + header_len + 6 * 4);
}

TEST(Npy, OneDimensionalShapeIsAOneTuple) {
  const int32_t ids[3] = {7, 8, 9};
  std::string bytes = npy_bytes(std::span<const int32_t>(ids), {3});
  EXPECT_NE(bytes.find("'descr': '<i4'"), std::string::npos);
  EXPECT_NE(bytes.find("'shape': (3,)"), std::string::npos);
}

TEST(Npy, RoundTripFloatAndIntOfEveryRank) {
  TempDir tmp;
  std::vector<float> f(24);
  for (size_t i = 0; i < f.size(); ++i) f[i] = float(i) * 0.25f - 3.0f;
  write_npy(tmp / "a.npy", std::span<const float>(f), {2, 3, 4});
  NpyArray a = read_npy(tmp / "a.npy");
  EXPECT_EQ(a.type, NpyArray::Type::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(a.f32, f);

  std::vector<int32_t> i = {-5, 0, 2147483647};
  write_npy(tmp / "b.npy", std::span<const int32_t>(i), {3});
  NpyArray b = read_npy(tmp / "b.npy");
  EXPECT_EQ(b.type, NpyArray::Type::I32);
  EXPECT_EQ(b.i32, i);

  const float scalar = 42.0f;
  write_npy(tmp / "c.npy", std::span<const float>(&scalar, 1), {});
  NpyArray c = read_npy(tmp / "c.npy");
  EXPECT_TRUE(c.shape.empty());
  EXPECT_EQ(c.numel(), 1);
  EXPECT_EQ(c.f32.at(0), 42.0f);

  write_npy(tmp / "d.npy", std::span<const float>(), {0, 5});
  EXPECT_EQ(read_npy(tmp / "d.npy").numel(), 0);
}

TEST(Npy, ReadsTheNumpyWrittenFixtures) {
  NpyArray ids = read_npy(testing::hf_fixtures_dir() / "long_500" / "input_ids.npy");
  EXPECT_EQ(ids.type, NpyArray::Type::I32);
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{500}));
  NpyArray logits = read_npy(testing::hf_fixtures_dir() / "long_500" / "logits.npy");
  EXPECT_EQ(logits.type, NpyArray::Type::F32);
  EXPECT_EQ(logits.shape, (std::vector<int64_t>{500, 256}));
  for (int32_t id : ids.i32) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 256);
  }
}

// A hand-made file: NumPy's header for `descr` and `shape`, then raw bytes.
std::string numpy_file(const std::string& descr, const std::string& shape, const std::string& data,
                       const std::string& fortran = "False") {
  std::string dict =
      "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(dict.size() & 0xff);
  out += char(dict.size() >> 8);
  return out + dict + data;
}

TEST(Npy, Int64AndFloat64AreNarrowed) {
  int64_t v[2] = {3, -4};
  NpyArray a =
      parse_npy(numpy_file("<i8", "(2,)", std::string(reinterpret_cast<char*>(v), 16)), "x.npy");
  EXPECT_EQ(a.type, NpyArray::Type::I32);
  EXPECT_EQ(a.i32, (std::vector<int32_t>{3, -4}));
  double d[1] = {0.5};
  NpyArray b =
      parse_npy(numpy_file("<f8", "(1, 1)", std::string(reinterpret_cast<char*>(d), 8)), "y.npy");
  EXPECT_EQ(b.f32, (std::vector<float>{0.5f}));
  int64_t big[1] = {int64_t(1) << 40};
  EXPECT_THROW(
      parse_npy(numpy_file("<i8", "(1,)", std::string(reinterpret_cast<char*>(big), 8)), "z.npy"),
      Error);
}

void expect_npy_error(const std::string& bytes, const std::string& part) {
  try {
    parse_npy(bytes, "bad.npy");
    ADD_FAILURE() << "accepted a bad file; expected an error about " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos) << e.what();
  }
}

TEST(Npy, BadFilesAreRefusedByName) {
  expect_npy_error("PK\x03\x04 not numpy", "magic");
  expect_npy_error(numpy_file(">f4", "(1,)", std::string(4, '\0')), ">f4");
  expect_npy_error(numpy_file("<c8", "(1,)", std::string(8, '\0')), "<c8");
  expect_npy_error(numpy_file("<f4", "(2, 2)", std::string(16, '\0'), "True"), "Fortran");
  expect_npy_error(numpy_file("<f4", "(2, 2)", std::string(12, '\0')), "truncated");
  expect_npy_error(numpy_file("<f4", "(2, x)", std::string(8, '\0')), "shape");
  expect_npy_error(std::string("\x93NUMPY\x01\x00\xff\x00{", 11), "truncated");
}

TEST(Npy, WriteRejectsAShapeThatDisagreesWithTheData) {
  const float data[4] = {};
  EXPECT_THROW(npy_bytes(std::span<const float>(data), {3}), Error);
  TempDir tmp;
  EXPECT_THROW(write_npy(tmp / "missing-dir" / "x.npy", std::span<const float>(data), {4}), Error);
}

}  // namespace
}  // namespace mambascope
