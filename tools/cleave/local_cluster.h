// Starts a cluster of real service processes on one host: the router first, then the
// workers pointing at it, each with its own log file. Shared by `cleave up` and the
// integration-test harness (tests/support/cluster.h).
#ifndef CLEAVE_TOOLS_CLEAVE_LOCAL_CLUSTER_H_
#define CLEAVE_TOOLS_CLEAVE_LOCAL_CLUSTER_H_

#include <grpcpp/channel.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/util/subprocess.h"
#include "tools/cleave/cluster_spec.h"

namespace cleave::launch {

// Where the service executables are.
struct ServiceBinaries {
  std::string router;
  std::string prefill;
  std::string decode;

  // <build_dir>/services/<svc>/cleave-<svc>; NOT_FOUND names the first missing one.
  static absl::StatusOr<ServiceBinaries> InBuildDir(const std::string& build_dir);
};

enum class Role { kRouter, kPrefill, kDecode, kColocated };
const char* RoleName(Role role);

struct ClusterProcess {
  std::string name;  // "router", "prefill-0", "decode-1", "colocated-0"
  Role role = Role::kRouter;
  std::string host;
  int port = 0;
  int metrics_port = 0;  // 0: no metrics endpoint
  std::string log_path;
  std::vector<std::string> argv;
  std::unique_ptr<Subprocess> process;  // null until spawned
  std::shared_ptr<grpc::Channel> channel;
  bool exit_reported = false;

  std::string address() const;
};

// Health and membership probes, each bounded by `timeout`.
// OK when `address` answers grpc.health.v1.Health/Check for service "" with SERVING;
// UNAVAILABLE (with the reported status or the RPC error) otherwise.
absl::Status CheckServing(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout);

struct WorkerCounts {
  int prefill = 0;
  int decode = 0;
};
// The healthy workers the router reports in ListModels (first model).
absl::StatusOr<WorkerCounts> QueryWorkerCounts(const std::shared_ptr<grpc::Channel>& router,
                                               absl::Duration timeout);

// A channel that reconnects quickly, for polling a server that is still starting.
std::shared_ptr<grpc::Channel> MakeProbeChannel(const std::string& address);

// The last `max_lines` lines of a text file (for error messages about a child).
std::string TailFile(const std::string& path, int max_lines);

class LocalCluster {
 public:
  struct Hooks {
    // Called right after each process is spawned (e.g. to print its pid and log).
    std::function<void(const ClusterProcess&)> on_spawn;
    // Polled while waiting; returning true abandons the start with CANCELLED.
    std::function<bool()> should_abort;
  };

  // Spawns the router, waits until it serves, spawns the workers, then waits until
  // every process serves and the router lists all workers. On failure (a child exits,
  // the deadline passes) everything started is stopped and the error names the
  // process and its log file.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const ClusterSpec& spec,
                                                             const ServiceBinaries& binaries,
                                                             const std::string& log_dir,
                                                             absl::Duration ready_timeout,
                                                             const Hooks& hooks = {});

  // Stops whatever still runs (see Stop).
  ~LocalCluster();

  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  const ClusterSpec& spec() const { return spec_; }
  const std::string& log_dir() const { return log_dir_; }
  ClusterProcess& router() { return *processes_.front(); }
  std::string router_address() const { return processes_.front()->address(); }
  // Router first, then prefill, decode and colocated workers in order.
  const std::vector<std::unique_ptr<ClusterProcess>>& processes() const { return processes_; }
  std::vector<ClusterProcess*> ByRole(Role role) const;
  ClusterProcess* Find(const std::string& name) const;

  // Waits until every process serves and the router lists spec().expected_*_workers().
  absl::Status WaitReady(absl::Duration timeout);

  // Starts a stopped or dead process again with the same arguments and ports.
  absl::Status Respawn(const std::string& name);

  // Processes that have exited since the previous call (each reported once).
  std::vector<ClusterProcess*> CollectExited();

  // SIGTERM to the workers, wait up to `grace`, SIGKILL the rest; then the same for the
  // router. Every child is reaped when this returns. Returns one line per process that
  // had to be killed or exited with an error.
  std::vector<std::string> Stop(absl::Duration grace = absl::Seconds(10));

 private:
  LocalCluster(ClusterSpec spec, std::string log_dir, Hooks hooks)
      : spec_(std::move(spec)), log_dir_(std::move(log_dir)), hooks_(std::move(hooks)) {}

  absl::Status Plan(const ServiceBinaries& binaries);
  absl::Status Spawn(ClusterProcess& p);
  // Waits until `procs` serve (and, if `check_counts`, the router lists every worker).
  absl::Status WaitServing(const std::vector<ClusterProcess*>& procs, bool check_counts,
                           absl::Time deadline);
  std::string Describe(const ClusterProcess& p) const;

  const ClusterSpec spec_;
  const std::string log_dir_;
  const Hooks hooks_;
  std::vector<std::unique_ptr<ClusterProcess>> processes_;
};

}  // namespace cleave::launch

#endif  // CLEAVE_TOOLS_CLEAVE_LOCAL_CLUSTER_H_
