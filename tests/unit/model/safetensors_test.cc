#include "engine/model/safetensors.h"

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string LittleEndian64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i, v >>= 8) s[i] = static_cast<char>(v & 0xff);
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/cleave-safetensors-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteRaw(const std::string& bytes) {
    const std::string path = dir_ + "/f" + std::to_string(counter_++) + ".safetensors";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  // A file from header text and a data section of `data_bytes` bytes.
  std::string WriteFile(const std::string& header, size_t data_bytes) {
    return WriteRaw(LittleEndian64(header.size()) + header + std::string(data_bytes, '\x11'));
  }
  // Expects Open to fail with every fragment in the message (the path always included).
  void ExpectRejected(const std::string& path, const std::vector<std::string>& fragments) {
    auto f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << path;
    EXPECT_THAT(f.status().message(), HasSubstr(path));
    for (const std::string& frag : fragments) {
      EXPECT_THAT(f.status().message(), HasSubstr(frag));
    }
  }

  std::string dir_;
  int counter_ = 0;
};

TEST_F(SafetensorsTest, ReadsAHandWrittenFile) {
  const float values[3] = {1.5f, -2.0f, 3.25f};
  const uint16_t half[2] = {0x3c00, 0xc000};  // fp16 1.0, -2.0
  std::string data(reinterpret_cast<const char*>(values), 12);
  data.append(reinterpret_cast<const char*>(half), 4);
  const std::string header = R"({"__metadata__": {"format": "pt"},)"
                             R"( "w": {"dtype": "F32", "shape": [3, 1], "data_offsets": [0, 12]},)"
                             R"( "h": {"dtype": "F16", "shape": [2], "data_offsets": [12, 16]},)"
                             R"( "s": {"dtype": "I64", "shape": [0], "data_offsets": [16, 16]}})";
  const std::string path = WriteRaw(LittleEndian64(header.size()) + header + data);
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->names(), (std::vector<std::string>{"w", "h", "s"}));  // file order
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  auto w = (*f)->Get("w");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->dtype, DType::kF32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(w->numel(), 3);
  ASSERT_EQ(w->nbytes, 12u);
  float got[3];
  std::memcpy(got, w->data, 12);
  EXPECT_EQ(got[0], 1.5f);
  EXPECT_EQ(got[2], 3.25f);
  auto h = (*f)->Get("h");
  ASSERT_TRUE(h.ok());
  float hf[2];
  ConvertToF32(h->dtype, h->data, 2, hf);
  EXPECT_EQ(hf[0], 1.0f);
  EXPECT_EQ(hf[1], -2.0f);
  EXPECT_EQ((*f)->Find("s")->numel(), 0);
  auto missing = (*f)->Get("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope"));
}

TEST_F(SafetensorsTest, RejectsTruncatedFiles) {
  ExpectRejected(WriteRaw(""), {"truncated"});
  ExpectRejected(WriteRaw("\x10\x00\x00"), {"truncated"});
  // A valid file cut inside its data section: the tensor now runs past the end.
  const std::string header = R"({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})";
  const std::string full = LittleEndian64(header.size()) + header + std::string(16, '\0');
  ASSERT_TRUE(SafetensorsFile::Open(WriteRaw(full)).ok());
  ExpectRejected(WriteRaw(full.substr(0, full.size() - 5)), {"'t'", "out of bounds"});
  // ... and cut inside its header.
  ExpectRejected(WriteRaw(full.substr(0, 20)), {"header length"});
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOrOverTheCap) {
  ExpectRejected(WriteRaw(LittleEndian64(1000) + "{}"), {"header length 1000", "past the end"});
  ExpectRejected(WriteRaw(LittleEndian64(~uint64_t{0}) + "{}"), {"exceeds the limit"});
  ExpectRejected(WriteRaw(LittleEndian64(kMaxSafetensorsHeaderBytes + 1) + "{}"),
                 {"exceeds the limit"});
  ExpectRejected(WriteRaw(LittleEndian64(0) + "{}"), {"empty header"});
}

TEST_F(SafetensorsTest, RejectsMalformedHeaderJson) {
  ExpectRejected(WriteFile(R"({"t": {"dtype": "F32", )", 0), {"malformed header JSON"});
  ExpectRejected(WriteFile("[1, 2]", 0), {"want an object"});
  ExpectRejected(WriteFile(R"({"t": 5})", 0), {"'t'", "not an object"});
  ExpectRejected(WriteFile(R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", 4),
                 {"'t'", "dtype"});
  ExpectRejected(WriteFile(R"({"t": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
                 {"'t'", "shape"});
  ExpectRejected(WriteFile(R"({"t": {"dtype": "F32", "shape": [1]}})", 4), {"'t'", "data_offsets"});
  ExpectRejected(WriteFile(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
                 {"'t'", "data_offsets"});
  ExpectRejected(WriteFile(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4),
                 {"'t'", "data_offsets"});
  ExpectRejected(WriteFile(R"({"__metadata__": {"format": 1}})", 0), {"__metadata__"});
  ExpectRejected(WriteFile(R"({"__metadata__": [1]})", 0), {"__metadata__"});
}

TEST_F(SafetensorsTest, RejectsUnknownDtypeAndBadShapes) {
  ExpectRejected(
      WriteFile(R"({"q": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4),
      {"'q'", "F8_E4M3"});
  ExpectRejected(
      WriteFile(R"({"q": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}})", 16),
      {"'q'", "shape"});
  ExpectRejected(WriteFile(R"({"q": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8),
                 {"'q'", "shape"});
  // numel * 4 wraps around 64 bits: must be caught, not turned into a small size.
  ExpectRejected(WriteFile(R"({"q": {"dtype": "F32", "shape": [4294967296, 4294967296],)"
                           R"( "data_offsets": [0, 0]}})",
                           0),
                 {"'q'", "overflow"});
}

TEST_F(SafetensorsTest, RejectsOffsetsOutOfBoundsAndSizeMismatch) {
  ExpectRejected(
      WriteFile(R"({"big": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})", 16),
      {"'big'", "out of bounds"});
  ExpectRejected(
      WriteFile(R"({"rev": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 16),
      {"'rev'", "out of bounds"});
  ExpectRejected(WriteFile(R"({"m": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}})", 8),
                 {"'m'", "span 8 bytes", "needs 6"});
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  ExpectRejected(WriteFile(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                           R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                           16),
                 {"overlaps", "'a'", "'b'"});
  // A tensor nested inside a longer one that starts earlier, with a third in between.
  ExpectRejected(WriteFile(R"({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},)"
                           R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},)"
                           R"( "c": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]}})",
                           32),
                 {"overlaps"});
  // Adjacent tensors and empty ones are fine.
  auto ok = SafetensorsFile::Open(
      WriteFile(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                R"( "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]},)"
                R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                16));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(SafetensorsTest, RejectsDirectoriesAndMissingFiles) {
  auto f = SafetensorsFile::Open(dir_);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("not a regular file"));
  f = SafetensorsFile::Open(dir_ + "/absent.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}

// Random garbage must never crash the reader (it is a parser of untrusted input).
TEST_F(SafetensorsTest, SurvivesRandomCorruption) {
  const std::string header = R"({"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},)"
                             R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}})";
  const std::string good = LittleEndian64(header.size()) + header + std::string(20, '\x01');
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 3 == 0) bytes.resize(rng() % bytes.size());
    rejected += SafetensorsFile::Open(WriteRaw(bytes)).ok() ? 0 : 1;
  }
  EXPECT_GT(rejected, 0);
}

class SafetensorsRoundTripTest : public SafetensorsTest,
                                 public ::testing::WithParamInterface<DType> {};

TEST_P(SafetensorsRoundTripTest, WriterOutputReadsBackBitExact) {
  const DType dtype = GetParam();
  const size_t esize = DTypeSize(dtype);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const std::vector<TensorSpec> specs = {
      {"model.embed.weight", dtype, {37, 5}},
      {"scalar", dtype, {}},
      {"empty", dtype, {0}},
      {"model.norm.weight", dtype, {11}},
  };
  std::vector<std::string> payloads;
  for (const TensorSpec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    std::vector<float> f(n);
    for (float& v : f) v = normal(rng);
    std::string bytes(n * esize, '\0');
    ConvertFromF32(f.data(), n, dtype, bytes.data());
    payloads.push_back(bytes);
  }
  const std::string path = dir_ + "/rt.safetensors";
  auto w = SafetensorsWriter::Create(path, specs, {{"format", "pt"}, {"seed", "7"}});
  ASSERT_TRUE(w.ok()) << w.status();
  for (size_t i = 0; i < specs.size(); ++i) {
    // Uneven chunks, to exercise partial appends.
    for (size_t off = 0; off < payloads[i].size();) {
      const size_t n = std::min<size_t>(payloads[i].size() - off, 1 + rng() % 23);
      ASSERT_TRUE((*w)->Append(specs[i].name, payloads[i].data() + off, n).ok());
      off += n;
    }
  }
  const uint64_t expected_size = (*w)->total_bytes();
  ASSERT_TRUE((*w)->Finish().ok());

  const std::string raw = ReadAll(path);
  EXPECT_EQ(raw.size(), expected_size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(raw[i]);
  EXPECT_EQ((8 + header_len) % 8, 0u) << "data section must start 8-byte aligned";
  const std::string header = raw.substr(8, header_len);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padding is spaces only
  const Json j = Json::parse(header);
  EXPECT_EQ(j["model.embed.weight"]["dtype"], std::string(DTypeName(dtype)));

  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->metadata().at("seed"), "7");
  EXPECT_EQ((*f)->names().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    auto t = (*f)->Get(specs[i].name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->dtype, dtype);
    EXPECT_EQ(t->shape, specs[i].shape);
    ASSERT_EQ(t->nbytes, payloads[i].size());
    EXPECT_EQ(std::memcmp(t->data, payloads[i].data(), t->nbytes), 0) << specs[i].name;
  }
  EXPECT_EQ((*f)->Find("scalar")->numel(), 1);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SafetensorsRoundTripTest,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST_F(SafetensorsTest, WriterRejectsMisuse) {
  const std::string path = dir_ + "/misuse.safetensors";
  EXPECT_FALSE(
      SafetensorsWriter::Create(path, {{"a", DType::kF32, {1}}, {"a", DType::kF32, {1}}}).ok());
  EXPECT_FALSE(SafetensorsWriter::Create(path, {{"__metadata__", DType::kF32, {1}}}).ok());
  EXPECT_FALSE(SafetensorsWriter::Create(path, {{"neg", DType::kF32, {-2}}}).ok());
  EXPECT_FALSE(SafetensorsWriter::Create(dir_ + "/no/such/dir/x.safetensors", {}).ok());

  auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {2}}, {"b", DType::kBF16, {2}}});
  ASSERT_TRUE(w.ok()) << w.status();
  const char bytes[16] = {};
  auto st = (*w)->Append("b", bytes, 4);  // out of order
  EXPECT_THAT(st.message(), HasSubstr("'a'"));
  st = (*w)->Append("a", bytes, 12);  // past the end of a
  EXPECT_THAT(st.message(), HasSubstr("runs past"));
  ASSERT_TRUE((*w)->Append("a", bytes, 8).ok());
  st = (*w)->Finish();  // b is still owed
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("'b'"));
  ASSERT_TRUE((*w)->Append("b", bytes, 4).ok());
  EXPECT_FALSE((*w)->Append("b", bytes, 1).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_TRUE(SafetensorsFile::Open(path).ok());
}

}  // namespace
}  // namespace cleave
