// cleave up --config SPEC [-- COMMAND...]: runs a local cluster (router, prefill and
// decode workers) from a YAML spec until SIGINT/SIGTERM, or, with a command, until the
// command finishes; the command sees the router as $CLEAVE_ROUTER.
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/util/log.h"
#include "engine/util/subprocess.h"
#include "tools/cleave/args.h"
#include "tools/cleave/commands.h"
#include "tools/cleave/local_cluster.h"

namespace cleave::cli {
namespace {

using launch::ClusterProcess;
using launch::LocalCluster;

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = {
      {"config", false, false, "cluster spec (YAML), e.g. deploy/local/1p1d.yaml"},
      {"build-dir", false, false,
       "build tree holding services/<svc>/cleave-<svc> (default: the one this cleave is in)"},
      {"log-dir", false, false, "one log file per process here (default: a new /tmp directory)"},
      {"ready-timeout-s", false, false,
       "give up if the cluster is not ready by then (default 120)"},
      {"stop-timeout-s", false, false, "SIGTERM grace before SIGKILL when stopping (default 10)"},
      {"log-level", false, false, "debug, info, warn (default), error"},
      {"help", true, false, "show this help"},
  };
  return specs;
}

constexpr char kUsageTail[] =
    "  -- COMMAND [ARGS...]\n"
    "      once ready, run COMMAND with CLEAVE_ROUTER=host:port, then stop the cluster and\n"
    "      exit with its status ('cleave' as COMMAND means this cleave binary)\n";

void Say(const std::string& line) {
  std::fprintf(stderr, "cleave up: %s\n", line.c_str());
  std::fflush(stderr);
}

// The signals that stop the cluster. They stay blocked in every thread (gRPC's included,
// which inherit the mask) and are taken synchronously by the supervising loop.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// Waits up to `wait` for a stop signal; returns it, or 0.
int TakeStopSignal(absl::Duration wait) {
  const sigset_t set = StopSignals();
  const timespec ts = absl::ToTimespec(wait);
  const int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

absl::StatusOr<std::string> DefaultBuildDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::InternalError(absl::StrCat("reading /proc/self/exe: ", ec.message()));
  // <build>/tools/cleave/cleave
  const std::filesystem::path dir = exe.parent_path();
  if (dir.filename() != "cleave" || dir.parent_path().filename() != "tools") {
    return absl::NotFoundError(
        absl::StrCat(exe.string(), " is not inside a build tree; pass --build-dir"));
  }
  return dir.parent_path().parent_path().string();
}

std::string ReadyLine(LocalCluster& cluster) {
  std::string line = absl::StrCat("ready router=", cluster.router_address());
  if (cluster.spec().metrics) {
    absl::StrAppend(&line, " metrics");
    for (const auto& p : cluster.processes()) {
      absl::StrAppend(&line, " ", p->name, "=", p->metrics_port);
    }
  }
  return line;
}

void ReportExits(LocalCluster& cluster) {
  for (ClusterProcess* p : cluster.CollectExited()) {
    Say(absl::StrCat(p->name, " (pid ", p->process->pid(), ") exited unexpectedly: ",
                     DescribeExitStatus(p->process->exit_status().value_or(-1)), "; log ",
                     p->log_path, "; the other processes keep running"));
  }
}

// Runs the command next to the cluster; returns its shell-style exit status.
int RunUserCommand(LocalCluster& cluster, std::vector<std::string> command, absl::Duration grace) {
  if (command[0] == "cleave") {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) command[0] = self.string();
  }
  SubprocessOptions options;
  options.argv = command;
  options.env = {{"CLEAVE_ROUTER", cluster.router_address()}};
  options.kill_grace = grace;
  auto child = Subprocess::Spawn(options);
  if (!child.ok()) {
    Say(std::string(child.status().message()));
    return 127;
  }
  while (true) {
    if (auto status = (*child)->WaitFor(absl::ZeroDuration()); status.ok()) return *status;
    if (int sig = TakeStopSignal(absl::Milliseconds(100)); sig != 0) {
      Say(absl::StrCat("got SIG", sigabbrev_np(sig), "; stopping the command"));
      (void)(*child)->Signal(sig);
      if (auto status = (*child)->WaitFor(grace); status.ok()) return *status;
      return (*child)->Stop(absl::ZeroDuration());
    }
    ReportExits(cluster);
  }
}

int Up(const Args& args, const std::vector<std::string>& command) {
  auto config = args.Required("config");
  if (!config.ok()) {
    Say(std::string(config.status().message()));
    return kExitUsage;
  }
  auto ready_s = args.Int("ready-timeout-s", 120);
  auto stop_s = args.Int("stop-timeout-s", 10);
  for (const auto* v : {&ready_s, &stop_s}) {
    if (!v->ok()) {
      Say(std::string(v->status().message()));
      return kExitUsage;
    }
  }
  if (*ready_s <= 0 || *stop_s < 0) {
    Say("--ready-timeout-s must be positive and --stop-timeout-s non-negative");
    return kExitUsage;
  }
  const absl::Duration grace = absl::Seconds(*stop_s);

  std::error_code ec;
  const std::string cwd = std::filesystem::current_path(ec).string();
  auto spec = launch::LoadClusterSpec(*config, cwd);
  if (!spec.ok()) {
    Say(std::string(spec.status().message()));
    return kExitUsage;
  }

  std::string build_dir = args.String("build-dir", "");
  if (build_dir.empty()) {
    auto found = DefaultBuildDir();
    if (!found.ok()) {
      Say(std::string(found.status().message()));
      return kExitFailure;
    }
    build_dir = *found;
  }
  auto binaries = launch::ServiceBinaries::InBuildDir(build_dir);
  if (!binaries.ok()) {
    Say(std::string(binaries.status().message()));
    return args.Has("build-dir") ? kExitUsage : kExitFailure;
  }

  std::string log_dir = args.String("log-dir", "");
  if (log_dir.empty()) {
    std::string tmpl = "/tmp/cleave-up-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      Say(absl::StrCat("cannot create a log directory: ", std::strerror(errno)));
      return kExitFailure;
    }
    log_dir = tmpl;
  }
  Say(absl::StrCat("logs in ", log_dir));

  int stop_signal = 0;
  LocalCluster::Hooks hooks;
  hooks.on_spawn = [](const ClusterProcess& p) {
    Say(absl::StrCat("started ", p.name, " pid=", p.process->pid(), " address=", p.address(),
                     " metrics_port=", p.metrics_port, " log=", p.log_path));
  };
  hooks.should_abort = [&stop_signal]() {
    if (stop_signal == 0) stop_signal = TakeStopSignal(absl::ZeroDuration());
    return stop_signal != 0;
  };
  auto cluster = LocalCluster::Start(*spec, *binaries, log_dir, absl::Seconds(*ready_s), hooks);
  if (!cluster.ok()) {
    if (stop_signal != 0) {
      Say(absl::StrCat("got SIG", sigabbrev_np(stop_signal),
                       " before the cluster was ready; stopped"));
      return command.empty() ? 0 : kExitFailure;
    }
    Say(std::string(cluster.status().message()));
    return kExitFailure;
  }
  Say(ReadyLine(**cluster));

  int exit_code = 0;
  if (!command.empty()) {
    exit_code = RunUserCommand(**cluster, command, grace);
    if (exit_code < 0) exit_code = kExitFailure;
  } else {
    while ((stop_signal = TakeStopSignal(absl::Milliseconds(200))) == 0) ReportExits(**cluster);
    Say(absl::StrCat("got SIG", sigabbrev_np(stop_signal), "; stopping"));
  }
  ReportExits(**cluster);
  for (const std::string& note : (*cluster)->Stop(grace)) Say(note);
  cluster->reset();
  Say("stopped");
  return exit_code;
}

}  // namespace

int UpCommand(int argc, char** argv) {
  // Everything after "--" is the command to run once the cluster is ready.
  int flag_count = argc;
  std::vector<std::string> command;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      flag_count = i;
      command.assign(argv + i + 1, argv + argc);
      break;
    }
  }
  auto args = Args::Parse(Specs(), flag_count, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cleave up: %s\n%s%s", std::string(args.status().message()).c_str(),
                 Usage("up", Specs()).c_str(), kUsageTail);
    return kExitUsage;
  }
  if (args->Has("help")) {
    std::fprintf(stdout, "%s%s", Usage("up", Specs()).c_str(), kUsageTail);
    return 0;
  }
  if (flag_count < argc && command.empty()) {
    std::fprintf(stderr, "cleave up: nothing after '--'\n");
    return kExitUsage;
  }
  SetLogLevel(args->String("log-level", "warn").c_str());
  // Before any thread exists, so that every thread inherits the blocked mask and the
  // signals wait for TakeStopSignal.
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return Up(*args, command);
}

}  // namespace cleave::cli
