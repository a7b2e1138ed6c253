#include "engine/util/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace cleave {
namespace {

absl::Status ErrnoError(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

int ShellStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

// Reports errno to the parent through the exec-error pipe.
[[noreturn]] void ExecFail(int err_fd) {
  const int err = errno;
  ssize_t unused = write(err_fd, &err, sizeof(err));
  (void)unused;
  _exit(127);
}

// Runs in the child between fork and exec: only async-signal-safe calls, and no
// allocation (the parent may have been holding the allocator's lock in another thread).
[[noreturn]] void ExecChild(pid_t parent, const SubprocessOptions& options, char* const* argv,
                            char* const* envp, int log_fd, int err_fd) {
  auto fail = [err_fd]() { ExecFail(err_fd); };
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail();
  // The parent may have died before prctl took effect; then nobody would kill us.
  if (getppid() != parent) _exit(127);
  if (options.new_process_group && setpgid(0, 0) != 0) fail();

  // The parent may block or ignore signals for its own handling; the child starts clean.
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) fail();
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD})
    sigaction(sig, &dfl, nullptr);

  if (log_fd >= 0) {
    if (dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0) fail();
  }
  // Only stdio and the exec-error pipe (close-on-exec) survive: sockets and files the
  // parent opened without O_CLOEXEC must not leak into long-lived services.
  if (err_fd > 3) close_range(3, err_fd - 1, 0);
  close_range(err_fd + 1, ~0U, 0);
  execvpe(argv[0], argv, envp);
  ExecFail(err_fd);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Spawn(const SubprocessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("Subprocess: empty argv");
  }
  // Everything the child needs is built before fork.
  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [name, value] : options.env) env[name] = value;
  std::vector<std::string> env_storage;
  env_storage.reserve(env.size());
  for (const auto& [name, value] : env) env_storage.push_back(absl::StrCat(name, "=", value));
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  int log_fd = -1;
  if (!options.log_path.empty()) {
    log_fd = open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return ErrnoError(absl::StrCat("open ", options.log_path), errno);
  }
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    if (log_fd >= 0) close(log_fd);
    return ErrnoError("pipe2", err);
  }

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    close(err_pipe[0]);
    ExecChild(parent, options, argv.data(), envp.data(), log_fd, err_pipe[1]);
  }
  const int fork_errno = errno;
  close(err_pipe[1]);
  if (log_fd >= 0) close(log_fd);
  if (pid < 0) {
    close(err_pipe[0]);
    return ErrnoError("fork", fork_errno);
  }

  // EOF means exec succeeded (the pipe closed on exec); four bytes are the child's errno.
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return ErrnoError(absl::StrCat("cannot execute ", options.argv[0]), child_errno);
  }
  return std::unique_ptr<Subprocess>(new Subprocess(pid, options.log_path, options.kill_grace));
}

Subprocess::~Subprocess() { Stop(kill_grace_); }

bool Subprocess::PollLocked() {
  if (exit_status_.has_value()) return true;
  int status;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_status_ = ShellStatus(status);
    return true;
  }
  // ECHILD: someone else reaped it (SIGCHLD ignored, or a stray wait); the status is lost.
  if (r < 0) {
    exit_status_ = -1;
    return true;
  }
  return false;
}

absl::Status Subprocess::Signal(int sig) {
  absl::MutexLock lock(&mu_);
  if (exit_status_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat("process ", pid_, " already exited"));
  }
  // A zombie (exited, not reaped) keeps its pid, so this never hits another process.
  if (kill(pid_, sig) != 0) return ErrnoError(absl::StrCat("kill ", pid_), errno);
  return absl::OkStatus();
}

absl::StatusOr<int> Subprocess::WaitFor(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration step = absl::Milliseconds(1);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (PollLocked()) return *exit_status_;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("process ", pid_, " still running"));
    }
    absl::SleepFor(std::min(step, left));
    step = std::min(step * 2, absl::Milliseconds(20));
  }
}

bool Subprocess::Running() {
  absl::MutexLock lock(&mu_);
  return !PollLocked();
}

std::optional<int> Subprocess::exit_status() {
  absl::MutexLock lock(&mu_);
  PollLocked();
  return exit_status_;
}

int Subprocess::Stop(absl::Duration grace) {
  if (!Signal(SIGTERM).ok()) return exit_status().value_or(-1);
  if (auto st = WaitFor(grace); st.ok()) return *st;
  (void)Signal(SIGKILL);
  // SIGKILL cannot be caught; the wait ends once the kernel tears the process down.
  return WaitFor(absl::InfiniteDuration()).value_or(-1);
}

std::string DescribeExitStatus(int status) {
  if (status < 0) return "exit status unknown";
  if (status > 128 && status < 128 + NSIG) {
    const char* abbrev = sigabbrev_np(status - 128);
    return absl::StrCat("killed by SIG", abbrev != nullptr ? abbrev : std::to_string(status - 128));
  }
  return absl::StrCat("exit code ", status);
}

int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace cleave
