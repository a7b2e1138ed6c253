// `cleave up` and `cleave generate` as a user runs them: a local cluster from a YAML spec,
// a request through it, a clean stop on SIGTERM, and usage errors.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/util/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/cluster.h"

namespace {

using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `cleave ARGS` through the shell (for separate stdout and stderr), bounded.
Result Cleave(const std::string& args, absl::Duration timeout = absl::Seconds(240)) {
  const std::string dir = cleave::testing::MakeScratchDir("up-cli");
  cleave::SubprocessOptions options;
  options.argv = {
      "/bin/sh", "-c",
      absl::StrCat("exec ", CLEAVE_CLI_PATH, " ", args, " >", dir, "/out 2>", dir, "/err")};
  auto child = cleave::Subprocess::Spawn(options);
  Result r;
  if (!child.ok()) {
    r.err = child.status().ToString();
    return r;
  }
  auto status = (*child)->WaitFor(timeout);
  r.exit_code = status.ok() ? *status : -1;
  r.out = Slurp(dir + "/out");
  r.err = Slurp(dir + "/err");
  if (!status.ok()) r.err += "\n(test: timed out)";
  return r;
}

std::string WriteFile(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// The service targets are dependencies of this test, so they are missing only in a tree
// that does not define them yet.
#define SKIP_WITHOUT_SERVICES()                                                          \
  if (!cleave::launch::ServiceBinaries::InBuildDir(cleave::testing::BinaryDir()).ok()) { \
    GTEST_SKIP() << "service binaries not built under " << cleave::testing::BinaryDir(); \
  }

class ClusterUpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(cleave::testing::MakeScratchDir("up"));
    const std::string model = *dir_ + "/tiny";
    Result r = Cleave("make-model --preset tiny --out " + model + " --seed 3");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    spec_ = new std::string(WriteFile(*dir_, "1p1d.yaml",
                                      "model: " + model +
                                          "\n"
                                          "router:\n  policy: round_robin\n"
                                          "prefill:\n  replicas: 1\n  kv_cache_mib: 32\n"
                                          "decode:\n  replicas: 1\n  kv_cache_mib: 32\n"));
  }

  static std::string* dir_;
  static std::string* spec_;
};
std::string* ClusterUpTest::dir_ = nullptr;
std::string* ClusterUpTest::spec_ = nullptr;

TEST_F(ClusterUpTest, RunsACommandAgainstTheClusterAndExitsWithItsStatus) {
  SKIP_WITHOUT_SERVICES();
  Result r = Cleave("up --config " + *spec_ + " --log-dir " + *dir_ +
                    "/logs-a -- cleave generate --prompt 'Once upon' --max-tokens 12 "
                    "--temperature 0 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cleave up: ready router=127.0.0.1:"));
  EXPECT_TRUE(std::regex_search(
      r.err,
      std::regex("ready router=\\S+ metrics router=[0-9]+ prefill-0=[0-9]+ decode-0=[0-9]+")))
      << r.err;
  EXPECT_THAT(r.err, HasSubstr("[cleave generate] prompt_tokens=10 completion_tokens=12"));
  EXPECT_THAT(r.err, HasSubstr("finish_reason=length prefill=prefill-0 decode=decode-0"));
  EXPECT_THAT(r.err, HasSubstr("cleave up: stopped"));
  EXPECT_GT(r.out.size(), 1u);  // the generated text and a newline

  Result env = Cleave("up --config " + *spec_ + " --log-dir " + *dir_ +
                      "/logs-b -- /bin/sh -c 'test -n \"$CLEAVE_ROUTER\" && exit 3'");
  EXPECT_EQ(env.exit_code, 3) << env.err;
}

// The pids `cleave up` printed for its children ("started NAME pid=N ...").
std::vector<int> ChildPids(const std::string& log) {
  std::vector<int> pids;
  static const std::regex re("cleave up: started \\S+ pid=([0-9]+)");
  for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) {
    int pid;
    if (absl::SimpleAtoi((*it)[1].str(), &pid)) pids.push_back(pid);
  }
  return pids;
}

// Pids of live processes whose parent is `parent`.
std::vector<int> ProcessesWithParent(int parent) {
  std::vector<int> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int pid;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    const std::string stat = Slurp(entry.path().string() + "/stat");
    // pid (comm) state ppid ...; comm may hold spaces, so parse after the last ')'.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(pid);
  }
  return out;
}

TEST_F(ClusterUpTest, SigtermStopsTheWholeClusterAndReapsEveryChild) {
  SKIP_WITHOUT_SERVICES();
  const std::string log = *dir_ + "/up-sigterm.log";
  cleave::SubprocessOptions options;
  options.argv = {CLEAVE_CLI_PATH, "up", "--config", *spec_, "--log-dir", *dir_ + "/logs-c"};
  options.log_path = log;
  auto up = cleave::Subprocess::Spawn(options);
  ASSERT_TRUE(up.ok()) << up.status();

  const absl::Time deadline = absl::Now() + absl::Seconds(150);
  while (Slurp(log).find("cleave up: ready") == std::string::npos) {
    ASSERT_TRUE((*up)->Running()) << Slurp(log);
    ASSERT_LT(absl::Now(), deadline) << Slurp(log);
    absl::SleepFor(absl::Milliseconds(100));
  }
  const std::vector<int> pids = ChildPids(Slurp(log));
  ASSERT_EQ(pids.size(), 3u) << Slurp(log);  // router, prefill-0, decode-0
  std::vector<int> children = ProcessesWithParent((*up)->pid());
  std::sort(children.begin(), children.end());
  std::vector<int> sorted = pids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(children, sorted);

  ASSERT_TRUE((*up)->Signal(SIGTERM).ok());
  auto status = (*up)->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(status.ok()) << "cleave up did not stop within 60 s\n" << Slurp(log);
  EXPECT_EQ(*status, 0) << Slurp(log);
  EXPECT_THAT(Slurp(log), HasSubstr("cleave up: stopped"));
  for (int pid : pids) {
    EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)))
        << "child " << pid << " outlived cleave up";
  }
}

TEST_F(ClusterUpTest, UsageErrorsExitWith2AndNameTheKey) {
  const std::string model = *dir_ + "/tiny";
  struct Case {
    std::string spec, message;  // an empty message: the error names the file
  };
  const std::vector<Case> cases = {
      {"model: " + model + "\nprefil:\n  replicas: 1\n", "prefil: unknown key"},
      {"model: " + model + "\nprefill:\n  replicas: two\ndecode:\n  replicas: 1\n",
       "prefill.replicas"},
      {"prefill:\n  replicas: 1\ndecode:\n  replicas: 1\n", "model: missing"},
      {"model: /nonexistent/model\nprefill:\n  replicas: 1\ndecode:\n  replicas: 1\n", "model:"},
      {"model: " + model +
           "\nrouter:\n  policy: random\nprefill:\n  replicas: 1\n"
           "decode:\n  replicas: 1\n",
       "router.policy"},
      {"model: " + model +
           "\nprefill:\n  replicas: 1\n  kv_cache_mib: -4\ndecode:\n  replicas: 1\n",
       "prefill.kv_cache_mib"},
      {"model: " + model + "\nprefill:\n  replicas: 1\n", "decode.replicas"},
      {"model: " + model + "\nprefill: [1, 2\n", ""},  // not even YAML
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string path = WriteFile(*dir_, absl::StrCat("bad-", i++, ".yaml"), c.spec);
    Result r = Cleave("up --config " + path);
    EXPECT_EQ(r.exit_code, 2) << c.spec << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message.empty() ? path : c.message)) << c.spec;
  }
  Result no_config = Cleave("up");
  EXPECT_EQ(no_config.exit_code, 2);
  EXPECT_THAT(no_config.err, HasSubstr("--config is required"));
  Result missing = Cleave("up --config " + *dir_ + "/absent.yaml");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("absent.yaml"));
}

TEST_F(ClusterUpTest, GenerateUsageErrors) {
  Result no_router = Cleave("generate --prompt hi");
  EXPECT_EQ(no_router.exit_code, 2);
  EXPECT_THAT(no_router.err, HasSubstr("--router is required"));
  Result bad = Cleave("generate --router 127.0.0.1:1 --prompt hi --top-p 1.5");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("top_p"));
  Result both =
      Cleave("generate --router 127.0.0.1:1 --requests 2 --prompt hi --prompt-len-range 4:8");
  EXPECT_EQ(both.exit_code, 2);
  // Nothing listens there: a gRPC error, reported with its code, exit 1.
  Result down =
      Cleave(absl::StrCat("generate --router 127.0.0.1:", cleave::PickFreePort(), " --prompt hi"));
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_THAT(down.err, HasSubstr("UNAVAILABLE"));
}

}  // namespace
