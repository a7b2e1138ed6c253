// The process that used to abort: libprotobuf 3.21 (cleave's gRPC messages, through
// cleave_proto) and a SentencePiece tokenizer.model read with LoadTokenizer. This binary
// links no libsentencepiece; its fixture model is trained at build time by
// cleave_sp_train, and the library arrives only inside libcleave_sentencepiece.so.
#include <link.h>

#include <cstring>
#include <string>
#include <vector>

#include "cleave/v1/generation.pb.h"
#include "engine/tokenizer/sp_processor.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

bool LibSentencePieceLoaded() {
  return dl_iterate_phdr(
             [](dl_phdr_info* info, size_t, void*) {
               return std::strstr(info->dlpi_name, "/libsentencepiece.so") != nullptr ? 1 : 0;
             },
             nullptr) != 0;
}

// Serializes and parses a request, and prints it through full (non-lite) reflection.
void ExpectProtobufWorks(const std::vector<int>& ids) {
  v1::GenerateRequest request;
  request.set_request_id("isolation");
  for (int id : ids) request.mutable_token_ids()->add_ids(id);
  request.mutable_sampling()->set_temperature(0.5f);
  request.mutable_sampling()->add_stop("\n\n");
  request.set_timeout_ms(1000);
  std::string wire;
  ASSERT_TRUE(request.SerializeToString(&wire));
  v1::GenerateRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(request, parsed));
  EXPECT_THAT(parsed.DebugString(), HasSubstr("request_id: \"isolation\""));
  EXPECT_EQ(parsed.GetDescriptor()->full_name(), "cleave.v1.GenerateRequest");
}

TEST(SentencePieceIsolationTest, ProtobufAndATokenizerModelInOneProcess) {
  EXPECT_FALSE(LibSentencePieceLoaded())
      << "libsentencepiece is linked into this binary; only the module may load it";
  ExpectProtobufWorks({1, 2, 3});

  auto tok = LoadTokenizer(CLEAVE_SP_FIXTURE_DIR);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->kind(), "sentencepiece");
  EXPECT_EQ((*tok)->vocab_size(), 300);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  for (const std::string text : {"hi", "the experts said hello world.", "caf\xC3\xA9 12345",
                                 "unseen \xF0\x9F\x98\x80 emoji"}) {
    const std::vector<int> ids = (*tok)->Encode(text, /*add_bos=*/true);
    ASSERT_GE(ids.size(), 2u) << text;
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ((*tok)->Decode(ids), text);
    ExpectProtobufWorks(ids);
  }

  EXPECT_TRUE(LibSentencePieceLoaded());
  const absl::StatusOr<std::string> module = spm::ModulePath();
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_THAT(*module, EndsWith(std::string("/") + spm::kModuleFileName));
}

}  // namespace
}  // namespace cleave
