// Finding libcleave_sentencepiece.so, and the errors when it is not there. Nothing here
// loads the module successfully: a loaded module is kept for the life of the process,
// which would hide every later failure (the other tokenizer tests load it).
#include <stdlib.h>

#include <string>

#include "engine/tokenizer/sentencepiece_tokenizer.h"
#include "engine/tokenizer/sp_processor.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/temp_dir.h"

namespace cleave {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Sets the override for one test and restores the environment after it.
class ScopedModuleOverride {
 public:
  explicit ScopedModuleOverride(const std::string& path) {
    setenv(spm::kModuleEnvVar, path.c_str(), /*overwrite=*/1);
  }
  ~ScopedModuleOverride() { unsetenv(spm::kModuleEnvVar); }
};

TEST(SentencePieceModuleTest, SearchPath) {
  unsetenv(spm::kModuleEnvVar);
  const std::vector<std::string> paths = spm::ModuleSearchPath();
  // Beside this test binary, then the build tree's module, compiled in.
  EXPECT_THAT(paths, ElementsAre(std::string(CLEAVE_TEST_BINARY_DIR "/") + spm::kModuleFileName,
                                 CLEAVE_SENTENCEPIECE_MODULE_FILE));
  ScopedModuleOverride override("/opt/elsewhere/libcleave_sentencepiece.so");
  EXPECT_THAT(spm::ModuleSearchPath(), ElementsAre("/opt/elsewhere/libcleave_sentencepiece.so"));
}

TEST(SentencePieceModuleTest, MissingModuleIsANamedError) {
  const std::string missing = "/nonexistent/dir/libcleave_sentencepiece.so";
  ScopedModuleOverride override(missing);
  testing::TempDir dir;
  dir.Write("tokenizer.model", "anything: the module is needed before the file is read");
  auto tok = LoadTokenizer(dir.path());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(missing + " (no such file)"));
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(spm::kModuleEnvVar));
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("tokenizer.model"));

  auto from_proto = SentencePieceTokenizer::FromSerializedProto("");
  ASSERT_FALSE(from_proto.ok());
  EXPECT_THAT(std::string(from_proto.status().message()), HasSubstr(missing));
  EXPECT_FALSE(spm::ModulePath().ok());
}

TEST(SentencePieceModuleTest, AFileThatIsNoModuleIsANamedError) {
  testing::TempDir dir;
  dir.Write("libcleave_sentencepiece.so", "not an ELF file");
  const std::string bogus = dir.path() + "/libcleave_sentencepiece.so";
  ScopedModuleOverride override(bogus);
  const absl::StatusOr<std::string> path = spm::ModulePath();
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(path.status().message()), HasSubstr(bogus + " ("));
}

TEST(SentencePieceModuleTest, ALibraryWithoutTheEntryPointIsRefused) {
  // Any shared object will do; libc is always there.
  ScopedModuleOverride override("libc.so.6");
  const absl::StatusOr<std::string> path = spm::ModulePath();
  ASSERT_FALSE(path.ok());
  EXPECT_THAT(std::string(path.status().message()), HasSubstr("not a cleave SentencePiece module"));
}

}  // namespace
}  // namespace cleave
