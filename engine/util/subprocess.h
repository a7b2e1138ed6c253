// Child processes that cannot outlive their parent: the launcher (`cleave up`) and the
// integration-test harness start service binaries with it.
#ifndef CLEAVE_ENGINE_UTIL_SUBPROCESS_H_
#define CLEAVE_ENGINE_UTIL_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cleave {

struct SubprocessOptions {
  // argv[0] is looked up in PATH when it has no '/'.
  std::vector<std::string> argv;
  // Added to (or replacing in) the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // stdout and stderr go here (created, or appended to); empty: the parent's.
  std::string log_path;
  // A new process group keeps a terminal's Ctrl-C away from the child, so the parent
  // decides the order in which children stop.
  bool new_process_group = false;
  // How long the destructor waits after SIGTERM before SIGKILL.
  absl::Duration kill_grace = absl::Seconds(5);
};

// A running (or finished) child. The child gets SIGKILL when the thread that spawned it
// exits (PR_SET_PDEATHSIG), so spawn from a long-lived thread, normally main.
// Exit statuses follow the shell: the exit code, or 128 + the signal that killed it.
class Subprocess {
 public:
  // Fails when fork fails or the program cannot be executed (the exec error is
  // reported here, not as an exit status).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Spawn(const SubprocessOptions& options);

  // Stops a running child (SIGTERM, kill_grace, SIGKILL) and reaps it.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // FAILED_PRECONDITION once the child has been reaped (its pid may belong to another
  // process by then).
  absl::Status Signal(int sig);

  // The exit status, or DEADLINE_EXCEEDED if it is still running after `timeout`.
  absl::StatusOr<int> WaitFor(absl::Duration timeout);

  bool Running();

  // The exit status once reaped.
  std::optional<int> exit_status();

  // SIGTERM, up to `grace`, then SIGKILL; reaps. Returns the exit status.
  int Stop(absl::Duration grace);

 private:
  Subprocess(pid_t pid, std::string log_path, absl::Duration kill_grace)
      : pid_(pid), log_path_(std::move(log_path)), kill_grace_(kill_grace) {}

  // Reaps without blocking; true once the child is gone.
  bool PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const pid_t pid_;
  const std::string log_path_;
  const absl::Duration kill_grace_;
  absl::Mutex mu_;
  std::optional<int> exit_status_ ABSL_GUARDED_BY(mu_);
};

// "exit code N" or "killed by SIGKILL" for a shell-style status.
std::string DescribeExitStatus(int status);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close),
// or -1 if none could be bound. Another process may take it before the caller does.
int PickFreePort();

}  // namespace cleave

#endif  // CLEAVE_ENGINE_UTIL_SUBPROCESS_H_
