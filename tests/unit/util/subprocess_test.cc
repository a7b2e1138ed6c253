#include "engine/util/subprocess.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Subprocess> Start(std::vector<std::string> argv, SubprocessOptions options = {}) {
  options.argv = std::move(argv);
  auto p = Subprocess::Spawn(options);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(getpid()) + ".log"))
      .string();
}

// Gone, or a zombie nobody reaped yet: either way it no longer runs.
bool Dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t close = all.rfind(')');
  return close != std::string::npos && close + 2 < all.size() && all[close + 2] == 'Z';
}

TEST(SubprocessTest, ReportsExitCodes) {
  auto ok = Start({"true"});
  EXPECT_EQ(*ok->WaitFor(absl::Seconds(10)), 0);
  auto seven = Start({"/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(*seven->WaitFor(absl::Seconds(10)), 7);
  EXPECT_FALSE(seven->Running());
  EXPECT_EQ(seven->exit_status(), 7);
  EXPECT_EQ(DescribeExitStatus(7), "exit code 7");
}

TEST(SubprocessTest, SignalsAndTimeouts) {
  auto sleeper = Start({"sleep", "30"});
  EXPECT_TRUE(sleeper->Running());
  auto early = sleeper->WaitFor(absl::Milliseconds(50));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(sleeper->Signal(SIGKILL).ok());
  auto status = sleeper->WaitFor(absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, 128 + SIGKILL);
  EXPECT_EQ(DescribeExitStatus(*status), "killed by SIGKILL");
  // Reaped: its pid may belong to someone else now, so no more signals.
  EXPECT_EQ(sleeper->Signal(SIGTERM).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SubprocessTest, PassesEnvironmentAndRedirectsOutput) {
  const std::string log = TempPath("subprocess-env");
  std::filesystem::remove(log);
  SubprocessOptions options;
  options.env = {{"CLEAVE_TEST_VALUE", "bar"}};
  options.log_path = log;
  auto p =
      Start({"/bin/sh", "-c", "echo out=$CLEAVE_TEST_VALUE; echo err >&2; test -n \"$HOME$PATH\""},
            options);
  EXPECT_EQ(*p->WaitFor(absl::Seconds(10)), 0);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("out=bar"));
  EXPECT_THAT(text.str(), HasSubstr("err"));
  std::filesystem::remove(log);
}

TEST(SubprocessTest, ExecFailureIsASpawnError) {
  SubprocessOptions options;
  options.argv = {"/nonexistent/cleave-binary"};
  auto p = Subprocess::Spawn(options);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("/nonexistent/cleave-binary"));
  options.argv = {};
  EXPECT_FALSE(Subprocess::Spawn(options).ok());
}

TEST(SubprocessTest, StopEscalatesToSigkill) {
  SubprocessOptions options;
  options.kill_grace = absl::Milliseconds(200);
  // exec keeps the ignored SIGTERM in the process that we then have to stop.
  auto stubborn = Start({"/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 30"}, options);
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  EXPECT_EQ(stubborn->Stop(absl::Milliseconds(200)), 128 + SIGKILL);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  auto polite = Start({"sleep", "30"}, options);
  const pid_t pid = polite->pid();
  polite.reset();  // the destructor stops and reaps it
  EXPECT_TRUE(Dead(pid));
}

TEST(SubprocessTest, ChildDiesWithItsParent) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t middle = fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    SubprocessOptions options;
    options.argv = {"sleep", "30"};
    auto child = Subprocess::Spawn(options);
    const pid_t pid = child.ok() ? (*child)->pid() : -1;
    (void)!write(fds[1], &pid, sizeof(pid));
    _exit(0);  // no destructors: only PR_SET_PDEATHSIG can stop the sleeper
  }
  close(fds[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(read(fds[0], &grandchild, sizeof(grandchild)),
            static_cast<ssize_t>(sizeof(grandchild)));
  close(fds[0]);
  ASSERT_GT(grandchild, 0);
  int status;
  ASSERT_EQ(waitpid(middle, &status, 0), middle);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!Dead(grandchild) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(Dead(grandchild)) << "pid " << grandchild << " outlived its parent";
}

TEST(SubprocessTest, PickFreePortGivesABindablePort) {
  const int port = PickFreePort();
  ASSERT_GT(port, 0);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
}

}  // namespace
}  // namespace cleave
