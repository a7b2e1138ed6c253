// The `cleave` binary as a user runs it: make-model, run, and its usage errors.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_model.h"

namespace {

using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string out, err;
};

Result Cleave(const std::string& args) {
  const std::string dir = cleave::testing::MakeTempDir("cli");
  const std::string cmd = std::string(CLEAVE_CLI_PATH) + " " + args + " >" + dir + "/out 2>" +
                          dir + "/err";
  Result r;
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& path) {
    std::string s;
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
      std::array<char, 4096> buf;
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) s.append(buf.data(), n);
      std::fclose(f);
    }
    return s;
  };
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new std::string(cleave::testing::MakeTempDir("cli-model") + "/tiny");
    Result r = Cleave("make-model --preset tiny --out " + *model_ + " --seed 5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static std::string* model_;
};
std::string* CliTest::model_ = nullptr;

TEST_F(CliTest, MakeModelWritesAHuggingFaceCheckpoint) {
  EXPECT_TRUE(std::filesystem::exists(*model_ + "/config.json"));
  EXPECT_TRUE(std::filesystem::exists(*model_ + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(*model_ + "/cleave_tokenizer.json"));
}

TEST_F(CliTest, GreedyRunIsDeterministicAndEndsWithASummary) {
  const std::string args = "run --model " + *model_ + " --prompt 'Once upon' --temperature 0 " +
                           "--max-tokens 12 --ignore-eos";
  Result a = Cleave(args), b = Cleave(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_THAT(a.err, HasSubstr("generated_tokens=12"));
  EXPECT_THAT(a.err, HasSubstr("prompt_tokens=10"));  // BOS + 9 bytes
  EXPECT_THAT(a.err, HasSubstr("finish_reason=length"));
  EXPECT_THAT(a.err, HasSubstr("tokens_per_s="));
  EXPECT_THAT(a.err, HasSubstr("ttft_ms="));
}

TEST_F(CliTest, SeedReproducesSampledOutput) {
  const std::string base = "run --model " + *model_ + " --prompt hi --temperature 1 " +
                           "--max-tokens 24 --ignore-eos --seed ";
  Result a = Cleave(base + "3"), b = Cleave(base + "3"), c = Cleave(base + "4");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST_F(CliTest, BadArgumentsExitWithCode2AndAMessage) {
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"run --prompt hi", "--model is required"},
      {"run --model " + *model_, "--prompt is required"},
      {"run --model " + *model_ + " --prompt hi --top-p 1.5", "top_p"},
      {"run --model " + *model_ + " --prompt hi --temperature -1", "temperature"},
      {"run --model " + *model_ + " --prompt hi --max-tokens zero", "--max-tokens"},
      {"run --model " + *model_ + " --prompt hi --bogus 1", "unknown flag --bogus"},
      {"run --model /nonexistent/dir --prompt hi", "--model"},
      {"make-model --preset huge --out /tmp/x", "huge"},
      {"make-model --out /tmp/x", "--preset is required"},
      {"frobnicate", "unknown command"},
  };
  for (const Case& c : cases) {
    Result r = Cleave(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.args;
  }
}

}  // namespace
