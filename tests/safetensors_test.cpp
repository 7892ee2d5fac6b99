#include "format/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

namespace qdm {
namespace {

std::vector<uint8_t> sample_file() {
  SafeTensorsWriter w;
  const float a[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t b[2] = {0x3c00, 0xc000};  // F16 1.0, -2.0
  const uint8_t c[3] = {7, 8, 9};
  w.add("a", DType::F32, {2, 3}, a, sizeof a);
  w.add("b.half", DType::F16, {2}, b, sizeof b);
  w.add("c", DType::U8, {3}, c, sizeof c);
  w.set_metadata("format", "pt");
  return w.serialize();
}

// A file from a hand-written header and data section.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    SafeTensors::parse(bytes);
  } catch (const SafeTensorsError& e) {
    return e.what();
  }
  return "";
}

TEST(SafeTensors, RoundTripKeepsDataShapesAndMetadata) {
  const SafeTensors st = SafeTensors::parse(sample_file());
  ASSERT_EQ(st.tensors().size(), 3u);
  const TensorInfo& a = st.at("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  float back[6];
  std::memcpy(back, st.data(a), sizeof back);
  EXPECT_EQ(back[5], 6.0f);
  EXPECT_EQ(st.at("b.half").dtype, DType::F16);
  EXPECT_EQ(st.data(st.at("c"))[2], 9);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  EXPECT_EQ(st.find("nope"), nullptr);
}

TEST(SafeTensors, DataSectionIsAligned) {
  const auto bytes = sample_file();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(SafeTensors, RejectsWrongOffsetsNamingTheTensor) {
  auto e = parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", 12));
  EXPECT_NE(e.find("tensor 'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("needs 8 bytes"), std::string::npos) << e;
}

TEST(SafeTensors, RejectsOverlap) {
  auto e = parse_error(raw_file(
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  EXPECT_NE(e.find("overlaps"), std::string::npos) << e;
}

TEST(SafeTensors, RejectsGapsAndTrailingBytes) {
  auto gap = parse_error(raw_file(R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 4));
  EXPECT_NE(gap.find("gap of 2 bytes before tensor 'x'"), std::string::npos) << gap;
  auto tail = parse_error(raw_file(R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 5));
  EXPECT_NE(tail.find("3 bytes after the last tensor"), std::string::npos) << tail;
}

TEST(SafeTensors, RejectsTruncatedData) {
  auto e = parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 10));
  EXPECT_NE(e.find("tensor 'x'"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(SafeTensors, RejectsUnknownDtype) {
  auto e = parse_error(raw_file(R"({"x":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", 1));
  EXPECT_NE(e.find("unknown dtype 'F8_E9'"), std::string::npos) << e;
}

TEST(SafeTensors, RejectsOversizeAndTruncatedHeader) {
  std::vector<uint8_t> big(16, 0);
  const uint64_t n = SafeTensors::kMaxHeaderBytes + 1;
  for (int i = 0; i < 8; ++i) big[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  EXPECT_NE(parse_error(big).find("exceeds the limit"), std::string::npos);
  auto bytes = sample_file();
  bytes.resize(20);
  EXPECT_NE(parse_error(bytes).find("runs past the end of the file"), std::string::npos);
  EXPECT_NE(parse_error({1, 2, 3}).find("too short"), std::string::npos);
}

TEST(SafeTensors, RejectsBadJsonAndBadFields) {
  EXPECT_NE(parse_error(raw_file("{not json", 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(raw_file("[1,2]", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)).find("non-negative"),
            std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[1]}})", 4)).find("data_offsets"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"__metadata__":{"k":1}})", 0)).find("metadata 'k'"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,0]}})", 0))
                .find("too large"),
            std::string::npos);
}

TEST(SafeTensors, WriterRejectsSizeMismatchAndDuplicates) {
  SafeTensorsWriter w;
  const float a[2] = {1, 2};
  EXPECT_THROW(w.add("a", DType::F32, {3}, a, sizeof a), SafeTensorsError);
  w.add("a", DType::F32, {2}, a, sizeof a);
  EXPECT_THROW(w.add("a", DType::F32, {2}, a, sizeof a), SafeTensorsError);
}

// Fuzz-style: random corruptions of a valid file either parse into something self-consistent
// or throw SafeTensorsError; nothing crashes and nothing reads outside the buffer (run under
// ASan/valgrind to check the latter).
TEST(SafeTensors, CorruptedFilesNeverCrash) {
  const auto good = sample_file();
  std::mt19937 rng(1234);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    auto bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 3) {
        case 0: bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng()); break;
        case 1: bytes.resize(rng() % (bytes.size() + 1)); break;
        case 2: bytes.insert(bytes.begin() + static_cast<long>(rng() % (bytes.size() + 1)), static_cast<uint8_t>(rng())); break;
      }
      if (bytes.empty()) break;
    }
    try {
      const SafeTensors st = SafeTensors::parse(bytes);
      for (const auto& t : st.tensors()) {
        ASSERT_LE(t.end, st.file_bytes());
        ASSERT_EQ(t.nbytes(), static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype));
      }
      ++parsed;
    } catch (const SafeTensorsError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 4000);
  EXPECT_GT(parsed, 0);  // edits inside tensor data leave a valid file
}

TEST(SafeTensors, EveryTruncationIsRejected) {
  const auto good = sample_file();
  for (size_t len = 0; len < good.size(); ++len) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<long>(len));
    EXPECT_THROW(SafeTensors::parse(cut), SafeTensorsError) << "length " << len;
  }
}

}  // namespace
}  // namespace qdm
